package delta

import (
	"bytes"
	"compress/bzip2"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func bz2Inputs() map[string][]byte {
	rng := newRand(41)
	sparse := make([]byte, 1<<20)
	for i := 0; i < len(sparse); i += 1 + rng.IntN(80) {
		sparse[i] = byte(rng.IntN(5))
	}
	return map[string][]byte{
		"empty":               nil,
		"one byte":            {7},
		"runs of 3 4 5":       []byte("aaabbbbccccc"),
		"run of 255":          bytes.Repeat([]byte{9}, 255),
		"run of 256":          bytes.Repeat([]byte{9}, 256),
		"zeros 2MiB":          make([]byte, 2<<20),
		"random":              randomBytes(rng, 300<<10),
		"structured 3 blocks": structured(rng, 2<<20),
		"sparse diff 1MB":     sparse,
		"all bytes": func() []byte {
			b := make([]byte, 256*3)
			for i := range b {
				b[i] = byte(i)
			}
			return b
		}(),
		"periodic": bytes.Repeat([]byte("abcabcab"), 100000),
	}
}

func bz2Compress(t testing.TB, in []byte, chunks int) []byte {
	var out bytes.Buffer
	z := newBZ2Writer(&out)
	step := max(1, len(in)/max(chunks, 1))
	for p := in; len(p) > 0; {
		k := min(step, len(p))
		_, err := z.Write(p[:k])
		require.NoError(t, err)
		p = p[k:]
	}
	require.NoError(t, z.Close())
	return out.Bytes()
}

func TestBZ2WriterRoundTrip(t *testing.T) {
	for name, in := range bz2Inputs() {
		t.Run(name, func(t *testing.T) {
			c := bz2Compress(t, in, 7)
			got, err := io.ReadAll(bzip2.NewReader(bytes.NewReader(c)))
			require.NoError(t, err)
			assert.True(t, bytes.Equal(in, got), "round trip differs (%d vs %d bytes)", len(got), len(in))
		})
	}
}

// TestBZ2WriterReference checks our streams with libbz2 (bzip2 -t and
// -d) and compares sizes with bzip2 -9.
func TestBZ2WriterReference(t *testing.T) {
	bz := needTool(t, "bzip2")
	dir := t.TempDir()
	for name, in := range bz2Inputs() {
		t.Run(name, func(t *testing.T) {
			c := bz2Compress(t, in, 1)
			path := filepath.Join(dir, "x.bz2")
			require.NoError(t, os.WriteFile(path, c, 0o644))
			out, err := exec.Command(bz, "-t", path).CombinedOutput()
			require.NoError(t, err, "bzip2 -t: %s", out)
			got, err := exec.Command(bz, "-dc", path).Output()
			require.NoError(t, err)
			assert.True(t, bytes.Equal(in, got), "libbz2 decodes something else")
			cmd := exec.Command(bz, "-9c")
			cmd.Stdin = bytes.NewReader(in)
			ref, err := cmd.Output()
			require.NoError(t, err)
			t.Logf("%s: ours %d, libbz2 %d bytes", name, len(c), len(ref))
		})
	}
}

// FuzzBZ2Writer checks that whatever we compress, compress/bzip2 reads
// back unchanged.
func FuzzBZ2Writer(f *testing.F) {
	for _, in := range bz2Inputs() {
		if len(in) < 4096 {
			f.Add(in)
		}
	}
	f.Add(bytes.Repeat([]byte("ab"), 600))
	f.Fuzz(func(t *testing.T, in []byte) {
		c := bz2Compress(t, in, 3)
		got, err := io.ReadAll(bzip2.NewReader(bytes.NewReader(c)))
		require.NoError(t, err)
		assert.True(t, bytes.Equal(in, got), "round trip differs")
	})
}
