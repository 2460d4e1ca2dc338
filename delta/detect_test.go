package delta

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Each encoder's output is recognised by its magic, and nothing else is.
func TestDetectFormat(t *testing.T) {
	old := bytes.Repeat([]byte("old image "), 100)
	new := append(bytes.Clone(old), "and a bit more"...)
	s, err := Diff(old, new)
	require.NoError(t, err)
	for _, want := range []Format{FormatBSDIFF40, FormatStream} {
		var patch bytes.Buffer
		require.NoError(t, s.Encode(&patch, want))
		got, err := DetectFormat(patch.Bytes()[:MagicSize])
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
	// Every layout of the streaming format.
	for _, magic := range []string{streamMagic, lzMagic, rcSegMagic, rcLZMagic} {
		got, err := DetectFormat([]byte(magic))
		require.NoError(t, err)
		assert.Equal(t, FormatStream, got, magic)
	}
	for _, bad := range [][]byte{nil, []byte("BSDIFF4"), []byte("not a patch at all"), []byte("OTADLT01........")} {
		_, err := DetectFormat(bad)
		assert.ErrorIs(t, err, ErrFormat, "%q", bad)
	}
}
