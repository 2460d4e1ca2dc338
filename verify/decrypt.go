package verify

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/otaseal/otaseal/encrypt"
	"github.com/otaseal/otaseal/manifest"
)

// DecryptionKey is a device's key for encrypted releases: a group key
// that every device of a model shares, or the device's own. A key read
// from a file (*encrypt.PrivateKey) implements it; so does an adapter over
// a TPM or secure element that performs the HPKE decapsulation inside the
// chip (see encrypt.NewPrivateKeyFromHPKE).
type DecryptionKey interface {
	// KeyID names the key as the recipient entries of the signed
	// metadata do (encrypt.PublicKey.KeyID).
	KeyID() string
	// Unwrap opens a content key wrapped for this key and bound to the
	// release at target with version, or returns an error
	// (encrypt.ErrUnwrap when it was wrapped for another key or release).
	Unwrap(wrapped []byte, target, version string) (encrypt.ContentKey, error)
}

// Errors of encrypted releases.
var (
	// ErrNoDecryptionKey: the release is encrypted and none of its
	// recipients is one of the device's DecryptionKeys. Nothing has been
	// written when it is returned.
	ErrNoDecryptionKey = errors.New("verify: release is encrypted for none of this device's keys")
	// ErrEncryption: the encryption member disagrees with the target (a
	// ciphertext length the plaintext length cannot give, a patch
	// encrypted while its release is not), or the wrapped key for this
	// device does not open for this release.
	ErrEncryption = errors.New("verify: encrypted target does not match its metadata")
)

// Decryptable reports whether the device can install u: nil when u is not
// encrypted, or when one of Config.DecryptionKeys is a recipient of it
// (listed in its entry, or in one of its key envelopes, which it
// downloads) and its wrapped key opens for this release. Cycle.Begin calls
// it, so that a device without a matching key refuses before its state or
// a slot is touched.
func (c *Client) Decryptable(ctx context.Context, u *Update) error {
	_, err := c.contentKey(ctx, u)
	return err
}

// contentKey returns the content key of u's release, or nil when it is
// not encrypted. A key once unwrapped is kept for the release, so that
// Install does not fetch an envelope again after Begin.
func (c *Client) contentKey(ctx context.Context, u *Update) (*encrypt.ContentKey, error) {
	fw := u.Release.Firmware
	if fw == nil || fw.Encryption == nil {
		if u.Patch != nil && u.Patch.Delta.Encryption != nil {
			return nil, &TargetError{Path: u.Patch.Path, Err: fmt.Errorf("%w: patch encrypted, its release is not", ErrEncryption)}
		}
		return nil, nil
	}
	enc := fw.Encryption
	if err := checkCiphertextLength(u.Release.File, enc); err != nil {
		return nil, &TargetError{Path: u.Release.Path, Err: err}
	}
	cacheKey := u.Release.Path + "\x00" + fw.Version.String() + "\x00" + hex.EncodeToString(u.Release.File.Hashes["sha256"])
	c.keysMu.Lock()
	key, ok := c.keys[cacheKey]
	c.keysMu.Unlock()
	if ok {
		return &key, nil
	}
	key, err := c.unwrap(ctx, u, enc.Recipients)
	if errors.Is(err, ErrNoDecryptionKey) && len(enc.Envelopes) > 0 {
		key, err = c.unwrapFromEnvelopes(ctx, u)
	}
	if err != nil {
		return nil, &TargetError{Path: u.Release.Path, Err: err}
	}
	c.keysMu.Lock()
	if c.keys == nil {
		c.keys = map[string]encrypt.ContentKey{}
	}
	c.keys[cacheKey] = key
	c.keysMu.Unlock()
	return &key, nil
}

// unwrap opens the content key with the first device key among
// recipients; ErrNoDecryptionKey when none is.
func (c *Client) unwrap(ctx context.Context, u *Update, recipients []manifest.Recipient) (encrypt.ContentKey, error) {
	fw := u.Release.Firmware
	var tried []string
	var lastErr error
	for _, k := range c.cfg.DecryptionKeys {
		id := k.KeyID()
		tried = append(tried, shortID(id))
		for i := range recipients {
			r := &recipients[i]
			if r.KeyID != id {
				continue
			}
			key, err := k.Unwrap(r.WrappedKey, u.Release.Path, fw.Version.String())
			if err == nil {
				return key, nil
			}
			// A wrapped key taken from another release's metadata fails
			// here: the HPKE info binds path and version.
			lastErr = fmt.Errorf("%w: key %s: %w", ErrEncryption, shortID(id), err)
		}
	}
	if lastErr != nil {
		return encrypt.ContentKey{}, lastErr
	}
	names := make([]string, 0, min(len(recipients), 8))
	for i, r := range recipients {
		if i == 8 {
			names = append(names, fmt.Sprintf("and %d more", len(recipients)-8))
			break
		}
		names = append(names, shortID(r.KeyID))
	}
	return encrypt.ContentKey{}, fmt.Errorf("%w: recipients [%s], device keys [%s]",
		ErrNoDecryptionKey, strings.Join(names, " "), strings.Join(tried, " "))
}

// unwrapFromEnvelopes looks for the device's keys in the release's key
// envelopes, fetching each as a verified target, in order.
func (c *Client) unwrapFromEnvelopes(ctx context.Context, u *Update) (encrypt.ContentKey, error) {
	fw := u.Release.Firmware
	for _, path := range fw.Encryption.Envelopes {
		tf, _, err := c.FindTarget(ctx, path)
		if err != nil {
			return encrypt.ContentKey{}, fmt.Errorf("key envelope %q: %w", path, err)
		}
		if tf.Length > manifest.MaxEnvelopeSize {
			return encrypt.ContentKey{}, fmt.Errorf("%w: key envelope %q of %d bytes (limit %d)", ErrEncryption, path, tf.Length, manifest.MaxEnvelopeSize)
		}
		var buf bytes.Buffer
		if err := c.download(ctx, path, tf, &buf, nil); err != nil {
			return encrypt.ContentKey{}, err
		}
		env, err := manifest.ParseKeyEnvelope(buf.Bytes())
		if err != nil {
			return encrypt.ContentKey{}, &TargetError{Path: path, Err: err}
		}
		// An envelope is signed on its own: one of another release would
		// otherwise hand this one keys wrapped for that release (which
		// then fail to open) or, worse, be trusted for its key IDs.
		if env.Target != u.Release.Path || env.Version.Compare(fw.Version) != 0 {
			return encrypt.ContentKey{}, fmt.Errorf("%w: key envelope %q is for %s %s, not %s %s", ErrEncryption, path,
				env.Target, env.Version, u.Release.Path, fw.Version)
		}
		key, err := c.unwrap(ctx, u, env.Recipients)
		if !errors.Is(err, ErrNoDecryptionKey) {
			return key, err
		}
	}
	return encrypt.ContentKey{}, fmt.Errorf("%w: not in the release's entry nor in its %d key envelopes", ErrNoDecryptionKey, len(fw.Encryption.Envelopes))
}

func shortID(id string) string {
	if len(id) > 16 {
		return id[:16]
	}
	return id
}

func checkCiphertextLength(tf *manifest.TargetFile, enc *manifest.Encryption) error {
	if want := enc.CiphertextLength(); tf.Length != want {
		return fmt.Errorf("%w: target of %d bytes, a ciphertext of %d plaintext bytes in %d-byte chunks is %d", ErrEncryption,
			tf.Length, enc.PlaintextLength, enc.ChunkSize, want)
	}
	return nil
}

func streamParams(enc *manifest.Encryption) (encrypt.Params, error) {
	c, err := encrypt.ParseCipher(string(enc.Cipher))
	return encrypt.Params{Cipher: c, ChunkSize: enc.ChunkSize}, err
}

// decryptingReader checks the ciphertext rc against tf's signed length and
// hashes as it passes, and decrypts it; the plaintext it yields is checked
// against the encryption member. Hashing the download runs in a goroutine
// of its own, up to hashAhead blocks ahead of the decryption (blockPipe),
// so that on a device with two cores the decryption adds little to the
// install time. Call finish after the
// plaintext is consumed: it returns nil only if both checks passed. Call
// close in every case before rc is closed.
type decryptingReader struct {
	*encrypt.Reader
	rc   io.ReadCloser
	pr   *blockPipe
	done chan struct{}
	ct   *CheckedWriter
	cerr error // the hashing goroutine's read error, after done
	pt   *CheckedWriter
}

// hashBlock is the size of the reads from the download, and hashAhead
// how many blocks the hashing may run ahead of the decryption.
const (
	hashBlock = 64 << 10
	hashAhead = 4
)

// blockPipe hands blocks from the hashing goroutine to the decryption
// with room for a few in between, so that neither waits for the other
// block by block (io.Pipe holds no data). Its blocks are reused: the
// memory is (hashAhead+2) blocks whatever the image size.
type blockPipe struct {
	full chan []byte
	free chan []byte
	cur  []byte // the block being read, nil between blocks
	off  int    // how much of cur has been read
	stop chan struct{}
	once sync.Once
	mu   sync.Mutex
	err  error // why the pipe stopped: io.EOF at the end
}

func newBlockPipe(ahead int) *blockPipe {
	p := &blockPipe{full: make(chan []byte, ahead), free: make(chan []byte, ahead+2), stop: make(chan struct{})}
	for range ahead + 2 {
		p.free <- make([]byte, hashBlock)
	}
	return p
}

// get returns an empty block to fill (nil once the pipe is closed: the
// caller's put then fails).
func (p *blockPipe) get() []byte {
	select {
	case b := <-p.free:
		return b[:cap(b)]
	case <-p.stop:
		return make([]byte, hashBlock)
	}
}

// put passes a filled block on; it fails once the pipe is closed, even
// with room for the block.
func (p *blockPipe) put(b []byte) error {
	select {
	case <-p.stop:
		return p.stopped()
	default:
	}
	select {
	case p.full <- b:
		return nil
	case <-p.stop:
		return p.stopped()
	}
}

func (p *blockPipe) stopped() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Close ends the stream after the blocks already put (the writer's end).
func (p *blockPipe) Close() error { return p.CloseWithError(io.EOF) }

// CloseWithError stops the pipe: the reader gets err once the blocks
// put before are read; a writer's next put gets err.
func (p *blockPipe) CloseWithError(err error) error {
	p.once.Do(func() {
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.stop)
	})
	return nil
}

func (p *blockPipe) Read(b []byte) (int, error) {
	for p.cur == nil || p.off == len(p.cur) {
		if p.cur != nil {
			p.free <- p.cur
			p.cur = nil
		}
		select {
		case blk := <-p.full:
			p.cur, p.off = blk, 0
			continue
		case <-p.stop:
		}
		// Blocks put before the close still count.
		select {
		case blk := <-p.full:
			p.cur, p.off = blk, 0
			continue
		default:
		}
		return 0, p.stopped()
	}
	n := copy(b, p.cur[p.off:])
	p.off += n
	return n, nil
}

func newDecryptingReader(rc io.ReadCloser, tf *manifest.TargetFile, enc *manifest.Encryption, key encrypt.ContentKey) (*decryptingReader, error) {
	if err := checkCiphertextLength(tf, enc); err != nil {
		return nil, err
	}
	p, err := streamParams(enc)
	if err != nil {
		return nil, err
	}
	ct, err := NewCheckedWriter(io.Discard, tf.Length, tf.Hashes)
	if err != nil {
		return nil, err
	}
	pt, err := NewCheckedWriter(io.Discard, enc.PlaintextLength, manifest.Hashes{"sha256": enc.PlaintextSHA256})
	if err != nil {
		return nil, err
	}
	pr := newBlockPipe(hashAhead)
	d := &decryptingReader{rc: rc, pr: pr, done: make(chan struct{}), ct: ct, pt: pt}
	go d.hash(rc, pr)
	if d.Reader, err = encrypt.NewReader(pr, key, p); err != nil {
		d.close()
		return nil, err
	}
	return d, nil
}

// hash reads the download to its end, checking it against the signed
// length and hashes, and hands each block on to the decryption.
func (d *decryptingReader) hash(rc io.Reader, pw *blockPipe) {
	defer close(d.done)
	for {
		buf := pw.get()
		n, err := rc.Read(buf)
		if n > 0 {
			if _, werr := d.ct.Write(buf[:n]); werr != nil {
				d.cerr = werr
				pw.CloseWithError(werr)
				return
			}
			if werr := pw.put(buf[:n]); werr != nil {
				// The decryption stopped; what is left is not read.
				d.cerr = werr
				return
			}
		}
		if err == io.EOF {
			pw.Close()
			return
		}
		if err != nil {
			d.cerr = err
			pw.CloseWithError(err)
			return
		}
	}
}

// Read decrypts, counting and hashing the plaintext.
func (d *decryptingReader) Read(p []byte) (int, error) {
	n, err := d.Reader.Read(p)
	if n > 0 {
		// Past the signed plaintext length nothing is passed on: the
		// caller may be writing a slot.
		if _, werr := d.pt.Write(p[:n]); werr != nil {
			return 0, werr
		}
	}
	return n, err
}

// finish reads what the consumer left, to the end of both streams, and
// checks the ciphertext first: a download that is not the signed one is
// reported as such, whatever its decryption said.
func (d *decryptingReader) finish() error {
	_, perr := io.Copy(io.Discard, d)
	d.close()
	switch {
	case d.cerr == nil:
		// The whole download was read: whether it is the signed one says
		// more than what its decryption complained of.
		if err := d.ct.Finish(); err != nil {
			return err
		}
	case !errors.Is(d.cerr, io.ErrClosedPipe):
		return d.cerr // the download failed, or ran past its signed length
	case perr == nil:
		// Cannot happen (the decryption ends only at the download's end),
		// but a download not checked to its end must never count.
		return fmt.Errorf("%w: download not read to its end", ErrEncryption)
	}
	if perr != nil {
		return perr
	}
	return d.pt.Finish()
}

// close stops the hashing goroutine and waits for it. It closes the
// download too: a goroutine blocked reading a stalled server would
// otherwise keep the install waiting for the fetcher's timeouts.
func (d *decryptingReader) close() {
	d.pr.CloseWithError(io.ErrClosedPipe)
	select {
	case <-d.done:
	default:
		d.rc.Close()
		<-d.done
	}
}

// downloadDecrypted streams the encrypted target at path into dst as
// plaintext, checking the ciphertext against tf and the plaintext against
// enc. Nothing written to dst counts unless it returns nil.
func (c *Client) downloadDecrypted(ctx context.Context, path string, tf *manifest.TargetFile, enc *manifest.Encryption, key encrypt.ContentKey, dst io.Writer, count *int64) error {
	if c.trusted == nil {
		return ErrNotRefreshed
	}
	u, err := c.targetURL(path, tf)
	if err != nil {
		return err
	}
	rc, err := c.fetch(ctx, u, tf.Length, count)
	if err != nil {
		return &TargetError{Path: path, Err: err}
	}
	defer rc.Close()
	d, err := newDecryptingReader(rc, tf, enc, key)
	if err != nil {
		return &TargetError{Path: path, Err: err}
	}
	defer d.close()
	if _, err := io.Copy(dst, d); err != nil {
		return &TargetError{Path: path, Err: err}
	}
	if err := d.finish(); err != nil {
		return &TargetError{Path: path, Err: err}
	}
	return nil
}
