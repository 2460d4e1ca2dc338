package delta

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A fleet gets many tiny patches (a configuration byte, a version string),
// and the apply fuzzer runs one per input: the fixed cost of ApplyStream
// and ApplyBSDIFF40, the part that does not grow with the patch, must stay
// small.

// tinyPair returns an image of n bytes and a new version with a few words
// changed and a few bytes appended: a patch of a few hundred bytes.
func tinyPair(n int) (old, new []byte) {
	rng := newRand(41)
	old = structured(rng, n)
	new = bytes.Clone(old)
	for i := 1024; i < len(new); i += 3000 + n/8 {
		binary.LittleEndian.PutUint32(new[i:], binary.LittleEndian.Uint32(old[i:])+0x140)
	}
	new = append(new, "v2.0.1\x00"...)
	return old, new
}

// tinyCases are tiny patches of a small image and of a larger one, whose
// size must not matter.
type tinyCase struct {
	format Format
	size   int
}

var tinyCases = []tinyCase{
	{FormatStream, 16 << 10},
	{FormatStream, 4 << 20},
	{FormatBSDIFF40, 16 << 10},
}

func (tc tinyCase) name() string { return fmt.Sprintf("%s/%dKiB", tc.format, tc.size>>10) }

// maxTinyApplyAlloc is the most one apply of a tiny patch may allocate.
const maxTinyApplyAlloc = 100 << 10

func TestApplyTinyAllocatesLittle(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes what is allocated")
	}
	for _, tc := range tinyCases {
		if tc.format == FormatBSDIFF40 {
			// compress/bzip2 allocates 3.6 MB per stream for the
			// block size "BZh9" declares, whatever the block holds.
			continue
		}
		old, new := tinyPair(tc.size)
		f := tc.format
		t.Run(tc.name(), func(t *testing.T) {
			patch := encode(t, old, new, f)
			require.Less(t, len(patch), 1024, "the pair is meant to make a tiny patch")
			opts := exactOpts(new)
			_, err := apply(old, patch, f, opts) // warm any pools
			require.NoError(t, err)
			var before, after runtime.MemStats
			const runs = 20
			runtime.ReadMemStats(&before)
			for range runs {
				_, err = applyDiscard(old, patch, f, opts)
			}
			runtime.ReadMemStats(&after)
			require.NoError(t, err)
			perRun := (after.TotalAlloc - before.TotalAlloc) / runs
			t.Logf("%s: patch %d bytes, %d bytes allocated per apply", f, len(patch), perRun)
			assert.Less(t, perRun, uint64(maxTinyApplyAlloc))
		})
	}
}

// BenchmarkApplyTiny measures the fixed cost of applying: time and
// allocation for a patch of a few hundred bytes.
func BenchmarkApplyTiny(b *testing.B) {
	for _, tc := range tinyCases {
		old, new := tinyPair(tc.size)
		f := tc.format
		patch := encode(b, old, new, f)
		b.Run(tc.name(), func(b *testing.B) {
			b.ReportAllocs()
			b.ReportMetric(float64(len(patch)), "patch-bytes")
			opts := &ApplyOptions{MaxOutput: int64(len(new))}
			for b.Loop() {
				if _, err := applyDiscard(old, patch, f, opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// applyDiscard applies patch in format f and throws the output away, so
// that only the applier's own allocations count.
func applyDiscard(old, patch []byte, f Format, opts *ApplyOptions) (int64, error) {
	if f == FormatBSDIFF40 {
		return ApplyBSDIFF40(io.Discard, bytes.NewReader(old), int64(len(old)), bytes.NewReader(patch), int64(len(patch)), opts)
	}
	return ApplyStream(io.Discard, bytes.NewReader(old), int64(len(old)), bytes.NewReader(patch), opts)
}
