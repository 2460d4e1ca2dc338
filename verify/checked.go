package verify

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"sort"

	"github.com/otaseal/otaseal/manifest"
)

// Errors of the streaming target check.
var (
	ErrLengthMismatch = errors.New("verify: length differs from the signed length")
	ErrHashMismatch   = errors.New("verify: hash differs from the signed hash")
	ErrNoHashes       = errors.New("verify: target has no usable hash")
)

// CheckedWriter passes a target's bytes to an underlying writer (the
// inactive slot, a temp file) while counting and hashing them against the
// signed length and hashes. It never passes on a byte beyond the signed
// length, so a hostile download cannot write past the end of its slot.
//
// Nothing written counts until Finish returns nil: the bytes are only
// known good once all of them have been seen. Any failure is sticky: every
// later Write and Finish returns the same error.
type CheckedWriter struct {
	w       io.Writer
	want    int64
	n       int64
	hashers []namedHash
	err     error
	done    bool
}

type namedHash struct {
	alg  string
	h    hash.Hash
	want []byte
}

// NewCheckedWriter checks writes to w against length and hashes. Every hash
// in the map is checked; at least one must be sha256 or sha512, and none
// may be of another algorithm (ErrNoHashes).
func NewCheckedWriter(w io.Writer, length int64, hashes manifest.Hashes) (*CheckedWriter, error) {
	if length < 0 {
		return nil, fmt.Errorf("%w: negative length %d", ErrLengthMismatch, length)
	}
	if len(hashes) == 0 {
		return nil, ErrNoHashes
	}
	c := &CheckedWriter{w: w, want: length}
	algs := make([]string, 0, len(hashes))
	for alg := range hashes {
		algs = append(algs, alg)
	}
	sort.Strings(algs) // deterministic error reports
	for _, alg := range algs {
		var h hash.Hash
		switch alg {
		case "sha256":
			h = sha256.New()
		case "sha512":
			h = sha512.New()
		default:
			// A hash we cannot check would be a hash we silently skip.
			return nil, fmt.Errorf("%w: unsupported algorithm %q", ErrNoHashes, alg)
		}
		c.hashers = append(c.hashers, namedHash{alg: alg, h: h, want: hashes[alg]})
	}
	return c, nil
}

// Write implements io.Writer.
func (c *CheckedWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.done {
		c.err = errors.New("verify: write after Finish")
		return 0, c.err
	}
	if rest := c.want - c.n; int64(len(p)) > rest {
		c.err = fmt.Errorf("%w: more than %d bytes", ErrLengthMismatch, c.want)
		return 0, c.err
	}
	n, err := c.w.Write(p)
	for _, nh := range c.hashers {
		nh.h.Write(p[:n])
	}
	c.n += int64(n)
	if err != nil {
		c.err = err
		return n, err
	}
	return n, nil
}

// Written returns how many bytes have passed so far.
func (c *CheckedWriter) Written() int64 { return c.n }

// Finish checks the length and every hash. It returns nil only if all
// match; then, and only then, the bytes written may be used.
func (c *CheckedWriter) Finish() error {
	if c.err != nil {
		return c.err
	}
	c.done = true
	if c.n != c.want {
		c.err = fmt.Errorf("%w: got %d bytes, want %d", ErrLengthMismatch, c.n, c.want)
		return c.err
	}
	for _, nh := range c.hashers {
		if got := nh.h.Sum(nil); !bytes.Equal(got, nh.want) {
			c.err = fmt.Errorf("%w: %s %x, want %x", ErrHashMismatch, nh.alg, got, []byte(nh.want))
			return c.err
		}
	}
	return nil
}

// FileMatches reports whether the file at path has exactly the length and
// hashes of tf. A missing file is false with no error; it reads the file as
// a stream, never past the signed length plus one byte.
func FileMatches(path string, tf *manifest.TargetFile) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	cw, err := NewCheckedWriter(io.Discard, tf.Length, tf.Hashes)
	if err != nil {
		return false, err
	}
	if _, err := io.Copy(cw, io.LimitReader(f, tf.Length+1)); err != nil {
		return false, nil
	}
	return cw.Finish() == nil, nil
}
