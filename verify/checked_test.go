package verify

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"io"
	"testing"

	"github.com/otaseal/otaseal/manifest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func hashesOf(data []byte) manifest.Hashes {
	s256 := sha256.Sum256(data)
	s512 := sha512.Sum512(data)
	return manifest.Hashes{"sha256": s256[:], "sha512": s512[:]}
}

func TestCheckedWriter(t *testing.T) {
	image := bytes.Repeat([]byte("firmware"), 1000)
	good := hashesOf(image)

	var out bytes.Buffer
	c, err := NewCheckedWriter(&out, int64(len(image)), good)
	require.NoError(t, err)
	_, err = io.Copy(c, bytes.NewReader(image))
	require.NoError(t, err)
	require.NoError(t, c.Finish())
	assert.Equal(t, image, out.Bytes())
	assert.Equal(t, int64(len(image)), c.Written())

	tests := []struct {
		name   string
		data   []byte
		length int64
		hashes manifest.Hashes
		want   error
	}{
		{"short", image[:len(image)-1], int64(len(image)), good, ErrLengthMismatch},
		{"long", append(bytes.Clone(image), 0), int64(len(image)), good, ErrLengthMismatch},
		{"flipped byte", flip(image, 100), int64(len(image)), good, ErrHashMismatch},
		{"sha512 wrong only", image, int64(len(image)), manifest.Hashes{"sha256": good["sha256"], "sha512": hashesOf(nil)["sha512"]}, ErrHashMismatch},
		{"sha256 only", flip(image, 0), int64(len(image)), manifest.Hashes{"sha256": good["sha256"]}, ErrHashMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			c, err := NewCheckedWriter(&out, tc.length, tc.hashes)
			require.NoError(t, err)
			_, werr := io.Copy(c, bytes.NewReader(tc.data))
			err = c.Finish()
			assert.ErrorIs(t, err, tc.want)
			if werr != nil {
				assert.ErrorIs(t, werr, tc.want)
			}
			assert.LessOrEqual(t, int64(out.Len()), tc.length, "never past the signed length")
			// Sticky.
			_, err = c.Write([]byte("x"))
			assert.ErrorIs(t, err, tc.want)
			assert.ErrorIs(t, c.Finish(), tc.want)
		})
	}
}

func flip(b []byte, i int) []byte {
	b = bytes.Clone(b)
	b[i] ^= 1
	return b
}

func TestCheckedWriterSetup(t *testing.T) {
	_, err := NewCheckedWriter(io.Discard, 1, nil)
	assert.ErrorIs(t, err, ErrNoHashes)
	_, err = NewCheckedWriter(io.Discard, 1, manifest.Hashes{"sha256": make([]byte, 32), "md5": make([]byte, 16)})
	assert.ErrorIs(t, err, ErrNoHashes)
	_, err = NewCheckedWriter(io.Discard, -1, hashesOf(nil))
	assert.ErrorIs(t, err, ErrLengthMismatch)

	c, err := NewCheckedWriter(io.Discard, 0, hashesOf(nil))
	require.NoError(t, err)
	require.NoError(t, c.Finish(), "empty target")
	_, err = c.Write([]byte("late"))
	assert.Error(t, err, "write after Finish")
}

type failWriter struct{ after int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("flash write failed")
	}
	f.after--
	return len(p), nil
}

func TestCheckedWriterSinkError(t *testing.T) {
	image := []byte("abcdef")
	c, err := NewCheckedWriter(&failWriter{after: 1}, int64(len(image)), hashesOf(image))
	require.NoError(t, err)
	_, err = c.Write(image[:3])
	require.NoError(t, err)
	_, err = c.Write(image[3:])
	assert.ErrorContains(t, err, "flash write failed")
	assert.ErrorContains(t, c.Finish(), "flash write failed")
}
