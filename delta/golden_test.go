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
// (relocatedPair with seed 7) in the zstd-coded bsdiff layout (OTADLT02),
// made by this package when the format was written down; goldenRCStream
// is the same segments range-coded (OTADLR01), which Encode writes for
// images this small now. They pin the format: every patch ever published
// must keep applying, and the encoder must keep writing the same segments.
var (
	goldenStream   = filepath.Join("testdata", "relocated.otz")
	goldenRCStream = filepath.Join("testdata", "relocated-rc.otz")
)

func goldenPair() (old, new []byte) { return relocatedPair(newRand(7), 3000) }

func TestGoldenStream(t *testing.T) {
	old, new := goldenPair()
	fresh := encode(t, old, new, FormatStream)
	require.Equal(t, rcSegMagic, string(fresh[:8]))
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(goldenRCStream, fresh, 0o644))
	}
	for _, path := range []string{goldenStream, goldenRCStream} {
		golden, err := os.ReadFile(path)
		require.NoError(t, err)
		got, err := apply(old, golden, FormatStream, exactOpts(new))
		require.NoError(t, err, "%s no longer applies", path)
		assert.True(t, bytes.Equal(new, got))

		// The segments, not the zstd frame: another zstd version may
		// compress the same segments differently.
		assert.Equal(t, streamPayload(t, golden), streamPayload(t, fresh), "the encoder writes other segments than %s holds", path)
	}
	// The range coder is ours: the encoder must write the same bytes.
	golden, err := os.ReadFile(goldenRCStream)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(golden, fresh), "the encoder writes another patch than the golden one")
}

// TestGoldenStreamProbes flips each bit of the golden patches in turn and
// applies them without the output hash: the header checks and the
// checksum of the zstd frame or of the range-coded stream must catch every
// flip that changes the output. (Some flips change nothing: a larger zstd
// window size, say.)
func TestGoldenStreamProbes(t *testing.T) {
	old, new := goldenPair()
	for _, path := range []string{goldenStream, goldenRCStream} {
		golden, err := os.ReadFile(path)
		require.NoError(t, err)
		bits := 8
		if path == goldenRCStream {
			// Two bits of every byte: the range decoder runs to the
			// checksum at the end of the stream on most flips.
			bits = 2
		}
		if raceEnabled {
			bits = 1 // every byte still, one bit of it, to keep -race quick
		}
		for i := range golden {
			for k := range bits {
				bit := (i + k*(8/bits)) % 8
				bad := bytes.Clone(golden)
				bad[i] ^= 1 << bit
				got, err := apply(old, bad, FormatStream, &ApplyOptions{MaxOutput: int64(len(new)) + 1<<20})
				if err == nil && !bytes.Equal(new, got) {
					t.Errorf("%s: flip of bit %d at byte %d changed the output unnoticed", path, bit, i)
				}
			}
		}
	}
}

// streamPayload returns the decoded segments of a patch in the bsdiff
// layout, zstd- or range-coded.
func streamPayload(t *testing.T, patch []byte) []byte {
	t.Helper()
	require.Greater(t, len(patch), streamHeaderSize)
	if string(patch[:8]) == rcSegMagic {
		return rcDecodeAll(t, patch[streamHeaderSize:], nil)
	}
	zr, err := zstd.NewReader(bytes.NewReader(patch[streamHeaderSize:]))
	require.NoError(t, err)
	defer zr.Close()
	b, err := io.ReadAll(zr)
	require.NoError(t, err)
	return b
}
