// Package tufjson is otaseal's TUF JSON codec: a one-pass decoder of
// targets documents straight into go-tuf's types, and the canonical JSON
// encoder that reproduces, byte for byte, what go-tuf signs and verifies
// (go-securesystemslib's cjson.EncodeCanonical of the decoded value).
//
// It exists for speed without a second meaning: a 100,000-target
// catalogue decoded and canonicalised by go-tuf costs 10 to 20 KB of
// garbage per target, and this package reads each byte once. Every rule
// that decides what a document means (which JSON is valid, how strings and
// numbers decode, case-insensitive member names, repeated members, which
// numbers cjson refuses) is encoding/json's, go-tuf's or cjson's, so that
// otaseal and go-tuf can never disagree on which documents are genuine.
//
// Entry points:
//
//   - DecodeTargets decodes a targets document; TargetsDocument.Canonical
//     returns the bytes its signatures sign.
//   - Canonicalize returns the canonical form of any JSON value.
//
// It does not verify signatures, check sizes against limits, or apply
// TUF's or otaseal's shape rules (spec versions, hash algorithms, key
// sets): package manifest does those around it. Nesting is bounded by
// MaxDepth, as encoding/json bounds it.
package tufjson

import "errors"

// Errors of the codec. Each error returned by this package wraps exactly
// one of them.
var (
	// ErrSyntax reports bytes that are not JSON as encoding/json reads it.
	ErrSyntax = errors.New("tufjson: invalid JSON")
	// ErrMalformed reports valid JSON that go-tuf would refuse, or crash
	// on, as a targets document.
	ErrMalformed = errors.New("tufjson: malformed targets document")
	// ErrWrongType reports a document whose "_type" is not "targets".
	ErrWrongType = errors.New("tufjson: metadata of another role type")
	// ErrEmptyHashes reports a target entry without hashes (go-tuf's
	// TargetFiles rule).
	ErrEmptyHashes = errors.New("tufjson: empty hash map")
	// ErrNotCanonical reports a value that has no canonical form: a
	// number that is not an int64, or a delegated role with both paths
	// and path_hash_prefixes.
	ErrNotCanonical = errors.New("tufjson: no canonical form")
)

// clip shortens attacker-chosen text before it goes into an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
