package delta

import (
	"bytes"
	"crypto/sha256"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// synthPair returns a structured old image of n bytes and a new one with the
// kinds of change a firmware update has: a patched byte every 64 KiB, an
// inserted block, a deleted block and a region of new data.
func synthPair(n int) (old, new []byte) {
	rng := newRand(21)
	old = structured(rng, n)
	// Make the image less regular than pure records: sprinkle noise.
	for i := 0; i < len(old); i += 1 + rng.IntN(512) {
		old[i] = byte(rng.Uint32())
	}
	new = make([]byte, 0, n+n/50)
	new = append(new, old[:n/4]...)
	new = append(new, randomBytes(rng, n/100)...) // inserted
	new = append(new, old[n/4+n/200:n/2]...)      // deleted n/200
	tail := bytes.Clone(old[n/2:])
	for i := 0; i < len(tail); i += 64 << 10 {
		tail[i]++
	}
	new = append(new, tail...)
	return old, new
}

// countingWriter hashes and counts the output without keeping it, as a
// device writing to its slot would.
type countingWriter struct {
	n int64
	h io.Writer
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return w.h.Write(p)
}

func TestRoundTrip100MB(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("100 MB round trip: skipped with -short and under -race")
	}
	old, new := synthPair(100 << 20)
	d, err := Diff(old, new)
	require.NoError(t, err)
	var patch bytes.Buffer
	require.NoError(t, d.Encode(&patch, FormatStream))
	t.Logf("old %d, new %d, %d control entries, stream patch %d bytes", len(old), len(new), d.Controls(), patch.Len())

	h := sha256.New()
	w := &countingWriter{h: h}
	want := sha256.Sum256(new)
	n, err := ApplyStream(w, bytes.NewReader(old), int64(len(old)), &patch, &ApplyOptions{MaxOutput: int64(len(new)), SHA256: want[:]})
	require.NoError(t, err)
	assert.Equal(t, int64(len(new)), n)
	assert.Equal(t, want[:], h.Sum(nil))
}
