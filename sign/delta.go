package sign

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/otaseal/otaseal/delta"
	"github.com/otaseal/otaseal/encrypt"
	"github.com/otaseal/otaseal/manifest"
)

// DeltaError names a patch AddDelta refused and its two ends. Err says
// why: a delta.ErrFormat for bytes that are no patch, a *delta.PatchError
// for a patch that does not apply to the from image, a
// *delta.HashMismatchError or a length for one that builds other bytes than
// the to image. It unwraps to ErrBadDelta and to Err.
type DeltaError struct {
	Path, From, To string
	Err            error
}

func (e *DeltaError) Error() string {
	return fmt.Sprintf("%v: %q (%s -> %s): %v", ErrBadDelta, e.Path, e.From, e.To, e.Err)
}

func (e *DeltaError) Unwrap() []error { return []error{ErrBadDelta, e.Err} }

// AddDelta stages patch as the delta target patchPath from the image at
// fromPath to the image at toPath, both targets of this repository, staged
// or published. The entry's ends (length and SHA-256) come from those
// targets, its format from the patch's magic (delta.DetectFormat), and the
// patch is applied once to the from image, streaming and bounded by the to
// image's length, before it is staged: a patch that is not one, or that
// does not rebuild exactly the signed to image, is a *DeltaError
// (ErrBadDelta). Checking here saves every device from downloading a patch
// it can only discard.
func (r *Repository) AddDelta(ctx context.Context, patchPath, fromPath, toPath string, patch io.Reader) error {
	from, _, ok := r.findTarget(fromPath)
	if !ok {
		return fmt.Errorf("%w: delta from %q", ErrNoTarget, fromPath)
	}
	to, _, ok := r.findTarget(toPath)
	if !ok {
		return fmt.Errorf("%w: delta to %q", ErrNoTarget, toPath)
	}
	for _, end := range []struct {
		path string
		tf   *manifest.TargetFile
	}{{fromPath, from}, {toPath, to}} {
		// A delta names its ends by plaintext, which only the content
		// keys reveal.
		if fw, err := manifest.FirmwareOf(end.tf); err == nil && fw.Encryption != nil {
			return fmt.Errorf("%w: delta %q: %q is encrypted (use AddEncryptedDelta)", ErrEncryption, patchPath, end.path)
		}
	}
	d := manifest.Delta{
		From: manifest.DeltaEnd{Path: fromPath, Length: from.Length, SHA256: from.Hashes["sha256"]},
		To:   manifest.DeltaEnd{Path: toPath, Length: to.Length, SHA256: to.Hashes["sha256"]},
	}
	return r.addTarget(ctx, patchPath, patch, func(s *spooled) error {
		format, err := r.checkDelta(ctx, s, d, nil, nil)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return &DeltaError{Path: patchPath, From: fromPath, To: toPath, Err: err}
		}
		d.Format = manifest.DeltaFormat(format.String())
		return manifest.SetDelta(s.tf, d)
	})
}

// checkDelta applies the spooled patch to d's from image and checks the
// output against d's to end, discarding it; it returns the patch's format.
// The from image is decrypted with fromKey when fromEnc is not nil.
func (r *Repository) checkDelta(ctx context.Context, s *spooled, d manifest.Delta, fromKey *encrypt.ContentKey, fromEnc *manifest.Encryption) (delta.Format, error) {
	if d.From.Path == d.To.Path {
		return 0, fmt.Errorf("from and to are the same target")
	}
	pf, err := os.Open(s.file)
	if err != nil {
		return 0, err
	}
	defer pf.Close()
	var magic [delta.MagicSize]byte
	if _, err := io.ReadFull(pf, magic[:]); err != nil {
		return 0, fmt.Errorf("%w: %d bytes", delta.ErrFormat, s.tf.Length)
	}
	format, err := delta.DetectFormat(magic[:])
	if err != nil {
		return 0, err
	}
	var old io.ReaderAt
	var done func()
	if fromEnc != nil {
		old, done, err = r.openDecrypted(ctx, d.From.Path, fromEnc, *fromKey)
	} else {
		old, done, err = r.openAt(ctx, d.From.Path)
	}
	if err != nil {
		return 0, err
	}
	defer done()
	opts := &delta.ApplyOptions{MaxOutput: d.To.Length, SHA256: d.To.SHA256}
	var n int64
	switch format {
	case delta.FormatStream:
		if _, err := pf.Seek(0, io.SeekStart); err != nil {
			return 0, err
		}
		n, err = delta.ApplyStream(io.Discard, old, d.From.Length, bufio.NewReader(ctxReader{ctx, pf}), opts)
	default:
		n, err = delta.ApplyBSDIFF40(io.Discard, old, d.From.Length, pf, s.tf.Length, opts)
	}
	if err != nil {
		return 0, err
	}
	if n != d.To.Length {
		return 0, fmt.Errorf("builds %d bytes, %s is %d", n, d.To.Path, d.To.Length)
	}
	return format, nil
}

// openDecrypted decrypts an encrypted target into a temporary file, checks
// its plaintext against enc, and opens it for random access.
func (r *Repository) openDecrypted(ctx context.Context, targetPath string, enc *manifest.Encryption, key encrypt.ContentKey) (io.ReaderAt, func(), error) {
	rc, err := r.ReadTarget(ctx, targetPath)
	if err != nil {
		return nil, nil, err
	}
	defer rc.Close()
	c, err := encrypt.ParseCipher(string(enc.Cipher))
	if err != nil {
		return nil, nil, err
	}
	dr, err := encrypt.NewReader(rc, key, encrypt.Params{Cipher: c, ChunkSize: enc.ChunkSize})
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %q: %v", ErrEncryption, targetPath, err)
	}
	s, err := r.spool(ctx, dr)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %q: %v", ErrEncryption, targetPath, err)
	}
	if s.tf.Length != enc.PlaintextLength || s.sha256 != fmt.Sprintf("%x", enc.PlaintextSHA256) {
		os.Remove(s.file)
		return nil, nil, fmt.Errorf("%w: %q decrypts to other bytes than its signed plaintext", ErrEncryption, targetPath)
	}
	f, err := os.Open(s.file)
	if err != nil {
		os.Remove(s.file)
		return nil, nil, err
	}
	return f, func() { f.Close(); os.Remove(s.file) }, nil
}

// openAt opens a target's content for random access: staged and
// directory-stored targets are files already; any other storage is spooled
// to a temporary file first.
func (r *Repository) openAt(ctx context.Context, targetPath string) (io.ReaderAt, func(), error) {
	rc, err := r.ReadTarget(ctx, targetPath)
	if err != nil {
		return nil, nil, err
	}
	if f, ok := rc.(*os.File); ok {
		return f, func() { f.Close() }, nil
	}
	defer rc.Close()
	s, err := r.spool(ctx, rc)
	if err != nil {
		return nil, nil, err
	}
	f, err := os.Open(s.file)
	if err != nil {
		os.Remove(s.file)
		return nil, nil, err
	}
	return f, func() { f.Close(); os.Remove(s.file) }, nil
}
