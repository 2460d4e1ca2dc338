package verify

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/otaseal/otaseal/delta"
	"github.com/otaseal/otaseal/encrypt"
	"github.com/otaseal/otaseal/manifest"
)

// ErrBaseMismatch reports that the installed image is not the one a patch
// was made from: applying it could only produce garbage.
var ErrBaseMismatch = errors.New("verify: installed image does not match the patch's base")

// InstallOptions tell Install where the installed image is, for patches.
type InstallOptions struct {
	// Installed is the running image (the active slot), read by a patch;
	// InstalledSize is its length. Without it, Install takes the full image.
	Installed     io.ReaderAt
	InstalledSize int64
	// ScratchDir holds a BSDIFF40 patch while it is applied, since that
	// format needs random access; "" means os.TempDir(). The streaming
	// format needs no scratch space. Install first removes the scratch
	// files an interrupted install left there (see RemoveStaleScratch), so
	// the directory holds at most one, never longer than the patch's
	// signed length.
	ScratchDir string
	// Downloaded, if not nil, has every byte this call receives added to
	// it, patch and image together, whether they pass their checks or not:
	// what the update cost the link. The count is this call's own, so
	// other calls of the Client running meanwhile do not change it.
	Downloaded *int64

	// contentKey is the release's key when Cycle unwrapped it before
	// opening the slot.
	contentKey *encrypt.ContentKey
}

// Install writes the update into dst (the inactive slot): through its patch
// when it has one and opts names the installed image, else the full image.
// Every byte written is checked against the release's signed length and
// hashes, and a patch is checked against its own signed entry too; the
// caller learns success only after the final check, and on any error the
// slot's contents must not be booted. A failed patch leaves the slot to be
// rewritten: call Install again with the update's Patch set to nil to fall
// back to the full image.
//
// An encrypted release (its Firmware.Encryption set) is decrypted chunk by
// chunk on its way into dst with the content key unwrapped by one of
// Config.DecryptionKeys: the ciphertext is checked against the target's
// signed length and hashes as it streams, every chunk is authenticated
// before it is written, and the plaintext must match the signed plaintext
// length and sha256. Its patches are decrypted the same way before they
// are applied. Without a matching key Install fails with
// ErrNoDecryptionKey before it writes anything; call Decryptable first to
// learn that before opening the slot.
func (c *Client) Install(ctx context.Context, u *Update, dst io.Writer, opts InstallOptions) error {
	key := opts.contentKey
	if key == nil {
		var err error
		if key, err = c.contentKey(ctx, u); err != nil {
			return err
		}
	}
	if u.Patch == nil || opts.Installed == nil {
		if key != nil {
			return c.downloadDecrypted(ctx, u.Release.Path, u.Release.File, u.Release.Firmware.Encryption, *key, dst, opts.Downloaded)
		}
		return c.download(ctx, u.Release.Path, u.Release.File, dst, opts.Downloaded)
	}
	if c.trusted == nil {
		return ErrNotRefreshed
	}
	p := u.Patch
	// The device checks its own image against the patch's base first: a
	// record that says 1.0.0 is no proof of what the slot holds.
	if err := checkBase(opts.Installed, opts.InstalledSize, p.Delta); err != nil {
		return &TargetError{Path: p.Path, Err: err}
	}
	// The patch builds the image, which is the plaintext of an encrypted
	// release.
	length, sum := manifest.ImageOf(u.Release.File, u.Release.Firmware)
	hashes := u.Release.File.Hashes
	if key != nil {
		hashes = manifest.Hashes{"sha256": sum}
	}
	out, err := NewCheckedWriter(dst, length, hashes)
	if err != nil {
		return &TargetError{Path: u.Release.Path, Err: err}
	}
	if (p.Delta.Encryption != nil) != (key != nil) {
		// A device would otherwise apply ciphertext as a patch, or look for
		// a header in plain bytes; either fails later and less clearly.
		return &TargetError{Path: p.Path, Err: fmt.Errorf("%w: patch and release differ in being encrypted", ErrEncryption)}
	}
	applyOpts := &delta.ApplyOptions{MaxOutput: length}
	// manifest and delta use the same wire names for formats.
	format, err := delta.ParseFormat(string(p.Delta.Format))
	switch {
	case err != nil:
		err = &manifest.FieldError{Field: "format", Rule: manifest.RuleUnknownFormat, Value: string(p.Delta.Format)}
	case format == delta.FormatStream:
		err = c.applyStream(ctx, p, key, out, opts, applyOpts)
	case format == delta.FormatBSDIFF40:
		err = c.applyBSDIFF40(ctx, p, key, out, opts, applyOpts)
	}
	if err != nil {
		return &TargetError{Path: p.Path, Err: err}
	}
	if err := out.Finish(); err != nil {
		return &TargetError{Path: u.Release.Path, Via: p.Path, Err: err}
	}
	return nil
}

func checkBase(old io.ReaderAt, size int64, d *manifest.Delta) error {
	if size != d.From.Length {
		return fmt.Errorf("%w: %d bytes, patch expects %d", ErrBaseMismatch, size, d.From.Length)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(old, 0, size)); err != nil {
		return err
	}
	if got := h.Sum(nil); string(got) != string(d.From.SHA256) {
		return fmt.Errorf("%w: sha256 %x, patch expects %x", ErrBaseMismatch, got, d.From.SHA256)
	}
	return nil
}

// applyStream applies the streaming format while it downloads, checking the
// patch bytes against the patch target's signed length and hashes as they
// pass.
func (c *Client) applyStream(ctx context.Context, p *manifest.Patch, key *encrypt.ContentKey, out io.Writer, opts InstallOptions, ao *delta.ApplyOptions) error {
	u, err := c.targetURL(p.Path, p.File)
	if err != nil {
		return err
	}
	check, err := NewCheckedWriter(io.Discard, p.File.Length, p.File.Hashes)
	if err != nil {
		return err
	}
	rc, err := c.fetch(ctx, u, p.File.Length, opts.Downloaded)
	if err != nil {
		return err
	}
	defer rc.Close()
	if key != nil {
		// The patch is decrypted as it downloads and applied as it is
		// decrypted: still one pass, still bounded memory.
		d, err := newDecryptingReader(rc, p.File, p.Delta.Encryption, *key)
		if err != nil {
			return err
		}
		defer d.close()
		if _, err := delta.ApplyStream(out, opts.Installed, opts.InstalledSize, d, ao); err != nil {
			return err
		}
		return d.finish()
	}
	if _, err := delta.ApplyStream(out, opts.Installed, opts.InstalledSize, io.TeeReader(rc, check), ao); err != nil {
		return err
	}
	// The applier stops at the end of the patch's own data; whatever the
	// server sends beyond must still be accounted for by the signed length.
	if _, err := io.Copy(check, rc); err != nil {
		return err
	}
	return check.Finish()
}

// applyBSDIFF40 downloads the patch to a scratch file, verified, then
// applies it from there.
func (c *Client) applyBSDIFF40(ctx context.Context, p *manifest.Patch, key *encrypt.ContentKey, out io.Writer, opts InstallOptions, ao *delta.ApplyOptions) error {
	if err := RemoveStaleScratch(opts.ScratchDir); err != nil {
		// Not fatal: this install needs only its own file.
		c.log.Warn("stale scratch files left", "err", err)
	}
	f, release, err := createScratch(opts.ScratchDir)
	if err != nil {
		return err
	}
	defer release()
	length := p.File.Length
	if key != nil {
		// The scratch file holds the decrypted patch: it is the device's
		// own storage, like the slot the image is decrypted into.
		err = c.downloadDecrypted(ctx, p.Path, p.File, p.Delta.Encryption, *key, f, opts.Downloaded)
		length = p.Delta.Encryption.PlaintextLength
	} else {
		err = c.download(ctx, p.Path, p.File, f, opts.Downloaded)
	}
	if err != nil {
		return err
	}
	_, err = delta.ApplyBSDIFF40(out, opts.Installed, opts.InstalledSize, f, length, ao)
	return err
}
