package delta

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Encode's memory for images of at most lzMaxImages bytes together is
// sized to them: no table of fixed size (zstd's best level took about 70 MB
// whatever the input, which made generation on a 0.5 MB pair peak at 80
// MiB where C bsdiff needs 7).

// maxEncodeAllocPerByte bounds what one Encode in the streaming format
// allocates per byte of old and new, for both range-coded trials together
// (the LZ trial's input copy and chains take about 6.25 bytes per byte).
const maxEncodeAllocPerByte = 16

func TestEncodeAllocSizedToInput(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes what is allocated")
	}
	for _, items := range []int{400, 80000} {
		old, new := farPair(newRand(61), items)
		t.Run(fmt.Sprintf("%dKiB", (len(old)+len(new))>>10), func(t *testing.T) {
			d, err := Diff(old, new)
			require.NoError(t, err)
			require.True(t, d.lzCandidate(), "both trials run")
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			var b bytes.Buffer
			require.NoError(t, d.Encode(&b, FormatStream))
			runtime.ReadMemStats(&after)
			total := int(after.TotalAlloc - before.TotalAlloc)
			images := len(old) + len(new)
			t.Logf("%d+%d bytes: Encode allocated %d (%.1f per byte), patch %d", len(old), len(new), total, float64(total)/float64(images), b.Len())
			assert.Less(t, total, maxEncodeAllocPerByte*images+(64<<10))
		})
	}
}

// BenchmarkEncodeSmall encodes pairs below the range-coded layouts' bound:
// B/op grows with the images, from kilobytes.
func BenchmarkEncodeSmall(b *testing.B) {
	for _, items := range []int{400, 80000} {
		old, new := farPair(newRand(62), items)
		d, err := Diff(old, new)
		require.NoError(b, err)
		b.Run(fmt.Sprintf("%dKiB", (len(old)+len(new))>>10), func(b *testing.B) {
			b.SetBytes(int64(len(new)))
			b.ReportAllocs()
			var size int
			for b.Loop() {
				var buf bytes.Buffer
				if err := d.Encode(&buf, FormatStream); err != nil {
					b.Fatal(err)
				}
				size = buf.Len()
			}
			b.ReportMetric(float64(size), "patch-bytes")
		})
	}
}
