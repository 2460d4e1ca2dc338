package encrypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
)

// Sizes and limits of the stream format.
const (
	Magic            = "OTAENC01"
	HeaderSize       = 46
	TagSize          = 16
	SaltSize         = 32
	KeySize          = 32
	MinChunkSize     = 64
	MaxChunkSize     = 1 << 20
	DefaultChunkSize = 64 << 10
)

// Errors of the stream format. A *ChunkError wraps ErrAuth.
var (
	ErrHeader       = errors.New("encrypt: malformed stream header")
	ErrParams       = errors.New("encrypt: stream header differs from the expected cipher or chunk size")
	ErrAuth         = errors.New("encrypt: chunk failed authentication (wrong key, or altered, moved or repeated data)")
	ErrTruncated    = errors.New("encrypt: stream ends before its last chunk")
	ErrTrailingData = errors.New("encrypt: data after the last chunk")
	ErrEmptyChunk   = errors.New("encrypt: empty last chunk after other chunks")
)

// ChunkError names the chunk that failed to open.
type ChunkError struct {
	Index uint64
	Err   error
}

func (e *ChunkError) Error() string { return fmt.Sprintf("%v (chunk %d)", e.Err, e.Index) }
func (e *ChunkError) Unwrap() error { return e.Err }

// Cipher is the AEAD that seals the chunks, numbered as HPKE's AEAD IDs.
type Cipher uint16

const (
	// AES256GCM is the default: AES and GHASH instructions make it the
	// fastest on x86-64 and ARMv8 cores with the crypto extension.
	AES256GCM Cipher = 0x0002
	// ChaCha20Poly1305 is faster on cores without AES instructions
	// (Cortex-A7, A53 without the crypto extension).
	ChaCha20Poly1305 Cipher = 0x0003
)

// String returns the wire name of c, as the metadata spells it.
func (c Cipher) String() string {
	switch c {
	case AES256GCM:
		return "aes-256-gcm"
	case ChaCha20Poly1305:
		return "chacha20-poly1305"
	}
	return fmt.Sprintf("cipher(%#04x)", uint16(c))
}

// ErrUnknownAlgorithm reports a cipher or KEM name or ID this package does
// not implement.
var ErrUnknownAlgorithm = errors.New("encrypt: unknown algorithm")

// ParseCipher reads a cipher's wire name.
func ParseCipher(name string) (Cipher, error) {
	for _, c := range []Cipher{AES256GCM, ChaCha20Poly1305} {
		if c.String() == name {
			return c, nil
		}
	}
	return 0, fmt.Errorf("%w: cipher %q", ErrUnknownAlgorithm, name)
}

// Params are the stream's cipher and chunk size; the zero value means
// AES256GCM with DefaultChunkSize.
type Params struct {
	Cipher    Cipher
	ChunkSize int
}

func (p Params) normalize() (Params, error) {
	if p.Cipher == 0 {
		p.Cipher = AES256GCM
	}
	if p.ChunkSize == 0 {
		p.ChunkSize = DefaultChunkSize
	}
	if _, err := ParseCipher(p.Cipher.String()); err != nil {
		return p, err
	}
	if p.ChunkSize < MinChunkSize || p.ChunkSize > MaxChunkSize {
		return p, fmt.Errorf("%w: chunk size %d outside %d..%d", ErrHeader, p.ChunkSize, MinChunkSize, MaxChunkSize)
	}
	return p, nil
}

// CiphertextSize returns the length of the stream that encrypts plaintext
// bytes with chunkSize, or -1 if the arguments are out of range.
func CiphertextSize(plaintext int64, chunkSize int) int64 {
	if plaintext < 0 || chunkSize < MinChunkSize || chunkSize > MaxChunkSize {
		return -1
	}
	chunks := max(1, (plaintext+int64(chunkSize)-1)/int64(chunkSize))
	if plaintext > (1<<62)-HeaderSize-TagSize*chunks {
		return -1
	}
	return HeaderSize + plaintext + TagSize*chunks
}

// ContentKey is a release's symmetric key: random, one per release, shared
// by the image and the patches to it.
type ContentKey [KeySize]byte

// NewContentKey draws a content key from rand, or crypto/rand if nil.
func NewContentKey(rnd io.Reader) (ContentKey, error) {
	var k ContentKey
	if rnd == nil {
		rnd = rand.Reader
	}
	_, err := io.ReadFull(rnd, k[:])
	return k, err
}

func encodeHeader(p Params, salt []byte) []byte {
	h := make([]byte, HeaderSize)
	copy(h, Magic)
	binary.BigEndian.PutUint16(h[8:], uint16(p.Cipher))
	binary.BigEndian.PutUint32(h[10:], uint32(p.ChunkSize))
	copy(h[14:], salt)
	return h
}

// streamAEAD derives the stream key from the content key and the header.
func streamAEAD(key ContentKey, header []byte) (cipher.AEAD, error) {
	info := append([]byte("otaseal stream v1\x00"), header[:14]...)
	sk, err := hkdf.Key(sha256.New, key[:], header[14:HeaderSize], string(info), KeySize)
	if err != nil {
		return nil, err
	}
	switch Cipher(binary.BigEndian.Uint16(header[8:])) {
	case AES256GCM:
		b, err := aes.NewCipher(sk)
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(b)
	case ChaCha20Poly1305:
		return chacha20poly1305.New(sk)
	}
	return nil, ErrUnknownAlgorithm
}

func chunkNonce(nonce *[12]byte, index uint64, last bool) {
	clear(nonce[:3])
	binary.BigEndian.PutUint64(nonce[3:11], index)
	nonce[11] = 0
	if last {
		nonce[11] = 1
	}
}

// Writer encrypts what is written to it as a stream. Close seals the last
// chunk; without it the stream is truncated.
type Writer struct {
	dst   io.Writer
	aead  cipher.AEAD
	buf   []byte // ChunkSize plaintext bytes, then room for the tag
	n     int
	c     int
	index uint64
	nonce [12]byte
	err   error
}

// NewWriter writes the header of a stream under key with params p to dst,
// drawing the salt from rnd (crypto/rand if nil), and returns the Writer
// for the plaintext.
func NewWriter(dst io.Writer, key ContentKey, p Params, rnd io.Reader) (*Writer, error) {
	p, err := p.normalize()
	if err != nil {
		return nil, err
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	salt := make([]byte, SaltSize)
	if _, err := io.ReadFull(rnd, salt); err != nil {
		return nil, fmt.Errorf("encrypt: salt: %w", err)
	}
	h := encodeHeader(p, salt)
	aead, err := streamAEAD(key, h)
	if err != nil {
		return nil, err
	}
	if _, err := dst.Write(h); err != nil {
		return nil, err
	}
	return &Writer{dst: dst, aead: aead, buf: make([]byte, p.ChunkSize+TagSize), c: p.ChunkSize}, nil
}

// Write implements io.Writer. A full chunk is sealed only once the next
// byte arrives, because the last chunk is sealed differently.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	total := 0
	for len(p) > 0 {
		if w.n == w.c {
			if err := w.seal(false); err != nil {
				return total, err
			}
		}
		k := copy(w.buf[w.n:w.c], p)
		w.n += k
		p = p[k:]
		total += k
	}
	return total, nil
}

// Close seals and writes the last chunk. It does not close the
// underlying writer.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if err := w.seal(true); err != nil {
		return err
	}
	w.err = errors.New("encrypt: write after Close")
	return nil
}

func (w *Writer) seal(last bool) error {
	chunkNonce(&w.nonce, w.index, last)
	ct := w.aead.Seal(w.buf[:0], w.nonce[:], w.buf[:w.n], nil)
	if _, err := w.dst.Write(ct); err != nil {
		w.err = err
		return err
	}
	w.index++
	w.n = 0
	return nil
}

// Reader decrypts a stream. Every chunk it returns has been
// authenticated; the stream as a whole is complete only when Read returns
// io.EOF. Errors are sticky.
type Reader struct {
	src   io.Reader
	aead  cipher.AEAD
	c     int
	buf   []byte // one sealed chunk and one byte of look-ahead
	carry int    // look-ahead bytes at the start of buf (0 or 1)
	pt    []byte // decrypted chunk
	out   []byte // the part of pt not yet returned
	index uint64
	nonce [12]byte
	done  bool
	err   error
}

// NewReader reads the header of the stream in src and checks it against p
// (normalized as NewWriter does): the parameters come from signed
// metadata, and the stream must agree with them.
func NewReader(src io.Reader, key ContentKey, p Params) (*Reader, error) {
	p, err := p.normalize()
	if err != nil {
		return nil, err
	}
	h := make([]byte, HeaderSize)
	if _, err := io.ReadFull(src, h); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("%w: %d-byte header cut short", ErrHeader, HeaderSize)
		}
		return nil, err
	}
	if string(h[:8]) != Magic {
		return nil, fmt.Errorf("%w: bad magic %q", ErrHeader, h[:8])
	}
	c, n := Cipher(binary.BigEndian.Uint16(h[8:])), int(binary.BigEndian.Uint32(h[10:]))
	if c != p.Cipher || n != p.ChunkSize {
		return nil, fmt.Errorf("%w: stream has %v with %d-byte chunks, want %v with %d", ErrParams, c, n, p.Cipher, p.ChunkSize)
	}
	aead, err := streamAEAD(key, h)
	if err != nil {
		return nil, err
	}
	return &Reader{src: src, aead: aead, c: n, buf: make([]byte, n+TagSize+1), pt: make([]byte, 0, n)}, nil
}

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	for len(r.out) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.done {
			r.err = io.EOF
			return 0, io.EOF
		}
		if err := r.next(); err != nil {
			r.err = err
		}
	}
	n := copy(p, r.out)
	r.out = r.out[n:]
	return n, nil
}

// next reads and opens one chunk. A chunk is the last one exactly when the
// stream ends within the chunk and its look-ahead byte.
func (r *Reader) next() error {
	m, err := io.ReadFull(r.src, r.buf[r.carry:])
	have := r.carry + m
	last := false
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		last = true
	case err != nil:
		return err
	}
	full := r.c + TagSize
	chunk := r.buf[:min(have, full)]
	if len(chunk) < TagSize {
		if len(chunk) == 0 && r.index > 0 {
			return ErrTruncated
		}
		return &ChunkError{Index: r.index, Err: ErrTruncated}
	}
	pt, err := r.open(chunk, last)
	if err != nil {
		// Say what happened when the chunk opens with the other flag:
		// a stream cut at a chunk boundary, or bytes added after its end.
		if _, err2 := r.open(chunk, !last); err2 == nil {
			if last {
				return ErrTruncated
			}
			return ErrTrailingData
		}
		return &ChunkError{Index: r.index, Err: ErrAuth}
	}
	if last && len(pt) == 0 && r.index > 0 {
		return ErrEmptyChunk
	}
	r.out = pt
	r.index++
	if last {
		r.done = true
		return nil
	}
	r.buf[0] = r.buf[full]
	r.carry = 1
	return nil
}

func (r *Reader) open(chunk []byte, last bool) ([]byte, error) {
	chunkNonce(&r.nonce, r.index, last)
	return r.aead.Open(r.pt[:0], r.nonce[:], chunk, nil)
}
