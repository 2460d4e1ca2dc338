package delta

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fuzzSeeds returns (old, patch) pairs of valid and hostile patches in
// format f, for the appliers' seed corpus.
func fuzzSeeds(t testing.TB, f Format) [][2][]byte {
	rng := newRand(13)
	old := structured(rng, 2000)
	new := append(bytes.Clone(old[:700]), []byte("a new section")...)
	new = append(new, old[900:]...)
	var seeds [][2][]byte
	// A relocated program, so that the stream seeds use predicted runs
	// and converted calls.
	relOld, relNew := relocatedPair(rng, 300)
	for _, pair := range [][2][]byte{{old, new}, {nil, []byte("from nothing")}, {old, nil}, {old, old}, {relOld, relNew}} {
		d, err := Diff(pair[0], pair[1])
		require.NoError(t, err)
		var b bytes.Buffer
		require.NoError(t, d.Encode(&b, f))
		seeds = append(seeds, [2][]byte{pair[0], b.Bytes()})
		if f == FormatStream && len(pair[0])+len(pair[1]) > 0 {
			// The LZ layout too, in both entropy stages, whichever
			// Encode chose, and the zstd-coded bsdiff layout Encode
			// writes only for larger images.
			seeds = append(seeds, [2][]byte{pair[0], encodeLZ(t, pair[0], pair[1])},
				[2][]byte{pair[0], encodeRCLZLayout(t, pair[0], pair[1])},
				[2][]byte{pair[0], encodeZstdSegments(t, pair[0], pair[1])})
		}
	}
	hostile := [][]ctl{
		{{-1, 5, 0}},
		{{0, 0, -5}, {10, 0, 0}},
		{{5, 1<<63 - 3, 0}},
		make([]ctl, 100),
	}
	zeros := make([]byte, 64)
	for _, c := range hostile {
		var p []byte
		if f == FormatBSDIFF40 {
			p = buildBSDIFF40(t, c, zeros, zeros, 10)
		} else {
			p = buildStream(t, uint64(len(old)), 10, streamRecords(c, zeros, zeros))
			seeds = append(seeds, [2][]byte{old, buildRCStream(t, uint64(len(old)), 10, streamRecords(c, zeros, zeros))})
		}
		seeds = append(seeds, [2][]byte{old, p})
	}
	return seeds
}

// fuzzApply checks the applier's promises on arbitrary input: no panic, no
// byte written past the limit, the returned count matches what was written.
func fuzzApply(f *testing.F, format Format) {
	for _, s := range fuzzSeeds(f, format) {
		f.Add(s[0], s[1], uint16(4000))
	}
	f.Fuzz(func(t *testing.T, old, patch []byte, max uint16) {
		w := &limitWriter{t: t, max: int64(max)}
		opts := &ApplyOptions{MaxOutput: int64(max), MaxControls: 1 << 12}
		var n int64
		var err error
		if format == FormatBSDIFF40 {
			n, err = ApplyBSDIFF40(w, bytes.NewReader(old), int64(len(old)), bytes.NewReader(patch), int64(len(patch)), opts)
		} else {
			n, err = ApplyStream(w, bytes.NewReader(old), int64(len(old)), bytes.NewReader(patch), opts)
		}
		assert.Equal(t, w.n, n)
		if err == nil {
			assert.LessOrEqual(t, n, int64(max))
		}
	})
}

func FuzzApplyBSDIFF40(f *testing.F) { fuzzApply(f, FormatBSDIFF40) }

func FuzzApplyStream(f *testing.F) { fuzzApply(f, FormatStream) }

// FuzzRoundTrip checks that any pair survives Diff, both encoders and both
// appliers unchanged.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("the quick brown fox"), []byte("the quick red fox jumps"))
	f.Add([]byte{}, []byte{1, 2, 3})
	f.Add(bytes.Repeat([]byte("ab"), 100), bytes.Repeat([]byte("abc"), 70))
	// Moved addresses and calls, for the streaming format's predictions.
	relOld, relNew := relocatedPair(newRand(3), 60)
	f.Add(relOld, relNew)
	f.Fuzz(func(t *testing.T, old, new []byte) {
		for _, format := range formats {
			patch := encode(t, old, new, format)
			got, err := apply(old, patch, format, exactOpts(new))
			require.NoError(t, err)
			assert.True(t, bytes.Equal(new, got), "%v: output differs", format)
		}
	})
}
