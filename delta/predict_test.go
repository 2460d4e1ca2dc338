package delta

import (
	"bytes"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// relocatedPair returns two builds of a synthetic x86-64-like program: code
// with calls (E8 rel32) between its functions and PC-relative loads
// (48 8D 05 disp32) from its data, then a table of 8-byte pointers to
// functions and data. The new build has a block of new code inserted in
// the middle of the code, so every address after it moved: the diff data
// is the changed addresses, as between two releases of real firmware.
func relocatedPair(rng *rand.Rand, items int) (old, new []byte) {
	type item struct {
		kind   int // 0 filler, 1 call, 2 load
		target int // item index (call) or data index (load)
		filler []byte
	}
	const dataItems = 512
	code := make([]item, items)
	for i := range code {
		switch k := rng.IntN(10); {
		case k < 3:
			code[i] = item{kind: 1, target: rng.IntN(items)}
		case k < 5:
			code[i] = item{kind: 2, target: rng.IntN(dataItems)}
		default:
			f := make([]byte, 1+rng.IntN(12))
			for j := range f {
				f[j] = byte(rng.Uint32() &^ 0x80) // no E8/E9 in filler
			}
			code[i] = item{filler: f}
		}
	}
	ptrs := make([]int, 256) // item indices the table points to
	for i := range ptrs {
		ptrs[i] = rng.IntN(items)
	}
	inserted := randomBytes(rng, 3000)
	for i := range inserted {
		inserted[i] &^= 0x80
	}
	build := func(insert bool) []byte {
		// First pass: positions of the items and of the data section.
		pos := make([]int, items)
		at := 0
		for i, it := range code {
			if insert && i == items/2 {
				at += len(inserted)
			}
			pos[i] = at
			switch it.kind {
			case 0:
				at += len(it.filler)
			case 1:
				at += 5
			case 2:
				at += 7
			}
		}
		dataStart := (at + 15) &^ 15
		dataPos := func(k int) int { return dataStart + 8*len(ptrs) + 16*k }
		out := make([]byte, 0, dataPos(dataItems))
		for i, it := range code {
			if insert && i == items/2 {
				out = append(out, inserted...)
			}
			switch it.kind {
			case 0:
				out = append(out, it.filler...)
			case 1:
				out = append(out, 0xE8)
				out = binary.LittleEndian.AppendUint32(out, uint32(pos[it.target]-(pos[i]+5)))
			case 2:
				out = append(out, 0x48, 0x8D, 0x05)
				out = binary.LittleEndian.AppendUint32(out, uint32(dataPos(it.target)-(pos[i]+7)))
			}
		}
		out = append(out, make([]byte, dataStart-len(out))...)
		for _, p := range ptrs {
			out = binary.LittleEndian.AppendUint64(out, uint64(0x400000+pos[p]))
		}
		for k := range dataItems {
			out = binary.LittleEndian.AppendUint64(out, uint64(k))
			out = binary.LittleEndian.AppendUint64(out, uint64(0x400000+dataPos(k)))
		}
		return out
	}
	return build(false), build(true)
}

// TestPredictionsReplaceMovedAddresses shows the tables at work: on a
// relocated program almost every run of changed bytes is a moved address
// the tables predict, the patch is much smaller than with literals only,
// and it applies exactly.
func TestPredictionsReplaceMovedAddresses(t *testing.T) {
	old, new := relocatedPair(newRand(5), 40000)
	d, err := Diff(old, new)
	require.NoError(t, err)
	seg := newSegmentWriter(io.Discard, old, new)
	require.NoError(t, d.writeSegments(seg))
	require.NoError(t, seg.flush())
	t.Logf("%d runs, %d predicted", seg.nruns, seg.npredicted)
	require.Greater(t, seg.nruns, 5000)
	assert.Greater(t, seg.npredicted, seg.nruns*8/10)

	var patch bytes.Buffer
	require.NoError(t, d.Encode(&patch, FormatStream))
	got, err := apply(old, patch.Bytes(), FormatStream, exactOpts(new))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(new, got))

	// The same edit script with every run written as literals, as the
	// previous version of the format did.
	var plain []byte
	var ctls []ctl
	var diff, extra []byte
	for i, o := range d.ops {
		ctls = append(ctls, ctl{o.add, o.copy, d.seek(i)})
		for j := range o.add {
			diff = append(diff, new[o.newPos+j]-old[o.oldPos+j])
		}
		extra = append(extra, new[o.newPos+o.add:o.newPos+o.add+o.copy]...)
	}
	plain = buildStream(t, uint64(len(old)), uint64(len(new)), streamRecords(ctls, diff, extra))
	got, err = apply(old, plain, FormatStream, exactOpts(new))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(new, got))
	t.Logf("patch %d bytes, %d with literals only", patch.Len(), len(plain))
	assert.Less(t, patch.Len()*5, len(plain)*4)
}

// TestStreamRoundTripRelocated checks that encoder and applier keep the
// same tables on programs of many sizes and layouts: a single diverging
// prediction would corrupt the output.
func TestStreamRoundTripRelocated(t *testing.T) {
	for seed := range uint64(24) {
		rng := newRand(100 + seed)
		old, new := relocatedPair(rng, 50+rng.IntN(20000))
		if seed%3 == 1 {
			new, old = old, new // code removed rather than inserted
		}
		got, err := apply(old, encode(t, old, new, FormatStream), FormatStream, exactOpts(new))
		require.NoError(t, err, "seed %d", seed)
		require.True(t, bytes.Equal(new, got), "seed %d", seed)
	}
}

func TestConvertCalls(t *testing.T) {
	rng := newRand(9)
	for _, n := range []int{0, 1, 4, 5, 6, 100, 70000} {
		src := randomBytes(rng, n)
		// Plenty of calls, near and far, and opcodes at the very end.
		for i := 0; i+5 <= n; i += 1 + rng.IntN(12) {
			src[i] = 0xE8 | byte(rng.IntN(2))
			if rng.IntN(2) == 0 {
				binary.LittleEndian.PutUint32(src[i+1:], uint32(int32(rng.IntN(1<<25)-1<<24)))
			}
		}
		if n > 0 {
			src[n-1] = 0xE8
		}
		pos := int64(rng.IntN(1 << 30))
		enc := bytes.Clone(src)
		cc := newCallConverter()
		assert.Equal(t, n, cc.convert(enc, pos, true, true))
		if n >= 100 {
			assert.NotEqual(t, src, enc, "nothing converted")
		}
		// Undo it in pieces of random sizes, as copyRun reads them.
		var got []byte
		var pending []byte
		dc := newCallConverter()
		for rest := enc; len(rest) > 0 || len(pending) > 0; {
			k := min(len(rest), 1+rng.IntN(9))
			buf := append(pending, rest[:k]...)
			rest = rest[k:]
			done := dc.convert(buf, pos+int64(len(got)), false, len(rest) == 0)
			assert.LessOrEqual(t, len(buf)-done, 4)
			got = append(got, buf[:done]...)
			pending = append([]byte(nil), buf[done:]...)
		}
		assert.Equal(t, src, append([]byte{}, got...), "n=%d", n)
	}
}

// FuzzStreamRoundTrip is FuzzRoundTrip for the streaming format alone,
// without the slow bzip2 side, so that the fuzzer spends its time on what
// encoder and applier must agree on: the tables and the call conversion.
func FuzzStreamRoundTrip(f *testing.F) {
	relOld, relNew := relocatedPair(newRand(4), 80)
	f.Add(relOld, relNew)
	calls := []byte{0xE8, 1, 0, 0, 0, 0xE9, 0xF0, 0xFF, 0xFF, 0xFF, 0xE8, 0xE8, 0, 0, 0, 0}
	f.Add([]byte("head"), append([]byte("head"), calls...))
	f.Add(bytes.Repeat([]byte{0, 0x10, 0x40, 0}, 64), bytes.Repeat([]byte{0, 0x20, 0x40, 0}, 64))
	f.Fuzz(func(t *testing.T, old, new []byte) {
		got, err := apply(old, encode(t, old, new, FormatStream), FormatStream, exactOpts(new))
		require.NoError(t, err)
		if !bytes.Equal(new, got) {
			t.Fatal("output differs")
		}
	})
}

// FuzzConvertCalls checks that the applier undoes the encoder's call
// conversion for any bytes and position, read in any two pieces.
func FuzzConvertCalls(f *testing.F) {
	f.Add([]byte{0xE8, 1, 2, 3, 0, 0xE9, 0xFF, 0xFF, 0xFF, 0xFF, 0xE8}, int64(1000), uint16(3))
	f.Add([]byte{0xE8, 0xE8, 0xE8, 0xE8, 0xE8, 0xE8, 0xE8}, int64(-5), uint16(6))
	f.Add([]byte("no calls here"), int64(0), uint16(0))
	f.Fuzz(func(t *testing.T, src []byte, pos int64, split uint16) {
		enc := bytes.Clone(src)
		cc := newCallConverter()
		cc.convert(enc, pos, true, true)
		cut := int(split) % (len(enc) + 1)
		first := bytes.Clone(enc[:cut])
		dc := newCallConverter()
		done := dc.convert(first, pos, false, cut == len(enc))
		if len(first)-done > 4 {
			t.Fatalf("%d bytes held back", len(first)-done)
		}
		rest := append(first[done:], enc[cut:]...)
		dc.convert(rest, pos+int64(done), false, true)
		got := append(first[:done:done], rest...)
		if !bytes.Equal(src, got) {
			t.Fatalf("round trip differs: %x -> %x", src, got)
		}
	})
}

// TestStreamChunkEdges covers the applier's chunking: calls in extra data
// whose fields cross the 32 KiB reads, and predicted runs whose window of
// old bytes crosses the chunks of an add run.
func TestStreamChunkEdges(t *testing.T) {
	// New code with nothing like old: all extra data, a near call every 5
	// bytes from offset 1, so fields straddle every chunk boundary.
	calls := make([]byte, 5*chunkSize/2+7)
	for i := 1; i+5 <= len(calls); i += 5 {
		calls[i] = 0xE8
		binary.LittleEndian.PutUint32(calls[i+1:], uint32(i*7))
	}
	// A table of 32-bit pointers whose targets all moved by 0x10: every
	// word changes in its low byte or two, so runs sit at every chunk edge.
	table := make([]byte, 3*chunkSize)
	moved := make([]byte, len(table))
	for i := 0; i < len(table); i += 4 {
		p := uint32(0x400000 + 3*i)
		binary.LittleEndian.PutUint32(table[i:], p)
		binary.LittleEndian.PutUint32(moved[i:], p+0x10)
	}
	for _, tc := range []struct {
		name     string
		old, new []byte
		maxPatch int // when not zero, the predictions must get it this small
	}{
		{"calls in extra data", nil, calls, 0},
		{"calls after old data", table, append(bytes.Clone(table), calls...), 0},
		{"moved pointers", table, moved, 1024},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Diff(tc.old, tc.new)
			require.NoError(t, err)
			var patch bytes.Buffer
			require.NoError(t, d.Encode(&patch, FormatStream))
			got, err := apply(tc.old, patch.Bytes(), FormatStream, exactOpts(tc.new))
			require.NoError(t, err)
			assert.True(t, bytes.Equal(tc.new, got))
			t.Logf("%d bytes -> patch %d bytes", len(tc.new), patch.Len())
			if tc.maxPatch > 0 {
				assert.LessOrEqual(t, patch.Len(), tc.maxPatch)
			}
		})
	}
}

// TestPredTableSparseMatchesFull checks that a table answers the same
// whether its slots are still in the map or already in the array: the
// move between them must not change a prediction, or encoder and applier
// of different patch sizes would disagree.
func TestPredTableSparseMatchesFull(t *testing.T) {
	rng := newRand(5)
	var sparse predTable
	full := predTable{full: new([1 << predBits]uint64)}
	keys := make([]uint32, 0, 4*predSparseMax)
	for i := range 4 * predSparseMax {
		x, v := rng.Uint32(), rng.Uint32()
		if i%3 == 0 && len(keys) > 0 {
			x = keys[rng.IntN(len(keys))] // overwrite a page seen before
		}
		keys = append(keys, x)
		sparse.put(x, v)
		full.put(x, v)
		for range 4 {
			k := keys[rng.IntN(len(keys))]
			if rng.IntN(2) == 0 {
				k = rng.Uint32() // most likely a page never put
			}
			gotV, gotOK := sparse.get(k)
			wantV, wantOK := full.get(k)
			require.Equal(t, wantOK, gotOK, "put %d, key %#x", i, k)
			require.Equal(t, wantV, gotV, "put %d, key %#x", i, k)
		}
	}
	assert.NotNil(t, sparse.full, "the table never moved to its array")
}
