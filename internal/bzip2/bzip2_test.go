package bzip2

import (
	"bytes"
	stdbzip2 "compress/bzip2"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// peer returns the path of Debian's bzip2, the reference implementation.
// Without it the test is skipped on a developer machine but fails in CI
// (CI set), whose setup installs it.
func peer(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("bzip2")
	switch {
	case err == nil:
		return path
	case os.Getenv("CI") != "":
		t.Fatal("bzip2 not on PATH: CI must install Debian's bzip2")
	default:
		t.Skip("bzip2 not on PATH; install Debian's bzip2 to compare with libbz2")
	}
	return ""
}

// noise returns n uniformly random bytes: the worst case, all literals.
func noise(seed byte, n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{seed}).Read(b) // never fails
	return b
}

// records returns n bytes of short, nearly equal records, like the tables
// of a binary: what the Burrows-Wheeler transform does best on.
func records(rng *rand.Rand, n int) []byte {
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString("entry\x00")
		b.WriteByte(byte(b.Len() >> 8))
		b.WriteByte(byte(rng.IntN(4)))
	}
	return b.Bytes()[:n]
}

// inputs covers the edges of RLE1 (runs of 3, 4, 255, 256), of blocks
// (empty, several), of the alphabet (one byte, all bytes) and of the table
// count (from tiny to multi-block inputs).
func inputs() map[string][]byte {
	rng := rand.New(rand.NewPCG(41, 42))
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
		"random":              noise(41, 300<<10),
		"structured 3 blocks": records(rng, 2<<20),
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

// compress writes in in chunks Write calls of equal size.
func compress(t testing.TB, in []byte, chunks int) []byte {
	var out bytes.Buffer
	z := NewWriter(&out)
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

func TestWriterRoundTrip(t *testing.T) {
	for name, in := range inputs() {
		t.Run(name, func(t *testing.T) {
			c := compress(t, in, 7)
			got, err := io.ReadAll(stdbzip2.NewReader(bytes.NewReader(c)))
			require.NoError(t, err)
			assert.True(t, bytes.Equal(in, got), "round trip differs (%d vs %d bytes)", len(got), len(in))
		})
	}
}

// TestWriterDeterministic checks that the stream depends on the data only,
// not on how it is split across Write calls or on which encoder goroutine
// finishes first: a patch must be reproducible.
func TestWriterDeterministic(t *testing.T) {
	for name, in := range inputs() {
		if len(in) > 64<<10 && name != "structured 3 blocks" {
			continue // one multi-block input is enough, and they are slow under -race
		}
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, compress(t, in, 1), compress(t, in, 1000))
		})
	}
}

// failWriter accepts limit bytes, then fails every write.
type failWriter struct {
	limit int
	err   error
}

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.limit {
		return 0, w.err
	}
	w.limit -= len(p)
	return len(p), nil
}

// TestWriterSticksToFirstError checks that an error from the underlying
// writer, whether it comes while blocks are flowing or at Close, is
// returned and keeps being returned.
func TestWriterSticksToFirstError(t *testing.T) {
	in := records(rand.New(rand.NewPCG(7, 8)), 1200<<10) // two blocks
	full := compress(t, in, 1)
	for _, limit := range []int{0, len(full) - 1} {
		t.Run(fmt.Sprintf("after %d bytes", limit), func(t *testing.T) {
			errDisk := errors.New("disk full")
			z := NewWriter(&failWriter{limit: limit, err: errDisk})
			var err error
			for p := in; len(p) > 0 && err == nil; p = p[min(len(p), 64<<10):] {
				_, err = z.Write(p[:min(len(p), 64<<10)])
			}
			assert.ErrorIs(t, z.Close(), errDisk)
			_, err = z.Write([]byte("more"))
			assert.ErrorIs(t, err, errDisk)
		})
	}
}

// TestWriterReference checks our streams with libbz2 (bzip2 -t and
// -d) and compares sizes with bzip2 -9.
func TestWriterReference(t *testing.T) {
	bz := peer(t)
	// run runs bzip2 with args on stdin and returns its output.
	run := func(t *testing.T, stdin []byte, args ...string) []byte {
		cmd := exec.Command(bz, args...)
		cmd.Stdin = bytes.NewReader(stdin)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		require.NoError(t, err, "bzip2 %v: %s", args, stderr.String())
		return out
	}
	for name, in := range inputs() {
		t.Run(name, func(t *testing.T) {
			c := compress(t, in, 1)
			run(t, c, "-t")
			assert.True(t, bytes.Equal(in, run(t, c, "-dc")), "libbz2 decodes something else")
			ref := run(t, in, "-9c")
			t.Logf("%s: ours %d, libbz2 %d bytes", name, len(c), len(ref))
		})
	}
}

// FuzzWriter checks that whatever we compress, compress/bzip2 reads
// back unchanged.
func FuzzWriter(f *testing.F) {
	for _, in := range inputs() {
		if len(in) < 4096 {
			f.Add(in)
		}
	}
	f.Add(bytes.Repeat([]byte("ab"), 600))
	f.Fuzz(func(t *testing.T, in []byte) {
		c := compress(t, in, 3)
		got, err := io.ReadAll(stdbzip2.NewReader(bytes.NewReader(c)))
		require.NoError(t, err)
		assert.True(t, bytes.Equal(in, got), "round trip differs")
	})
}
