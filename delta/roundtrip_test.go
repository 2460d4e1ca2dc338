package delta

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var formats = []Format{FormatBSDIFF40, FormatStream}

// encode diffs old and new and encodes the result in format f.
func encode(t testing.TB, old, new []byte, f Format) []byte {
	t.Helper()
	d, err := Diff(old, new)
	require.NoError(t, err)
	var patch bytes.Buffer
	require.NoError(t, d.Encode(&patch, f))
	return patch.Bytes()
}

// apply applies patch in format f with the given options.
func apply(old, patch []byte, f Format, opts *ApplyOptions) ([]byte, error) {
	var out bytes.Buffer
	var n int64
	var err error
	switch f {
	case FormatBSDIFF40:
		n, err = ApplyBSDIFF40(&out, bytes.NewReader(old), int64(len(old)), bytes.NewReader(patch), int64(len(patch)), opts)
	case FormatStream:
		n, err = ApplyStream(&out, bytes.NewReader(old), int64(len(old)), bytes.NewReader(patch), opts)
	default:
		panic("unknown format")
	}
	if n != int64(out.Len()) {
		panic("byte count differs from bytes written")
	}
	return out.Bytes(), err
}

// exactOpts are the options a device uses: the signed length and hash.
func exactOpts(new []byte) *ApplyOptions {
	sum := sha256.Sum256(new)
	return &ApplyOptions{MaxOutput: int64(len(new)), SHA256: sum[:]}
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed+1)) }

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// structured returns a text of repeated, slightly varied records, like a
// binary with tables: the case bsdiff's approximate matching exists for.
func structured(rng *rand.Rand, n int) []byte {
	b := make([]byte, 0, n)
	for len(b) < n {
		rec := []byte("entry\x00\x00\x00")
		rec[6] = byte(len(b) >> 8)
		rec[7] = byte(rng.IntN(4))
		b = append(b, rec...)
	}
	return b[:n]
}

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	base := randomBytes(rng, 64<<10)
	code := structured(rng, 64<<10)
	changed := func(b []byte, at int) []byte {
		c := bytes.Clone(b)
		c[at] ^= 0x5a
		return c
	}
	insert := func(b []byte, at int, ins []byte) []byte {
		return append(append(append([]byte{}, b[:at]...), ins...), b[at:]...)
	}
	del := func(b []byte, from, to int) []byte {
		return append(append([]byte{}, b[:from]...), b[to:]...)
	}
	shifted := bytes.Clone(code)
	for i := 0; i+8 <= len(shifted); i += 64 {
		shifted[i+6]++ // every record's pointer moved: approximate match
	}
	tests := []struct {
		name     string
		old, new []byte
	}{
		{"both empty", nil, nil},
		{"empty old", nil, base[:1000]},
		{"empty new", base, nil},
		{"identical", base, base},
		{"one byte changed", base, changed(base, 30000)},
		{"first byte changed", base, changed(base, 0)},
		{"last byte changed", base, changed(base, len(base)-1)},
		{"inserted block", base, insert(base, 20000, randomBytes(rng, 3000))},
		{"deleted block", base, del(base, 10000, 15000)},
		{"moved blocks", base, append(bytes.Clone(base[32<<10:]), base[:32<<10]...)},
		{"unrelated", base[:5000], randomBytes(rng, 7000)},
		{"structured shifted", code, shifted},
		{"structured edited", code, insert(del(code, 100, 900), 40000, []byte("patched in"))},
		{"one byte each", []byte{1}, []byte{2}},
		{"grow from one byte", []byte{7}, base[:100]},
	}
	for _, tt := range tests {
		for _, f := range formats {
			t.Run(tt.name+"/"+f.String(), func(t *testing.T) {
				patch := encode(t, tt.old, tt.new, f)
				got, err := apply(tt.old, patch, f, exactOpts(tt.new))
				require.NoError(t, err)
				assert.Equal(t, len(tt.new), len(got))
				assert.True(t, bytes.Equal(tt.new, got), "output differs from new")
			})
		}
	}
}

func TestRoundTripRandomEdits(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for iter := 0; iter < 40; iter++ {
		old := structured(rng, 1+rng.IntN(20000))
		if iter%2 == 0 {
			old = randomBytes(rng, 1+rng.IntN(20000))
		}
		new := bytes.Clone(old)
		for e := rng.IntN(10); e > 0; e-- {
			at := rng.IntN(len(new) + 1)
			switch rng.IntN(3) {
			case 0:
				new = append(new[:at:at], append(randomBytes(rng, rng.IntN(300)), new[at:]...)...)
			case 1:
				end := min(len(new), at+rng.IntN(300))
				new = append(new[:at:at], new[end:]...)
			case 2:
				if at < len(new) {
					new[at]++
				}
			}
		}
		for _, f := range formats {
			patch := encode(t, old, new, f)
			got, err := apply(old, patch, f, exactOpts(new))
			require.NoError(t, err, "iteration %d, %v", iter, f)
			assert.True(t, bytes.Equal(new, got), "iteration %d, %v: output differs", iter, f)
		}
	}
}

// TestChunkBoundaryKeepsAlignment: a replaced region followed by aligned
// data up to a scan-chunk boundary must cost the replaced bytes as extra
// data, not the aligned tail too (the last entry of a chunk has no later
// entry to recover the alignment).
func TestChunkBoundaryKeepsAlignment(t *testing.T) {
	// Small chunks keep this fast under -race, which also checks the
	// parallel scan of many chunks.
	defer func(c int) { scanChunk = c }(scanChunk)
	scanChunk = 64 << 10
	rng := newRand(51)
	old := randomBytes(rng, 3*scanChunk)
	new := bytes.Clone(old)
	// Replace 60% of the second chunk, leaving a fifth of it aligned
	// before the boundary.
	at, n := scanChunk+scanChunk/5, 3*scanChunk/5
	copy(new[at:at+n], randomBytes(rng, n))
	d, err := Diff(old, new)
	require.NoError(t, err)
	var extra int64
	for _, o := range d.ops {
		extra += o.copy
	}
	assert.LessOrEqual(t, extra, int64(n+1024), "extra data beyond the replaced region")
	got, err := apply(old, encode(t, old, new, FormatStream), FormatStream, exactOpts(new))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(new, got))
}
