package delta

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/otaseal/otaseal/internal/bzip2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ctl is a hand-written control entry for building hostile patches.
type ctl struct{ add, copy, seek int64 }

// bz2 compresses b as one bzip2 stream.
func bz2(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	z := bzip2.NewWriter(&out)
	_, err := z.Write(b)
	require.NoError(t, err)
	require.NoError(t, z.Close())
	return out.Bytes()
}

// buildBSDIFF40 assembles a BSDIFF40 patch from raw parts, trusting nothing.
func buildBSDIFF40(t testing.TB, ctls []ctl, diff, extra []byte, newSize int64) []byte {
	t.Helper()
	var raw []byte
	for _, c := range ctls {
		var b [24]byte
		putOff(b[0:], c.add)
		putOff(b[8:], c.copy)
		putOff(b[16:], c.seek)
		raw = append(raw, b[:]...)
	}
	cz, dz, ez := bz2(t, raw), bz2(t, diff), bz2(t, extra)
	hdr := make([]byte, 32)
	copy(hdr, bsdiff40Magic)
	putOff(hdr[8:], int64(len(cz)))
	putOff(hdr[16:], int64(len(dz)))
	putOff(hdr[24:], newSize)
	return bytes.Join([][]byte{hdr, cz, dz, ez}, nil)
}

// buildStream assembles a streaming-format patch; records is the
// uncompressed record data.
func buildStream(t testing.TB, oldSize, newSize uint64, records []byte) []byte {
	t.Helper()
	var payload bytes.Buffer
	zw, err := zstd.NewWriter(&payload, zstd.WithWindowSize(StreamWindow))
	require.NoError(t, err)
	_, err = zw.Write(records)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	hdr := make([]byte, 32)
	copy(hdr, streamMagic)
	binary.LittleEndian.PutUint64(hdr[8:], oldSize)
	binary.LittleEndian.PutUint64(hdr[16:], newSize)
	binary.LittleEndian.PutUint64(hdr[24:], uint64(payload.Len()))
	return append(hdr, payload.Bytes()...)
}

// streamRecords encodes control entries as segments of the streaming
// format, with their diff and extra bytes drawn in order from diff and
// extra, trusting nothing: lengths may be hostile. Runs are all written as
// literals, and extra data unconverted.
func streamRecords(ctls []ctl, diff, extra []byte) []byte {
	var out []byte
	for len(ctls) > 0 {
		n := min(len(ctls), maxSegmentControls)
		seg := ctls[:n]
		ctls = ctls[n:]
		out = binary.AppendUvarint(out, uint64(n))
		var runs, lits, e []byte
		for _, c := range seg {
			out = binary.AppendUvarint(out, uint64(c.add))
			out = binary.AppendUvarint(out, uint64(c.copy))
			out = binary.AppendVarint(out, c.seek)
			k := min(int(min(max(c.add, 0), 1<<30)), len(diff))
			if c.add != 0 {
				runs, lits = literalRuns(runs, lits, diff[:k])
			}
			diff = diff[k:]
			k = min(int(min(max(c.copy, 0), 1<<30)), len(extra))
			e = append(e, extra[:k]...)
			extra = extra[k:]
		}
		out = binary.AppendUvarint(out, uint64(len(runs)))
		out = append(out, runs...)
		out = append(out, lits...)
		out = append(out, e...)
	}
	return out
}

// literalRuns appends the run records of one entry's diff data, every run
// as literals, and the end code.
func literalRuns(runs, lits, diff []byte) ([]byte, []byte) {
	prev := 0
	for i := 0; i < len(diff); {
		for i < len(diff) && diff[i] == 0 {
			i++
		}
		if i == len(diff) {
			break
		}
		start := i
		for i < len(diff) && diff[i] != 0 {
			i++
		}
		runs = binary.AppendUvarint(runs, uint64(codeLiteral-1+i-start))
		runs = binary.AppendUvarint(runs, uint64(start-prev))
		lits = append(lits, diff[start:i]...)
		prev = start
	}
	return append(runs, codeEnd), lits
}

// limitWriter fails the test if more than max bytes are ever written.
type limitWriter struct {
	t   testing.TB
	max int64
	n   int64
}

func (w *limitWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	if w.n > w.max {
		w.t.Errorf("wrote %d bytes, limit %d", w.n, w.max)
	}
	return len(p), nil
}

func applyLimited(t *testing.T, f Format, old, patch []byte, opts *ApplyOptions) (int64, error) {
	w := &limitWriter{t: t, max: opts.MaxOutput}
	var n int64
	var err error
	switch f {
	case FormatBSDIFF40:
		n, err = ApplyBSDIFF40(w, bytes.NewReader(old), int64(len(old)), bytes.NewReader(patch), int64(len(patch)), opts)
	case FormatStream:
		n, err = ApplyStream(w, bytes.NewReader(old), int64(len(old)), bytes.NewReader(patch), opts)
	}
	assert.Equal(t, w.n, n, "returned count differs from bytes written")
	return n, err
}

func TestHostilePatches(t *testing.T) {
	old := bytes.Repeat([]byte("0123456789"), 10) // 100 bytes
	zeros := make([]byte, 1000)
	tests := []struct {
		name    string
		ctls    []ctl
		newSize int64
		max     int64
		want    error
		// wantStream, if set, replaces want for the streaming format,
		// where lengths are unsigned: a "negative" one is huge.
		wantStream error
	}{
		{"negative add", []ctl{{-1, 5, 0}}, 10, 10, ErrCorrupt, ErrOutputLimit},
		{"negative copy", []ctl{{5, -1, 0}}, 10, 10, ErrCorrupt, ErrOutputLimit},
		{"huge add", []ctl{{1 << 62, 0, 0}}, 10, 10, ErrOutputLimit, nil},
		{"add plus copy overflows", []ctl{{5, 1<<63 - 3, 0}}, 10, 10, ErrOutputLimit, nil},
		{"writes past declared size", []ctl{{8, 0, 0}, {4, 0, 0}}, 10, 10, ErrOutputLimit, nil},
		{"copy past declared size", []ctl{{0, 11, 0}}, 10, 10, ErrOutputLimit, nil},
		{"declared size over limit", []ctl{{10, 0, 0}}, 10, 9, ErrOutputLimit, nil},
		{"reads before old start", []ctl{{0, 0, -5}, {10, 0, 0}}, 10, 10, ErrOldRange, nil},
		{"reads before old after progress", []ctl{{5, 0, -20}, {5, 0, 0}}, 10, 10, ErrOldRange, nil},
		{"reads past old end", []ctl{{0, 0, 95}, {10, 0, 0}}, 10, 10, ErrOldRange, nil},
		{"seek overflow", []ctl{{0, 1, 1<<63 - 1}, {0, 1, 1<<63 - 1}}, 10, 10, ErrOldRange, nil},
		{"chained seeks overflow", []ctl{{0, 1, 1 << 62}, {0, 1, 1 << 62}, {0, 1, 1 << 62}}, 10, 10, ErrOldRange, nil},
		{"empty-entry flood", append(make([]ctl, 1_000_000), ctl{10, 0, 0}), 10, 10, ErrTooManyControls, nil},
		{"truncated controls", []ctl{{4, 0, 0}}, 10, 10, ErrTruncated, nil},
		{"too many controls for option", []ctl{{1, 0, 0}, {1, 0, 0}, {1, 0, 0}, {1, 0, 0}, {1, 0, 0}, {1, 0, 0}}, 6, 6, ErrTooManyControls, nil},
	}
	// The streaming format's bsdiff layout once per entropy stage: the
	// segment rules are the same behind zstd and the range coder.
	variants := []struct {
		f     Format
		build func(t testing.TB, oldSize, newSize uint64, records []byte) []byte
		name  string
	}{{FormatBSDIFF40, nil, "bsdiff40"}}
	for _, b := range streamBuilders {
		variants = append(variants, struct {
			f     Format
			build func(t testing.TB, oldSize, newSize uint64, records []byte) []byte
			name  string
		}{FormatStream, b.build, "otaseal-zstd/" + b.name})
	}
	for _, tt := range tests {
		for _, v := range variants {
			f := v.f
			t.Run(tt.name+"/"+v.name, func(t *testing.T) {
				var patch []byte
				if f == FormatBSDIFF40 {
					patch = buildBSDIFF40(t, tt.ctls, zeros, zeros, tt.newSize)
				} else {
					patch = v.build(t, uint64(len(old)), uint64(tt.newSize), streamRecords(tt.ctls, zeros, zeros))
				}
				if tt.name == "empty-entry flood" {
					// The attack: a million entries in a small patch.
					assert.Less(t, len(patch), 64<<10)
				}
				opts := &ApplyOptions{MaxOutput: tt.max}
				if tt.name == "too many controls for option" {
					opts.MaxControls = 5
				}
				_, err := applyLimited(t, f, old, patch, opts)
				require.Error(t, err)
				want := tt.want
				if f == FormatStream && tt.wantStream != nil {
					want = tt.wantStream
				}
				assert.ErrorIs(t, err, want)
				var pe *PatchError
				assert.True(t, errors.As(err, &pe), "want a *PatchError, got %T", err)
			})
		}
	}
}

func TestNegativeZeroRefused(t *testing.T) {
	var b [8]byte
	b[7] = 0x80
	_, err := getOff(b[:])
	assert.ErrorIs(t, err, ErrCorrupt)
}

func TestNonMinimalVarintRefused(t *testing.T) {
	// add=0 written as two bytes.
	rec := []byte{0x80, 0x00, 0x0a, 0x00}
	patch := buildStream(t, 0, 10, append(rec, make([]byte, 10)...))
	_, err := applyLimited(t, FormatStream, nil, patch, &ApplyOptions{MaxOutput: 10})
	assert.ErrorIs(t, err, ErrCorrupt)
}

func TestDecompressionBomb(t *testing.T) {
	// 10 declared bytes, but the data stream goes on to 256 MiB of zeros:
	// applying must stop at the limit and report the excess, not inflate
	// it. The bomb is one compressed 8 MiB chunk repeated, as both
	// decoders accept concatenated streams and frames.
	chunk := make([]byte, 8<<20)
	ctls := []ctl{{0, 10, 0}}
	for _, f := range formats {
		t.Run(f.String(), func(t *testing.T) {
			var patch []byte
			if f == FormatBSDIFF40 {
				patch = buildBSDIFF40(t, ctls, nil, chunk[:10], 10)
				patch = append(patch, bytes.Repeat(bz2(t, chunk), 32)...)
			} else {
				var frame bytes.Buffer
				zw, err := zstd.NewWriter(&frame, zstd.WithWindowSize(StreamWindow))
				require.NoError(t, err)
				_, err = zw.Write(chunk)
				require.NoError(t, err)
				require.NoError(t, zw.Close())
				patch = buildStream(t, 0, 10, streamRecords(ctls, nil, chunk))
				bomb := bytes.Repeat(frame.Bytes(), 32)
				patch = append(patch, bomb...)
				binary.LittleEndian.PutUint64(patch[24:], binary.LittleEndian.Uint64(patch[24:])+uint64(len(bomb)))
			}
			assert.Less(t, len(patch), 1<<20, "not a bomb")
			_, err := applyLimited(t, f, nil, patch, &ApplyOptions{MaxOutput: 10})
			assert.ErrorIs(t, err, ErrTrailingData)
		})
	}
	t.Run("range-coded", func(t *testing.T) {
		// A stream that declares 2^40 bytes and codes 9 MB of zeros in
		// a few hundred bytes: the applier reads one byte past the
		// segments and stops.
		records := streamRecords(ctls, nil, chunk)
		h := newRCHostile(records, 0)
		for i := range records {
			h.e.encodeLiteral(i)
		}
		for range 1 << 15 {
			h.e.encodeRep(len(records), 0, rcMaxMatch)
		}
		stream := h.stream(1<<40, nil)
		patch := make([]byte, streamHeaderSize, streamHeaderSize+len(stream))
		copy(patch, rcSegMagic)
		binary.LittleEndian.PutUint64(patch[16:], 10)
		binary.LittleEndian.PutUint64(patch[24:], uint64(len(stream)))
		patch = append(patch, stream...)
		assert.Less(t, len(patch), 1<<20, "not a bomb")
		_, err := applyLimited(t, FormatStream, nil, patch, &ApplyOptions{MaxOutput: 10})
		assert.ErrorIs(t, err, ErrTrailingData)
	})
}

func TestTrailingGarbage(t *testing.T) {
	old := []byte("the old image, version one")
	new := []byte("the new image, version two!")
	for _, f := range formats {
		for _, tail := range [][]byte{{0}, []byte("garbage"), []byte("BZh9"), {0x28, 0xb5, 0x2f, 0xfd}} {
			t.Run(f.String(), func(t *testing.T) {
				patch := append(encode(t, old, new, f), tail...)
				_, err := applyLimited(t, f, old, patch, exactOpts(new))
				assert.ErrorIs(t, err, ErrTrailingData)
			})
		}
	}
}

func TestHeaderChecks(t *testing.T) {
	old := []byte("old old old old")
	new := []byte("new new new new new")
	for _, f := range formats {
		t.Run(f.String(), func(t *testing.T) {
			patch := encode(t, old, new, f)

			bad := bytes.Clone(patch)
			bad[0] ^= 1
			_, err := applyLimited(t, f, old, bad, exactOpts(new))
			assert.ErrorIs(t, err, ErrFormat, "bad magic")

			_, err = applyLimited(t, f, old, patch[:20], exactOpts(new))
			assert.ErrorIs(t, err, ErrFormat, "short header")

			_, err = applyLimited(t, f, old, patch, &ApplyOptions{})
			assert.ErrorIs(t, err, ErrOutputLimit, "zero options admit only empty output")

			_, err = applyLimited(t, f, old, patch, &ApplyOptions{MaxOutput: 100, SHA256: []byte{1, 2}})
			assert.Error(t, err, "short SHA256 option")
		})
	}
	t.Run("bsdiff40 block lengths past end", func(t *testing.T) {
		patch := encode(t, old, new, FormatBSDIFF40)
		for _, field := range []int{8, 16} {
			bad := bytes.Clone(patch)
			putOff(bad[field:], int64(len(patch)))
			_, err := applyLimited(t, FormatBSDIFF40, old, bad, exactOpts(new))
			assert.ErrorIs(t, err, ErrCorrupt)
			putOff(bad[field:], -1)
			_, err = applyLimited(t, FormatBSDIFF40, old, bad, exactOpts(new))
			assert.ErrorIs(t, err, ErrCorrupt)
		}
	})
	t.Run("stream wrong old size", func(t *testing.T) {
		patch := encode(t, old, new, FormatStream)
		_, err := applyLimited(t, FormatStream, old[:len(old)-1], patch, exactOpts(new))
		assert.ErrorIs(t, err, ErrOldSize)
	})
}

func TestHashMismatch(t *testing.T) {
	old := []byte("firmware 1.0 with some body text")
	new := []byte("firmware 1.1 with some body text and more")
	for _, f := range formats {
		t.Run(f.String(), func(t *testing.T) {
			patch := encode(t, old, new, f)
			opts := exactOpts(new)
			opts.SHA256[0] ^= 0xff
			n, err := applyLimited(t, f, old, patch, opts)
			assert.ErrorIs(t, err, ErrHashMismatch)
			var hm *HashMismatchError
			require.True(t, errors.As(err, &hm))
			assert.Equal(t, opts.SHA256, hm.Want)
			assert.NotEqual(t, hm.Got, hm.Want)
			assert.Equal(t, int64(len(new)), n, "the mismatch is reported after the whole output")
		})
	}
}

// TestCorruptionProbes flips every byte of valid patches and cuts them at
// every length: each must fail, or (where the byte does not matter, like
// BSDIFF40's last seek) produce exactly the new image.
func TestCorruptionProbes(t *testing.T) {
	old := structured(newRand(9), 3000)
	new := append(bytes.Clone(old[:1000]), []byte("inserted text")...)
	new = append(new, old[1200:]...)
	new[2000]++
	for _, f := range formats {
		t.Run(f.String(), func(t *testing.T) {
			patch := encode(t, old, new, f)
			failed := 0
			for i := range patch {
				for _, mask := range []byte{0x01, 0x80, 0xff} {
					bad := bytes.Clone(patch)
					bad[i] ^= mask
					got, err := apply(old, bad, f, exactOpts(new))
					if err != nil {
						failed++
						continue
					}
					assert.Equal(t, new, got, "flip %#x at %d gave a different output without error", mask, i)
				}
			}
			assert.Greater(t, failed, len(patch)*3*9/10, "most flips must be detected")
			for n := 0; n < len(patch); n++ {
				_, err := apply(old, patch[:n], f, exactOpts(new))
				assert.Error(t, err, "truncated to %d of %d bytes", n, len(patch))
			}
		})
	}
}
