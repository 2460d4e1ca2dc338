package delta

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden streaming patch in testdata")

// goldenStream is a streaming patch between two relocated programs
// (relocatedPair with seed 7), made by this package when the format was
// written down. It pins the format: every patch ever published must keep
// applying, and the encoder must keep writing the same segments.
var goldenStream = filepath.Join("testdata", "relocated.otz")

func goldenPair() (old, new []byte) { return relocatedPair(newRand(7), 3000) }

func TestGoldenStream(t *testing.T) {
	old, new := goldenPair()
	fresh := encode(t, old, new, FormatStream)
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(goldenStream, fresh, 0o644))
	}
	golden, err := os.ReadFile(goldenStream)
	require.NoError(t, err)

	got, err := apply(old, golden, FormatStream, exactOpts(new))
	require.NoError(t, err, "the golden patch no longer applies")
	assert.True(t, bytes.Equal(new, got))

	// The segments, not the zstd frame: another zstd version may
	// compress the same segments differently.
	assert.Equal(t, streamPayload(t, golden), streamPayload(t, fresh), "the encoder writes other segments than the golden patch holds")
}

// TestGoldenStreamProbes flips each bit of the golden patch in turn and
// applies it without the output hash: the header checks and the zstd
// frame's checksum must catch every flip that changes the output. (Some
// flips change nothing: a larger window size, say.)
func TestGoldenStreamProbes(t *testing.T) {
	old, new := goldenPair()
	golden, err := os.ReadFile(goldenStream)
	require.NoError(t, err)
	bits := 8
	if raceEnabled {
		bits = 1 // every byte still, one bit of it, to keep -race quick
	}
	for i := range golden {
		for k := range bits {
			bit := (i + k) % 8
			bad := bytes.Clone(golden)
			bad[i] ^= 1 << bit
			got, err := apply(old, bad, FormatStream, &ApplyOptions{MaxOutput: int64(len(new)) + 1<<20})
			if err == nil && !bytes.Equal(new, got) {
				t.Errorf("flip of bit %d at byte %d changed the output unnoticed", bit, i)
			}
		}
	}
}

// streamPayload returns the decompressed segments of a streaming patch.
func streamPayload(t *testing.T, patch []byte) []byte {
	t.Helper()
	require.Greater(t, len(patch), streamHeaderSize)
	zr, err := zstd.NewReader(bytes.NewReader(patch[streamHeaderSize:]))
	require.NoError(t, err)
	defer zr.Close()
	b, err := io.ReadAll(zr)
	require.NoError(t, err)
	return b
}
