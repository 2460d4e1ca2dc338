package delta

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rcRoundTrip codes buf[start:] against the dictionary buf[:start] with
// window, decodes it reading through r's wrapper, and returns the stream.
func rcRoundTrip(t testing.TB, buf []byte, start, window int, wrap func(io.Reader) io.Reader) []byte {
	t.Helper()
	stream := encodeRCLZ(nil, buf, start, window, rclzDefault)
	z, err := newRCLZReader(bytes.NewReader(stream), rcInBuf, start,
		func(b []byte) error { copy(b, buf); return nil }, int64(window), 1<<40)
	require.NoError(t, err)
	got, err := io.ReadAll(wrap(z))
	require.NoError(t, err)
	require.True(t, bytes.Equal(buf[start:], got), "round trip differs")
	return stream
}

func TestRCLZRoundTrip(t *testing.T) {
	rng := newRand(51)
	period := randomBytes(rng, 3000)
	periodic := bytes.Repeat(period, 20)
	relOld, relNew := relocatedPair(rng, 300)
	same := func(r io.Reader) io.Reader { return r }
	for _, tc := range []struct {
		name   string
		dict   []byte
		data   []byte
		window int
	}{
		{"empty", nil, nil, StreamWindow},
		{"one byte", nil, []byte{7}, StreamWindow},
		{"empty with dictionary", []byte("dictionary"), nil, StreamWindow},
		{"zeros", nil, make([]byte, 100_000), StreamWindow},
		{"random", nil, randomBytes(rng, 50_000), StreamWindow},
		{"structured", nil, structured(rng, 80_000), StreamWindow},
		{"all byte values", nil, func() []byte {
			b := make([]byte, 4096)
			for i := range b {
				b[i] = byte(i * 7)
			}
			return b
		}(), StreamWindow},
		{"dictionary", relOld, relNew, StreamWindow},
		{"dictionary only matches", periodic, periodic, StreamWindow},
		// Repeats farther back than the window: the encoder must not
		// reach them, and the decoder's window wraps many times.
		{"window wraps", nil, periodic, 1000},
		{"window wraps with dictionary", period, periodic, 2500},
		{"longer than the longest match", nil, bytes.Repeat([]byte("ab"), 5000), StreamWindow},
		// More than one chunk: coded, stored (random), and a repeat
		// that runs across the chunks' border.
		{"chunks", nil, mixedChunks(rng), StreamWindow},
		{"chunks with dictionary", periodic, mixedChunks(rng), StreamWindow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf := append(bytes.Clone(tc.dict), tc.data...)
			stream := rcRoundTrip(t, buf, len(tc.dict), tc.window, same)
			// One byte per read, so matches continue across reads.
			rcRoundTrip(t, buf, len(tc.dict), tc.window, iotest.OneByteReader)
			t.Logf("%d bytes -> %d", len(tc.data), len(stream))
		})
	}
	t.Run("stores what does not compress", func(t *testing.T) {
		n := 2*rcChunk + 1000
		stream := rcRoundTrip(t, randomBytes(rng, n), 0, StreamWindow, same)
		// props, uvarint, 3 chunk bytes, checksum
		assert.LessOrEqual(t, len(stream), n+1+3+3+4)
	})
	t.Run("compresses", func(t *testing.T) {
		zeros := rcRoundTrip(t, make([]byte, 1<<20), 0, StreamWindow, same)
		assert.Less(t, len(zeros), 1000)
		old := randomBytes(rng, 20_000)
		new := append(bytes.Clone(old[5000:]), old[:5000]...)
		new[100]++
		with := rcRoundTrip(t, append(bytes.Clone(old), new...), len(old), StreamWindow, same)
		without := rcRoundTrip(t, new, 0, StreamWindow, same)
		assert.Less(t, len(with), len(without)/2, "the dictionary is used")
	})
}

// mixedChunks returns data of three chunks and a bit: structured, then
// random, then a repeat of the structured part that crosses into the last
// chunk.
func mixedChunks(rng *rand.Rand) []byte {
	b := structured(rng, rcChunk)
	b = append(b, randomBytes(rng, rcChunk)...)
	b = append(b, b[:rcChunk+5000]...)
	return b
}

// rcHostile builds streams symbol by symbol, with no encoder-side checks,
// so the decoder can be shown what the encoder never writes. Positions are
// in buf, whose first start bytes are the dictionary.
type rcHostile struct {
	e *rclzEncoder
}

func newRCHostile(buf []byte, start int) *rcHostile {
	e := &rclzEncoder{buf: buf, start: start, maxDist: 1 << 30, p: rclzDefault}
	e.m.init(rclzDefault.props)
	e.rc = newRCEncoder(nil)
	return &rcHostile{e: e}
}

// stream finishes the symbols as a stream that claims total bytes with the
// checksum of data.
func (h *rcHostile) stream(total int, data []byte) []byte {
	out := []byte{rclzDefault.props}
	out = binary.AppendUvarint(out, uint64(total))
	out = append(out, h.e.rc.finish()...)
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(data, crc32c))
}

func decodeRC(stream, dict []byte, window int64) ([]byte, error) {
	z, err := newRCLZReader(bytes.NewReader(stream), rcInBuf, len(dict),
		func(b []byte) error { copy(b, dict); return nil }, window, 1<<20)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	_, err = io.Copy(&out, z)
	return out.Bytes(), err
}

func TestRCLZHostile(t *testing.T) {
	data := []byte("abcdabcdabcd")
	valid := encodeRCLZ(nil, data, 0, StreamWindow, rclzDefault)
	_, err := decodeRC(valid, nil, StreamWindow)
	require.NoError(t, err)

	t.Run("distance before the history", func(t *testing.T) {
		h := newRCHostile(data, 0)
		h.e.encodeLiteral(0)
		h.e.encodeMatch(1, 2, 4) // one byte of history, distance 2
		_, err := decodeRC(h.stream(5, data[:5]), nil, StreamWindow)
		assert.ErrorIs(t, err, ErrCorrupt)
	})
	t.Run("distance before the dictionary", func(t *testing.T) {
		buf := append([]byte("dict"), data...)
		h := newRCHostile(buf, 4)
		h.e.encodeMatch(4, 5, 4)
		_, err := decodeRC(h.stream(4, data[:4]), buf[:4], StreamWindow)
		assert.ErrorIs(t, err, ErrCorrupt)
	})
	t.Run("distance beyond the window", func(t *testing.T) {
		h := newRCHostile(data, 0)
		for i := range 8 {
			h.e.encodeLiteral(i)
		}
		h.e.encodeMatch(8, 8, 4) // in the history, but the window is 4
		_, err := decodeRC(h.stream(12, data), nil, 4)
		assert.ErrorIs(t, err, ErrCorrupt)
	})
	t.Run("huge distance", func(t *testing.T) {
		h := newRCHostile(data, 0)
		h.e.encodeLiteral(0)
		h.e.encodeMatch(1, 1<<32-1, 4)
		_, err := decodeRC(h.stream(5, data[:5]), nil, StreamWindow)
		assert.ErrorIs(t, err, ErrCorrupt)
	})
	t.Run("repeat with no history", func(t *testing.T) {
		h := newRCHostile(data, 0)
		h.e.encodeRep(0, 0, 4)
		_, err := decodeRC(h.stream(4, data[:4]), nil, StreamWindow)
		assert.ErrorIs(t, err, ErrCorrupt)
		h = newRCHostile(data, 0)
		h.e.encodeShortRep(0)
		_, err = decodeRC(h.stream(1, data[:1]), nil, StreamWindow)
		assert.ErrorIs(t, err, ErrCorrupt)
	})
	t.Run("match past the end", func(t *testing.T) {
		h := newRCHostile(data, 0)
		for i := range 4 {
			h.e.encodeLiteral(i)
		}
		h.e.encodeMatch(4, 4, 100)
		_, err := decodeRC(h.stream(12, data), nil, StreamWindow)
		assert.ErrorIs(t, err, ErrCorrupt)
	})
	t.Run("declared length over the limit", func(t *testing.T) {
		bad := []byte{rclzDefault.props}
		bad = binary.AppendUvarint(bad, 1<<20+1)
		bad = append(bad, valid[2:]...)
		_, err := decodeRC(bad, nil, StreamWindow)
		assert.ErrorIs(t, err, ErrCorrupt)
	})
	t.Run("properties", func(t *testing.T) {
		bad := bytes.Clone(valid)
		bad[0] = rcProps
		_, err := decodeRC(bad, nil, StreamWindow)
		assert.ErrorIs(t, err, ErrCorrupt)
	})
	t.Run("first byte of the range coder", func(t *testing.T) {
		bad := bytes.Clone(valid)
		bad[2] = 2 // props, one byte of length, then the chunk: 00 or 01
		_, err := decodeRC(bad, nil, StreamWindow)
		assert.ErrorIs(t, err, ErrCorrupt)
		// 01 makes it a stored chunk, which is then too short.
		bad[2] = rcStoredChunk
		_, err = decodeRC(bad, nil, StreamWindow)
		assert.ErrorIs(t, err, ErrTruncated)
	})
	t.Run("checksum", func(t *testing.T) {
		bad := bytes.Clone(valid)
		bad[len(bad)-1] ^= 1
		_, err := decodeRC(bad, nil, StreamWindow)
		assert.ErrorIs(t, err, ErrCorrupt)
	})
	t.Run("truncated", func(t *testing.T) {
		for n := range len(valid) {
			_, err := decodeRC(valid[:n], nil, StreamWindow)
			assert.True(t, errors.Is(err, ErrTruncated) || errors.Is(err, ErrCorrupt), "cut at %d: %v", n, err)
		}
	})
	t.Run("stream longer than declared", func(t *testing.T) {
		// The declared length ends the decoding: the coder's last bytes
		// are then not where the checksum should be.
		bad := bytes.Clone(valid)
		bad[1]--
		_, err := decodeRC(bad, nil, StreamWindow)
		assert.ErrorIs(t, err, ErrCorrupt)
	})
}

// TestRCLayoutsHostile checks the patch-level rules of the range-coded
// layouts.
func TestRCLayoutsHostile(t *testing.T) {
	old := []byte("the old image, which the new one quotes")
	new := []byte("a new image: the old image, which the new one quotes, and more")
	run := func(p, o []byte, max int64) error {
		_, err := applyLimited(t, FormatStream, o, p, &ApplyOptions{MaxOutput: max})
		return err
	}
	lz := encodeRCLZLayout(t, old, new)
	d, err := Diff(old, new)
	require.NoError(t, err)
	payload, err := d.rcSegments()
	require.NoError(t, err)
	var b bytes.Buffer
	require.NoError(t, writeStreamPatch(&b, rcSegMagic, len(old), len(new), bytes.NewBuffer(payload)))
	seg := b.Bytes()
	for _, p := range [][]byte{lz, seg} {
		require.NoError(t, run(p, old, int64(len(new))))
	}

	t.Run("LZ images over the bound", func(t *testing.T) {
		// Refused before old is read into memory.
		bad := bytes.Clone(lz)
		binary.LittleEndian.PutUint64(bad[16:], lzMaxImages)
		assert.ErrorIs(t, run(bad, old, 1<<40), ErrCorrupt)
	})
	t.Run("LZ stream of another length than the image", func(t *testing.T) {
		for _, n := range []int{len(new) - 1, len(new) + 1} {
			bad := bytes.Clone(lz)
			binary.LittleEndian.PutUint64(bad[16:], uint64(n))
			assert.ErrorIs(t, run(bad, old, 1<<20), ErrCorrupt, "declared %d", n)
		}
	})
	for name, p := range map[string][]byte{"LZ": lz, "segments": seg} {
		t.Run(name+" truncated", func(t *testing.T) {
			for n := streamHeaderSize; n < len(p); n++ {
				cut := bytes.Clone(p[:n])
				binary.LittleEndian.PutUint64(cut[24:], uint64(n-streamHeaderSize))
				assert.Error(t, run(cut, old, 1<<20), "cut at %d", n)
				assert.Error(t, run(p[:n], old, 1<<20), "cut at %d", n)
			}
		})
		t.Run(name+" payload after the stream", func(t *testing.T) {
			bad := append(bytes.Clone(p), 0)
			binary.LittleEndian.PutUint64(bad[24:], uint64(len(bad)-streamHeaderSize))
			assert.ErrorIs(t, run(bad, old, 1<<20), ErrTrailingData)
		})
		t.Run(name+" wrong old", func(t *testing.T) {
			// Same size, other bytes: the output hash must catch it.
			_, err := applyLimited(t, FormatStream, bytes.ToUpper(old), p, exactOpts(new))
			assert.Error(t, err)
		})
	}
	t.Run("segments stream goes on after the output", func(t *testing.T) {
		records := streamRecords([]ctl{{0, int64(len(new)), 0}}, nil, new)
		bad := buildRCStream(t, uint64(len(old)), uint64(len(new)), append(records, 0, 0, 0))
		assert.ErrorIs(t, run(bad, old, 1<<20), ErrTrailingData)
	})
}

// FuzzRCLZ checks the range-coded stream on arbitrary input: any data
// round-trips against any dictionary, and any stream decodes without a
// panic to at most its declared length, or fails with a sentinel.
func FuzzRCLZ(f *testing.F) {
	rng := newRand(52)
	relOld, relNew := relocatedPair(rng, 40)
	f.Add([]byte{}, []byte("hello hello hello"), []byte{})
	f.Add(relOld, relNew, encodeRCLZ(nil, append(bytes.Clone(relOld), relNew...), len(relOld), StreamWindow, rclzDefault))
	f.Add([]byte("dict"), bytes.Repeat([]byte{0}, 300), encodeRCLZ(nil, make([]byte, 300), 0, StreamWindow, rclzDefault))
	f.Fuzz(func(t *testing.T, dict, data, stream []byte) {
		buf := append(bytes.Clone(dict), data...)
		window := max(1, len(data)/2)
		rcRoundTrip(t, buf, len(dict), window, func(r io.Reader) io.Reader { return r })

		got, err := decodeRC(stream, dict, StreamWindow)
		assert.LessOrEqual(t, len(got), 1<<20)
		if err != nil {
			assert.True(t, errors.Is(err, ErrCorrupt) || errors.Is(err, ErrTruncated), "%v", err)
		}
	})
}

// reverseBits is what makes reverseTree the tree walked by the reversed
// symbol: bit i of the low n bits moves to bit n-1-i, higher bits go.
func TestReverseBits(t *testing.T) {
	for n := 0; n <= 32; n++ {
		for _, v := range []uint32{0, 1, 0b1011, 0x8000_0001, 0xDEAD_BEEF, ^uint32(0)} {
			var want uint32
			for i := range n {
				want |= (v >> uint(i) & 1) << uint(n-1-i)
			}
			assert.Equal(t, want, reverseBits(v, n), "reverseBits(%#x, %d)", v, n)
		}
	}
	// A symbol coded least significant bit first reads back.
	for n := 1; n <= 8; n++ {
		p := make([]prob, 1<<n)
		initProbs(p)
		e := newRCEncoder(nil)
		for v := range uint32(1 << n) {
			e.reverseTree(p, v, n)
		}
		out := e.finish()
		q := make([]prob, 1<<n)
		initProbs(q)
		d := newRCDecoder(bytes.NewReader(out), len(out))
		first, err := d.readByte() // the coder's first byte, always zero
		require.NoError(t, err)
		require.Zero(t, first)
		require.NoError(t, d.init())
		for v := range uint32(1 << n) {
			d.fill()
			require.Equal(t, v, d.reverseTree(q, n), "n=%d", n)
		}
	}
}
