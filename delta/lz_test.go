package delta

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// farPair returns two distant builds of a synthetic program: new keeps a
// quarter of old's code, and the rest is rewritten code made of short
// pieces of old (4 to 8 bytes, too short for bsdiff to align on) between
// new bytes. Most of new is extra data to bsdiff, the case the LZ layout
// exists for.
func farPair(rng *rand.Rand, items int) (old, new []byte) {
	old, _ = relocatedPair(rng, items)
	new = bytes.Clone(old[:len(old)/4])
	for len(new) < len(old) {
		p := rng.IntN(len(old) - 8)
		new = append(new, old[p:p+4+rng.IntN(5)]...)
		new = append(new, randomBytes(rng, 1+rng.IntN(2))...)
	}
	return old, new
}

func TestLZChosenForDistantVersions(t *testing.T) {
	old, new := farPair(newRand(21), 3000)
	d, err := Diff(old, new)
	require.NoError(t, err)
	require.True(t, d.lzCandidate())
	seg, err := d.rcSegments()
	require.NoError(t, err)
	var chosen bytes.Buffer
	require.NoError(t, d.Encode(&chosen, FormatStream))
	assert.Equal(t, rcLZMagic, string(chosen.Bytes()[:8]))
	assert.Less(t, chosen.Len(), len(seg)+streamHeaderSize)
	t.Logf("far pair: LZ layout %d bytes, bsdiff layout %d", chosen.Len(), len(seg)+streamHeaderSize)
	got, err := apply(old, chosen.Bytes(), FormatStream, exactOpts(new))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(new, got))
	f, err := DetectFormat(chosen.Bytes())
	require.NoError(t, err)
	assert.Equal(t, FormatStream, f)

	// Close versions keep the bsdiff layout without trying the other.
	old, new = relocatedPair(newRand(22), 3000)
	d, err = Diff(old, new)
	require.NoError(t, err)
	assert.False(t, d.lzCandidate())
	assert.Equal(t, rcSegMagic, string(encode(t, old, new, FormatStream)[:8]))
}

// lzEncoders are the LZ layout's two entropy stages: zstd (written by
// releases before the range coder, still applied) and the range coder.
var lzEncoders = []struct {
	name   string
	encode func(t testing.TB, old, new []byte) []byte
}{{"zstd", encodeLZ}, {"rc", encodeRCLZLayout}}

func TestLZRoundTrip(t *testing.T) {
	rng := newRand(23)
	relOld, relNew := relocatedPair(rng, 500)
	farOld, farNew := farPair(rng, 3000)
	// Longer than a read of the applier, with fields on every kind of
	// boundary.
	big := randomBytes(rng, 3*chunkSize+77)
	for i := 0; i+6 <= len(big); i += 1 + rng.IntN(9) {
		switch rng.IntN(3) {
		case 0:
			big[i] = 0xE8
		case 1:
			big[i], big[i+1] = 0x8B, 0x05|byte(rng.IntN(8))<<3
		}
	}
	for _, tc := range []struct {
		name     string
		old, new []byte
	}{
		{"empty old", nil, []byte("from nothing")},
		{"one byte", []byte{1}, []byte{0xE8}},
		{"field at the end", []byte("x"), []byte{0x90, 0x8D, 0x05, 1, 2, 3, 0}},
		{"relocated", relOld, relNew},
		{"far", farOld, farNew},
		{"across reads", big[:100], big},
		{"against itself", big, big},
	} {
		for _, enc := range lzEncoders {
			t.Run(tc.name+"/"+enc.name, func(t *testing.T) {
				patch := enc.encode(t, tc.old, tc.new)
				got, err := apply(tc.old, patch, FormatStream, exactOpts(tc.new))
				require.NoError(t, err)
				assert.True(t, bytes.Equal(tc.new, got))
			})
		}
	}
}

func TestX86Filter(t *testing.T) {
	rng := newRand(24)
	for _, n := range []int{0, 1, 5, 6, 7, 100, 70000} {
		src := randomBytes(rng, n)
		// Fields near and far, valid and not, some overlapping.
		for i := 0; i+6 <= n; i += 1 + rng.IntN(10) {
			field := 1
			if rng.IntN(2) == 0 {
				src[i] = 0xE8 | byte(rng.IntN(2))
			} else {
				src[i] = []byte{0x89, 0x8B, 0x8D}[rng.IntN(3)]
				src[i+1] = 0x05 | byte(rng.IntN(8))<<3
				field = 2
			}
			if rng.IntN(2) == 0 {
				binary.LittleEndian.PutUint32(src[i+field:], uint32(int32(rng.IntN(1<<25)-1<<24)))
			}
		}
		if n >= 2 {
			src[n-2], src[n-1] = 0x8D, 0x05
		}
		pos := int64(rng.IntN(1 << 30))
		enc := bytes.Clone(src)
		f := newX86Filter()
		assert.Equal(t, n, f.convert(enc, pos, true, true))
		if n >= 100 {
			assert.NotEqual(t, src, enc, "nothing converted")
		}
		// Restore it in pieces of random sizes, as applyLZ reads them.
		var got, pending []byte
		r := newX86Filter()
		for rest := enc; len(rest) > 0 || len(pending) > 0; {
			k := min(len(rest), 1+rng.IntN(11))
			buf := append(pending, rest[:k]...)
			rest = rest[k:]
			done := r.convert(buf, pos+int64(len(got)), false, len(rest) == 0)
			assert.Less(t, len(buf)-done, x86FilterMargin)
			got = append(got, buf[:done]...)
			pending = append([]byte(nil), buf[done:]...)
		}
		assert.Equal(t, src, append([]byte{}, got...), "n=%d", n)
	}
}

// FuzzX86Filter checks that restoring undoes the filter for any bytes and
// position, read in any two pieces.
func FuzzX86Filter(f *testing.F) {
	f.Add([]byte{0xE8, 1, 2, 3, 0, 0x8B, 0x05, 0xFF, 0xFF, 0xFF, 0xFF, 0x8D}, int64(1000), uint16(3))
	f.Add([]byte{0x8D, 0x05, 0x8D, 0x05, 0, 0, 0, 0, 0xE8, 0xE8, 0, 0}, int64(-7), uint16(5))
	f.Add([]byte("no fields here"), int64(0), uint16(0))
	f.Fuzz(func(t *testing.T, src []byte, pos int64, split uint16) {
		enc := bytes.Clone(src)
		e := newX86Filter()
		e.convert(enc, pos, true, true)
		cut := int(split) % (len(enc) + 1)
		first := bytes.Clone(enc[:cut])
		r := newX86Filter()
		done := r.convert(first, pos, false, cut == len(enc))
		if len(first)-done >= x86FilterMargin {
			t.Fatalf("%d bytes held back", len(first)-done)
		}
		rest := append(first[done:], enc[cut:]...)
		r.convert(rest, pos+int64(done), false, true)
		got := append(first[:done:done], rest...)
		if !bytes.Equal(src, got) {
			t.Fatalf("round trip differs: %x -> %x", src, got)
		}
	})
}

func goldenFarPair() (old, new []byte) { return farPair(newRand(25), 400) }

// goldenLZ is a patch in the zstd-coded LZ layout (OTADLZ01) that Encode
// wrote before the range coder; goldenRCLZ one in the range-coded LZ
// layout (OTADLZ02), which Encode writes now. Both must keep applying.
var (
	goldenLZ   = filepath.Join("testdata", "far.otz")
	goldenRCLZ = filepath.Join("testdata", "far-rc.otz")
)

// filtered returns b filtered as the LZ layouts filter an image.
func filtered(b []byte) []byte {
	b = bytes.Clone(b)
	f := newX86Filter()
	f.convert(b, 0, true, true)
	return b
}

func TestGoldenLZ(t *testing.T) {
	old, new := goldenFarPair()
	golden, err := os.ReadFile(goldenLZ)
	require.NoError(t, err)
	require.Equal(t, lzMagic, string(golden[:8]))
	got, err := apply(old, golden, FormatStream, exactOpts(new))
	require.NoError(t, err, "the golden patch no longer applies")
	assert.True(t, bytes.Equal(new, got))
	// The frame holds the filtered image: the filter is part of the format.
	zr, err := zstd.NewReader(bytes.NewReader(golden[streamHeaderSize:]), zstd.WithDecoderDictRaw(0, filtered(old)))
	require.NoError(t, err)
	defer zr.Close()
	frame, err := io.ReadAll(zr)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(filtered(new), frame), "the golden frame does not hold the filtered image")
	assert.False(t, bytes.Equal(new, frame), "the filter converted nothing")
}

func TestGoldenRCLZ(t *testing.T) {
	old, new := goldenFarPair()
	fresh := encode(t, old, new, FormatStream)
	require.Equal(t, rcLZMagic, string(fresh[:8]), "Encode no longer chooses the LZ layout for a distant pair")
	if *update {
		require.NoError(t, os.WriteFile(goldenRCLZ, fresh, 0o644))
	}
	golden, err := os.ReadFile(goldenRCLZ)
	require.NoError(t, err)
	got, err := apply(old, golden, FormatStream, exactOpts(new))
	require.NoError(t, err, "the golden patch no longer applies")
	assert.True(t, bytes.Equal(new, got))
	// The range coder is ours: the encoder must write the same bytes.
	assert.True(t, bytes.Equal(golden, fresh), "the encoder writes another patch than the golden one")
	// The stream holds the filtered image.
	assert.True(t, bytes.Equal(filtered(new), rcDecodeAll(t, golden[streamHeaderSize:], filtered(old))),
		"the golden stream does not hold the filtered image")
}

// rcDecodeAll decodes a range-coded stream with dictionary dict.
func rcDecodeAll(t testing.TB, stream, dict []byte) []byte {
	t.Helper()
	z, err := newRCLZReader(bytes.NewReader(stream), rcInBuf, len(dict),
		func(b []byte) error { copy(b, dict); return nil }, StreamWindow, 1<<40)
	require.NoError(t, err)
	b, err := io.ReadAll(z)
	require.NoError(t, err)
	return b
}

// TestGoldenLZProbes flips bits of the golden LZ patches: the header
// checks and the stream's checksum must catch every flip that changes the
// output.
func TestGoldenLZProbes(t *testing.T) {
	old, new := goldenFarPair()
	for _, path := range []string{goldenLZ, goldenRCLZ} {
		golden, err := os.ReadFile(path)
		require.NoError(t, err)
		// Two bits of every byte (one under -race), each bit position as
		// often: every probe reads old into memory and starts a decoder.
		for i := range golden {
			for bit := range 8 {
				if bit != i%8 && (raceEnabled || bit != (i+4)%8) {
					continue
				}
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

func TestLZHostile(t *testing.T) {
	old := []byte("the old image, which the new one quotes")
	new := []byte("a new image: the old image, which the new one quotes, and more")
	patch := encodeLZ(t, old, new)
	run := func(p []byte, o []byte, max int64) error {
		_, err := applyLimited(t, FormatStream, o, p, &ApplyOptions{MaxOutput: max})
		return err
	}
	t.Run("images over the bound", func(t *testing.T) {
		// A header that declares a new image which, with old, passes the
		// bound: refused before old is read into memory.
		bad := bytes.Clone(patch)
		binary.LittleEndian.PutUint64(bad[16:], lzMaxImages)
		assert.ErrorIs(t, run(bad, old, 1<<40), ErrCorrupt)
	})
	t.Run("truncated", func(t *testing.T) {
		for _, n := range []int{streamHeaderSize, streamHeaderSize + 3, len(patch) - 1} {
			assert.Error(t, run(patch[:n], old, int64(len(new))), "cut at %d", n)
		}
	})
	t.Run("second frame", func(t *testing.T) {
		zw, err := zstd.NewWriter(nil)
		require.NoError(t, err)
		extra := zw.EncodeAll([]byte("more"), nil)
		bad := append(bytes.Clone(patch), extra...)
		binary.LittleEndian.PutUint64(bad[24:], uint64(len(bad)-streamHeaderSize))
		assert.ErrorIs(t, run(bad, old, 1<<20), ErrTrailingData)
	})
	t.Run("short frame", func(t *testing.T) {
		bad := bytes.Clone(patch)
		binary.LittleEndian.PutUint64(bad[16:], uint64(len(new)+1))
		assert.ErrorIs(t, run(bad, old, 1<<20), ErrTruncated)
	})
	t.Run("long frame", func(t *testing.T) {
		bad := bytes.Clone(patch)
		binary.LittleEndian.PutUint64(bad[16:], uint64(len(new)-1))
		assert.ErrorIs(t, run(bad, old, 1<<20), ErrTrailingData)
	})
	t.Run("frame wants a dictionary by id", func(t *testing.T) {
		zw, err := zstd.NewWriter(nil, zstd.WithEncoderDictRaw(7, old))
		require.NoError(t, err)
		frame := zw.EncodeAll(new, nil)
		bad := append(bytes.Clone(patch[:streamHeaderSize]), frame...)
		binary.LittleEndian.PutUint64(bad[24:], uint64(len(frame)))
		assert.ErrorIs(t, run(bad, old, 1<<20), ErrCorrupt)
	})
	t.Run("wrong old", func(t *testing.T) {
		// Same size, other bytes: the frame decodes against the wrong
		// dictionary and the output hash must catch it.
		other := bytes.ToUpper(old)
		_, err := applyLimited(t, FormatStream, other, patch, exactOpts(new))
		assert.Error(t, err)
	})
}

// BenchmarkApplyLZ applies LZ-layout patches, zstd- and range-coded, up to
// the layout's bound (old and new of 2 MiB each): B/op is the old image
// held as the dictionary plus the decoder, and stays within a few MiB of
// it (the range decoder's window holds old and new, and nothing else).
func BenchmarkApplyLZ(b *testing.B) {
	for _, n := range []int{64 << 10, 2 << 20} {
		rng := newRand(32)
		old, _ := relocatedPair(rng, n/6)
		old = old[:min(len(old), n)]
		new := bytes.Clone(old[:len(old)/2])
		for len(new) < len(old) {
			p := rng.IntN(len(old) - 8)
			new = append(new, old[p:p+4+rng.IntN(5)]...)
			new = append(new, randomBytes(rng, 1+rng.IntN(2))...)
		}
		new = new[:len(old)]
		for _, enc := range lzEncoders {
			patch := enc.encode(b, old, new)
			b.Run(fmt.Sprintf("%s/%dKiB", enc.name, len(old)>>10), func(b *testing.B) {
				b.SetBytes(int64(len(new)))
				b.ReportAllocs()
				b.ReportMetric(float64(len(patch)), "patch-bytes")
				for b.Loop() {
					if _, err := applyDiscard(old, patch, FormatStream, &ApplyOptions{MaxOutput: int64(len(new))}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
