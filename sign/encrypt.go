package sign

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/otaseal/otaseal/encrypt"
	"github.com/otaseal/otaseal/manifest"
)

// ErrEncryption reports an encrypted release or delta that cannot be
// added as asked: no recipients, a missing content key, a delta between
// ends that differ from what it claims.
var ErrEncryption = errors.New("sign: cannot encrypt target")

// EncryptOptions say for whom, and how, AddEncryptedFirmware encrypts a
// release.
type EncryptOptions struct {
	// Recipients are the device groups or devices that may decrypt the
	// release, listed in its targets entry (about 1.7 KB each for the
	// hybrid KEM; at most 38 fit).
	Recipients []*encrypt.PublicKey
	// Envelopes are more recipients, by group name (letters, digits, '-',
	// '_', '.'): each group's wraps are staged as a key envelope, the
	// plain target DIR/keys/NAME.json beside the image (manifest.KeyEnvelope),
	// which the entry names. For fleets that wrap per device. Recipients
	// and Envelopes together name at least one key.
	Envelopes map[string][]*encrypt.PublicKey
	// Params choose the chunk cipher and size; the zero value is
	// AES-256-GCM with 64 KiB chunks.
	Params encrypt.Params
	// Rand draws the content key and the stream's salt; nil means
	// crypto/rand.
	Rand io.Reader
}

// AddEncryptedFirmware encrypts the image read from plaintext under a new
// content key, wraps that key for each recipient (bound to targetPath and
// fw.Version), and stages the ciphertext as targetPath with fw and its
// encryption member as the otaseal object, as AddFirmware does. TUF's
// length and hashes are those of the ciphertext. It returns the content
// key, which AddEncryptedDelta needs to encrypt the patches to this
// release and to diff from it later: keep it as secret as the images.
func (r *Repository) AddEncryptedFirmware(ctx context.Context, targetPath string, plaintext io.Reader, fw manifest.Firmware, opts EncryptOptions) (encrypt.ContentKey, error) {
	if len(opts.Recipients) == 0 && len(opts.Envelopes) == 0 {
		return encrypt.ContentKey{}, fmt.Errorf("%w: %q: no recipients", ErrEncryption, targetPath)
	}
	key, err := encrypt.NewContentKey(opts.Rand)
	if err != nil {
		return key, err
	}
	enc := &manifest.Encryption{}
	if enc.Recipients, err = wrapFor(opts.Recipients, key, targetPath, fw.Version.String()); err != nil {
		return key, err
	}
	if enc.Envelopes, err = r.addEnvelopes(ctx, targetPath, fw.Version, key, opts.Envelopes); err != nil {
		return key, err
	}
	defer func() {
		if err != nil {
			for _, p := range enc.Envelopes {
				r.RemoveTarget(p)
			}
		}
	}()
	pt := newPlainCounter(plaintext)
	ct, err := encryptPipe(pt, key, opts.Params, opts.Rand)
	if err != nil {
		return key, err
	}
	defer ct.Close()
	err = r.addTarget(ctx, targetPath, ct, func(s *spooled) error {
		pt.fill(enc, opts.Params)
		fw.Encryption = enc
		return manifest.SetFirmware(s.tf, fw)
	})
	return key, err
}

// wrapFor wraps key for each recipient, bound to the release.
func wrapFor(pubs []*encrypt.PublicKey, key encrypt.ContentKey, targetPath, version string) ([]manifest.Recipient, error) {
	var out []manifest.Recipient
	for _, pub := range pubs {
		w, err := encrypt.Wrap(pub, key, targetPath, version)
		if err != nil {
			return nil, fmt.Errorf("%w: wrap for %s: %v", ErrEncryption, pub.KeyID(), err)
		}
		out = append(out, manifest.Recipient{KeyID: pub.KeyID(), KEM: manifest.KEM(pub.KEM().String()), WrappedKey: w})
	}
	return out, nil
}

// addEnvelopes stages one key envelope per group, in name order, and
// returns their target paths.
func (r *Repository) addEnvelopes(ctx context.Context, targetPath string, version manifest.Version, key encrypt.ContentKey, groups map[string][]*encrypt.PublicKey) ([]string, error) {
	names := make([]string, 0, len(groups))
	for name := range groups {
		names = append(names, name)
	}
	slices.Sort(names)
	var paths []string
	fail := func(err error) ([]string, error) {
		for _, p := range paths {
			r.RemoveTarget(p)
		}
		return nil, err
	}
	for _, name := range names {
		if name == "" || strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != "" || strings.Trim(name, ".") == "" {
			return fail(fmt.Errorf("%w: envelope name %q: want letters, digits, '-', '_', '.'", ErrEncryption, name))
		}
		rs, err := wrapFor(groups[name], key, targetPath, version.String())
		if err != nil {
			return fail(err)
		}
		data, err := manifest.MarshalKeyEnvelope(&manifest.KeyEnvelope{Target: targetPath, Version: version, Recipients: rs})
		if err != nil {
			return fail(fmt.Errorf("%w: envelope %q: %v", ErrEncryption, name, err))
		}
		p := path.Join(path.Dir(targetPath), "keys", name+".json")
		if err := r.addTarget(ctx, p, bytes.NewReader(data), func(*spooled) error { return nil }); err != nil {
			return fail(err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// DeltaKeys are the content keys of a delta's ends; nil for an end that
// is not encrypted.
type DeltaKeys struct {
	From, To *encrypt.ContentKey
}

// AddEncryptedDelta stages patch, computed on the plaintext images, as
// the delta target patchPath from fromPath to toPath, encrypted with the
// content key of the to release (which must be encrypted). Like AddDelta
// it first applies the patch to the from image (decrypted with keys.From
// when that release is encrypted) and checks that it rebuilds the to
// release's plaintext exactly (a *DeltaError otherwise). The delta's ends
// are the plaintexts, as a device records its image.
func (r *Repository) AddEncryptedDelta(ctx context.Context, patchPath, fromPath, toPath string, patch io.Reader, keys DeltaKeys) error {
	from, fromFW, err := r.firmwareTarget(fromPath)
	if err != nil {
		return err
	}
	to, toFW, err := r.firmwareTarget(toPath)
	if err != nil {
		return err
	}
	switch {
	case toFW.Encryption == nil:
		return fmt.Errorf("%w: delta %q: %q is not encrypted (use AddDelta)", ErrEncryption, patchPath, toPath)
	case keys.To == nil:
		return fmt.Errorf("%w: delta %q: no content key for %q", ErrEncryption, patchPath, toPath)
	case fromFW.Encryption != nil && keys.From == nil:
		return fmt.Errorf("%w: delta %q: no content key for %q", ErrEncryption, patchPath, fromPath)
	}
	d := manifest.Delta{From: manifest.DeltaEnd{Path: fromPath}, To: manifest.DeltaEnd{Path: toPath}}
	d.From.Length, d.From.SHA256 = manifest.ImageOf(from, fromFW)
	d.To.Length, d.To.SHA256 = manifest.ImageOf(to, toFW)
	plain, err := r.spool(ctx, patch)
	if err != nil {
		return err
	}
	defer os.Remove(plain.file)
	var fromKey *encrypt.ContentKey
	if fromFW.Encryption != nil {
		fromKey = keys.From
	}
	format, err := r.checkDelta(ctx, plain, d, fromKey, fromFW.Encryption)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return &DeltaError{Path: patchPath, From: fromPath, To: toPath, Err: err}
	}
	d.Format = manifest.DeltaFormat(format.String())
	pf, err := os.Open(plain.file)
	if err != nil {
		return err
	}
	defer pf.Close()
	params := encrypt.Params{ChunkSize: toFW.Encryption.ChunkSize}
	if params.Cipher, err = encrypt.ParseCipher(string(toFW.Encryption.Cipher)); err != nil {
		return err
	}
	pt := newPlainCounter(pf)
	ct, err := encryptPipe(pt, *keys.To, params, nil)
	if err != nil {
		return err
	}
	defer ct.Close()
	return r.addTarget(ctx, patchPath, ct, func(s *spooled) error {
		d.Encryption = &manifest.Encryption{}
		pt.fill(d.Encryption, params)
		return manifest.SetDelta(s.tf, d)
	})
}

func (r *Repository) firmwareTarget(path string) (*manifest.TargetFile, *manifest.Firmware, error) {
	tf, _, ok := r.findTarget(path)
	if !ok {
		return nil, nil, fmt.Errorf("%w: %q", ErrNoTarget, path)
	}
	fw, err := manifest.FirmwareOf(tf)
	if err != nil {
		return nil, nil, fmt.Errorf("sign: %q: %w", path, err)
	}
	return tf, fw, nil
}

// plainCounter counts and hashes the plaintext as the encryptor reads it.
type plainCounter struct {
	r   io.Reader
	n   int64
	sum [sha256.Size]byte
	h   interface {
		io.Writer
		Sum([]byte) []byte
	}
}

func newPlainCounter(r io.Reader) *plainCounter { return &plainCounter{r: r, h: sha256.New()} }

func (p *plainCounter) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	p.h.Write(b[:n])
	return n, err
}

// fill sets the plaintext facts and stream parameters of enc; call it
// only once the ciphertext has been read to its end.
func (p *plainCounter) fill(enc *manifest.Encryption, params encrypt.Params) {
	if params.Cipher == 0 {
		params.Cipher = encrypt.AES256GCM
	}
	if params.ChunkSize == 0 {
		params.ChunkSize = encrypt.DefaultChunkSize
	}
	enc.Cipher = manifest.Cipher(params.Cipher.String())
	enc.ChunkSize = params.ChunkSize
	enc.PlaintextLength = p.n
	enc.PlaintextSHA256 = p.h.Sum(nil)
}

// encryptPipe returns the ciphertext of pt as a reader, encrypting in a
// goroutine as it is read: the image never sits in memory. Closing the
// reader stops the goroutine.
func encryptPipe(pt io.Reader, key encrypt.ContentKey, params encrypt.Params, rnd io.Reader) (io.ReadCloser, error) {
	// Refuse bad parameters here, not as a read error of the spool.
	if _, err := encrypt.NewWriter(io.Discard, key, params, rnd); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrEncryption, err)
	}
	pr, pw := io.Pipe()
	go func() {
		w, err := encrypt.NewWriter(pw, key, params, rnd)
		if err == nil {
			_, err = io.Copy(w, pt)
		}
		if err == nil {
			err = w.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr, nil
}
