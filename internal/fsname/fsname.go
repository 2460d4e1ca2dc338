// Package fsname turns arbitrary names (state records, TUF role names) into
// file names that stay distinct and inside their directory on every file
// system: case-insensitive ones (macOS, Windows), ones that normalise
// Unicode (APFS, HFS+), and ones that give "/", "\", ":" or a leading "."
// a meaning.
//
// Entry point: Escape. The mapping is an on-disk format: devices in the
// field hold files named by it, so it never changes.
package fsname

import (
	"crypto/sha256"
	"fmt"
)

// MaxPlain is the longest escaped name Escape returns as is. It leaves room
// under the 255-byte file name limit of common file systems for a suffix
// (".json", a generation number) and atomicfile's temporary-name prefix.
const MaxPlain = 200

// Escape maps name to a file name: only the bytes [a-z0-9_-] pass through,
// every other byte (upper case, ".", "/", "=", each byte of a multi-byte
// UTF-8 sequence) becomes "=XX" in lower-case hex. A name whose escaped
// form is longer than MaxPlain becomes "~" and the SHA-256 of the name in
// lower-case hex.
//
// The result is pure lower-case ASCII, which every file system keeps as
// written, and which case folding and Unicode normalisation (NFC, NFD,
// NFKC) leave unchanged; so two distinct names never share a file, even
// "Root" and "root", or "ｒｏｏｔ" and "root". It never starts with "." and
// holds no path separator. "=" is always escaped and "~" never passes
// through, so the mapping is one to one (up to SHA-256 collisions for long
// names). Names made only of [a-z0-9_-] keep their own name as file name.
func Escape(name string) string {
	const hexDigits = "0123456789abcdef"
	var b []byte
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
			b = append(b, c)
			continue
		}
		b = append(b, '=', hexDigits[c>>4], hexDigits[c&15])
	}
	if len(b) > MaxPlain {
		sum := sha256.Sum256([]byte(name))
		return fmt.Sprintf("~%x", sum)
	}
	return string(b)
}
