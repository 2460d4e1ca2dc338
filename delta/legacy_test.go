package delta

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"
)

// Encode no longer writes the zstd-coded LZ layout (OTADLZ01), and writes
// the zstd-coded bsdiff layout (OTADLT02) only for images above
// lzMaxImages together, but appliers keep reading both: patches published
// before are still in the field. These helpers make such patches.

// writeZstdLZ writes d's images as a patch in the zstd-coded LZ layout, as
// Encode did before the range-coded layouts.
func (d *Script) writeZstdLZ(w io.Writer) error {
	if len(d.old)+len(d.new) > lzMaxImages {
		return fmt.Errorf("delta: LZ layout: old and new are %d bytes, limit %d", len(d.old)+len(d.new), lzMaxImages)
	}
	oldF, newF := bytes.Clone(d.old), bytes.Clone(d.new)
	f := newX86Filter()
	f.convert(oldF, 0, true, true)
	f = newX86Filter()
	f.convert(newF, 0, true, true)
	var payload bytes.Buffer
	level := zstd.SpeedBestCompression
	if len(d.old)+len(d.new) < 64<<10 {
		level = zstd.SpeedDefault
	}
	zw, err := zstd.NewWriter(&payload,
		zstd.WithEncoderLevel(level),
		zstd.WithWindowSize(StreamWindow),
		zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderCRC(true),
		zstd.WithLowerEncoderMem(true),
		zstd.WithEncoderDictRaw(0, oldF))
	if err != nil {
		return err
	}
	if _, err := zw.Write(newF); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return writeStreamPatch(w, lzMagic, len(d.old), len(d.new), &payload)
}

// encodeLZ encodes old to new in the zstd-coded LZ layout.
func encodeLZ(t testing.TB, old, new []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, (&Script{old: old, new: new}).writeZstdLZ(&b))
	return b.Bytes()
}

// encodeRCLZLayout encodes old to new in the range-coded LZ layout,
// whatever Encode would choose.
func encodeRCLZLayout(t testing.TB, old, new []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	d := &Script{old: old, new: new}
	require.NoError(t, writeStreamPatch(&b, rcLZMagic, len(old), len(new), bytes.NewBuffer(d.rcLZ())))
	return b.Bytes()
}

// encodeZstdSegments encodes old to new in the zstd-coded bsdiff layout,
// whatever the images' size.
func encodeZstdSegments(t testing.TB, old, new []byte) []byte {
	t.Helper()
	d, err := Diff(old, new)
	require.NoError(t, err)
	var b bytes.Buffer
	require.NoError(t, d.writeSegmentsPatch(&b))
	return b.Bytes()
}

// buildRCStream is buildStream for the range-coded bsdiff layout: records
// range-coded behind an OTADLR01 header, trusting nothing.
func buildRCStream(t testing.TB, oldSize, newSize uint64, records []byte) []byte {
	t.Helper()
	payload := encodeRCLZ(nil, records, 0, StreamWindow, rclzSegments)
	hdr := make([]byte, streamHeaderSize)
	copy(hdr, rcSegMagic)
	binary.LittleEndian.PutUint64(hdr[8:], oldSize)
	binary.LittleEndian.PutUint64(hdr[16:], newSize)
	binary.LittleEndian.PutUint64(hdr[24:], uint64(len(payload)))
	return append(hdr, payload...)
}

// streamBuilders are the two entropy stages of the bsdiff layout.
var streamBuilders = []struct {
	name  string
	build func(t testing.TB, oldSize, newSize uint64, records []byte) []byte
}{{"zstd", buildStream}, {"rc", buildRCStream}}
