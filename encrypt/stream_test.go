package encrypt

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func testKey(b byte) ContentKey {
	var k ContentKey
	for i := range k {
		k[i] = b + byte(i)
	}
	return k
}

func seal(t testing.TB, key ContentKey, p Params, pt []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, key, p, nil)
	require.NoError(t, err)
	// Odd write sizes exercise the chunk boundary logic.
	for rest := pt; len(rest) > 0; {
		n := min(len(rest), 1+len(rest)%97)
		_, err := w.Write(rest[:n])
		require.NoError(t, err)
		rest = rest[n:]
	}
	require.NoError(t, w.Close())
	return buf.Bytes()
}

func open(key ContentKey, p Params, ct []byte) ([]byte, error) {
	r, err := NewReader(bytes.NewReader(ct), key, p)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func TestStreamRoundTrip(t *testing.T) {
	key := testKey(1)
	for _, c := range []Cipher{AES256GCM, ChaCha20Poly1305} {
		for _, chunk := range []int{MinChunkSize, 1000, 4096, DefaultChunkSize} {
			for _, n := range []int{0, 1, chunk - 1, chunk, chunk + 1, 3 * chunk, 3*chunk + 7} {
				p := Params{Cipher: c, ChunkSize: chunk}
				pt := make([]byte, n)
				rand.Read(pt)
				ct := seal(t, key, p, pt)
				assert.Equal(t, CiphertextSize(int64(n), chunk), int64(len(ct)), "%v %d %d", c, chunk, n)
				got, err := open(key, p, ct)
				require.NoError(t, err, "%v chunk %d len %d", c, chunk, n)
				assert.True(t, bytes.Equal(pt, got), "%v chunk %d len %d", c, chunk, n)
				// One byte at a time, as a slow link delivers it.
				r, err := NewReader(iotest.OneByteReader(bytes.NewReader(ct)), key, p)
				require.NoError(t, err)
				got, err = io.ReadAll(iotest.OneByteReader(r))
				require.NoError(t, err)
				assert.True(t, bytes.Equal(pt, got))
			}
		}
	}
}

// TestStreamRefusals is the corruption probe: every way of changing a
// valid stream must fail, never return the plaintext.
func TestStreamRefusals(t *testing.T) {
	key := testKey(2)
	p := Params{ChunkSize: MinChunkSize}
	pt := make([]byte, 4*MinChunkSize+10) // five chunks, the last short
	rand.Read(pt)
	ct := seal(t, key, p, pt)
	body := ct[HeaderSize:]
	full := MinChunkSize + TagSize
	chunk := func(i int) []byte { return body[i*full : min(len(body), (i+1)*full)] }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	hdr := ct[:HeaderSize]

	t.Run("flipped bit in every byte", func(t *testing.T) {
		for i := range ct {
			bad := bytes.Clone(ct)
			bad[i] ^= 0x10
			_, err := open(key, p, bad)
			require.Error(t, err, "byte %d", i)
		}
	})
	t.Run("truncated at every length", func(t *testing.T) {
		for n := 0; n < len(ct); n++ {
			_, err := open(key, p, ct[:n])
			require.Error(t, err, "length %d", n)
		}
		_, err := open(key, p, ct[:HeaderSize+2*full])
		assert.ErrorIs(t, err, ErrTruncated, "cut at a chunk boundary")
	})
	cases := []struct {
		name string
		ct   []byte
		want error
	}{
		{"reordered", cat(hdr, chunk(1), chunk(0), chunk(2), chunk(3), chunk(4)), ErrAuth},
		{"duplicated", cat(hdr, chunk(0), chunk(0), chunk(1), chunk(2), chunk(3), chunk(4)), ErrAuth},
		{"chunk dropped", cat(hdr, chunk(0), chunk(2), chunk(3), chunk(4)), ErrAuth},
		// The short last chunk and what follows it read as one chunk.
		{"extended by a byte", cat(ct, []byte{0}), ErrAuth},
		{"last chunk repeated", cat(ct, chunk(4)), ErrAuth},
		{"header only", cat(hdr), ErrTruncated},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := open(key, p, tc.ct)
			assert.ErrorIs(t, err, tc.want)
		})
	}
	t.Run("wrong key", func(t *testing.T) {
		_, err := open(testKey(3), p, ct)
		var ce *ChunkError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, uint64(0), ce.Index)
	})
	t.Run("other params than signed", func(t *testing.T) {
		_, err := open(key, Params{ChunkSize: 2 * MinChunkSize}, ct)
		assert.ErrorIs(t, err, ErrParams)
		_, err = open(key, Params{Cipher: ChaCha20Poly1305, ChunkSize: MinChunkSize}, ct)
		assert.ErrorIs(t, err, ErrParams)
	})
	t.Run("nothing returned past a bad chunk", func(t *testing.T) {
		bad := bytes.Clone(ct)
		bad[HeaderSize+2*full+5] ^= 1
		r, err := NewReader(bytes.NewReader(bad), key, p)
		require.NoError(t, err)
		got, err := io.ReadAll(r)
		assert.ErrorIs(t, err, ErrAuth)
		assert.Equal(t, pt[:2*MinChunkSize], got, "only the authenticated chunks before the bad one")
		_, err2 := r.Read(make([]byte, 1))
		assert.Equal(t, err, err2, "sticky")
	})
}

func TestStreamTrailingData(t *testing.T) {
	key := testKey(6)
	p := Params{ChunkSize: MinChunkSize}
	ct := seal(t, key, p, make([]byte, 2*MinChunkSize)) // the last chunk is full
	for _, extra := range [][]byte{{0}, make([]byte, 100), ct[HeaderSize+MinChunkSize+TagSize:]} {
		_, err := open(key, p, append(bytes.Clone(ct), extra...))
		assert.ErrorIs(t, err, ErrTrailingData, "%d bytes more", len(extra))
	}
}

func TestStreamEmptyLastChunkRefused(t *testing.T) {
	// A writer never ends a non-empty stream with an empty chunk; build one
	// by hand to make sure the reader refuses the second spelling.
	key := testKey(4)
	p := Params{ChunkSize: MinChunkSize}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, key, p, nil)
	require.NoError(t, err)
	_, err = w.Write(make([]byte, MinChunkSize))
	require.NoError(t, err)
	require.NoError(t, w.seal(false))
	require.NoError(t, w.seal(true))
	_, err = open(key, p, buf.Bytes())
	assert.ErrorIs(t, err, ErrEmptyChunk)
}

func TestParams(t *testing.T) {
	for _, p := range []Params{{ChunkSize: MinChunkSize - 1}, {ChunkSize: MaxChunkSize + 1}, {Cipher: 9}} {
		_, err := NewWriter(io.Discard, testKey(0), p, nil)
		assert.Error(t, err, "%+v", p)
	}
	c, err := ParseCipher("chacha20-poly1305")
	require.NoError(t, err)
	assert.Equal(t, ChaCha20Poly1305, c)
	_, err = ParseCipher("aes-128-ctr")
	assert.ErrorIs(t, err, ErrUnknownAlgorithm)
	assert.Equal(t, int64(-1), CiphertextSize(-1, MinChunkSize))
	assert.Equal(t, int64(HeaderSize+TagSize), CiphertextSize(0, MinChunkSize))
}

func TestNewReaderHeader(t *testing.T) {
	ct := seal(t, testKey(5), Params{}, []byte("x"))
	_, err := NewReader(bytes.NewReader(ct[:10]), testKey(5), Params{})
	assert.ErrorIs(t, err, ErrHeader)
	bad := bytes.Clone(ct)
	bad[0] = 'X'
	_, err = NewReader(bytes.NewReader(bad), testKey(5), Params{})
	assert.ErrorIs(t, err, ErrHeader)
	_, err = NewReader(iotest.ErrReader(errors.New("flash gone")), testKey(5), Params{})
	assert.EqualError(t, err, "flash gone")
}
