package rollback

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"testing"

	"github.com/otaseal/otaseal/manifest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A health check asks the state's own record whether a slot holds it,
// without building a TUF target entry (finding 5 of issue 22).
func TestImageMatches(t *testing.T) {
	data := bytes.Repeat([]byte("image "), 500)
	sum := sha256.Sum256(data)
	img := Image{HardwareID: "hw", TargetPath: "hw/1.0.0/fw.bin", Version: manifest.MustParseVersion("1.0.0"),
		Length: int64(len(data)), SHA256: sum[:], Slot: "a"}
	flipped := bytes.Clone(data)
	flipped[17] ^= 1
	for _, tt := range []struct {
		name string
		slot []byte
		want bool
	}{
		{"same", data, true},
		{"one byte flipped", flipped, false},
		{"short", data[:len(data)-1], false},
		{"one byte more", append(bytes.Clone(data), 0), false},
		{"empty", nil, false},
	} {
		got, err := img.Matches(bytes.NewReader(tt.slot))
		require.NoError(t, err, tt.name)
		assert.Equal(t, tt.want, got, tt.name)
	}
	// A partition longer than the image is checked through a section.
	part := append(bytes.Clone(data), make([]byte, 4096)...)
	got, err := img.Matches(io.NewSectionReader(bytes.NewReader(part), 0, img.Length))
	require.NoError(t, err)
	assert.True(t, got)

	boom := errors.New("flash read error")
	_, err = img.Matches(io.MultiReader(bytes.NewReader(data[:10]), &errReader{boom}))
	assert.ErrorIs(t, err, boom)
}

type errReader struct{ err error }

func (r *errReader) Read([]byte) (int, error) { return 0, r.err }
