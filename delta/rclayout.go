package delta

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"runtime"
)

// The range-coded layouts of the streaming format, for images of at most
// lzMaxImages bytes together: the same two layouts as with zstd (the
// bsdiff layout's segments, and the filtered new image LZ-coded against
// the filtered old one), with the range-coded LZ stream (rclz.go) in place
// of the zstd frame. Encode writes only these for such images: zstd's best
// level needs tens of megabytes whatever the input, the range coder's
// tables are sized to it, and it codes both layouts tighter.

const (
	// rcSegMagic opens a patch whose payload is the bsdiff layout's
	// segments, range-coded.
	rcSegMagic = "OTADLR01"
	// rcLZMagic opens a patch in the LZ layout, range-coded.
	rcLZMagic = "OTADLZ02"
)

// rcInBuf is the applier's read buffer for a range-coded payload.
const rcInBuf = 4 << 10

// rcCollectMin: from this many bytes of old and new together, Encode
// collects garbage between its two range-coded trials.
const rcCollectMin = 256 << 10

// writeRangeCoded writes d in the range-coded bsdiff layout, or in the
// range-coded LZ layout when d is a candidate for it and that is smaller.
func (d *Script) writeRangeCoded(w io.Writer) error {
	var lz []byte
	if d.lzCandidate() {
		lz = d.rcLZ()
		// The LZ encoder's chains are garbage now; collecting them lets
		// the segments encoder's, smaller, reuse their pages, so the peak
		// is the larger trial's rather than their sum (only images of at
		// most lzMaxImages bytes come here). For small images the
		// collection would cost more than it saves.
		if len(d.old)+len(d.new) >= rcCollectMin {
			runtime.GC()
		}
	}
	payload, err := d.rcSegments()
	if err != nil {
		return err
	}
	magic := rcSegMagic
	if lz != nil && len(lz) < len(payload) {
		payload, magic = lz, rcLZMagic
	}
	return writeStreamPatch(w, magic, len(d.old), len(d.new), bytes.NewBuffer(payload))
}

// rcSegments returns the range-coded segments of d.
func (d *Script) rcSegments() ([]byte, error) {
	var raw bytes.Buffer
	seg := newSegmentWriter(&raw, d.old, d.new)
	if err := d.writeSegments(seg); err != nil {
		return nil, err
	}
	if err := seg.flush(); err != nil {
		return nil, err
	}
	return encodeRCLZ(nil, raw.Bytes(), 0, StreamWindow, rclzSegments), nil
}

// rcLZ returns the range-coded LZ layout's payload of d: the filtered new
// image coded with the filtered old one as dictionary.
func (d *Script) rcLZ() []byte {
	buf := make([]byte, len(d.old)+len(d.new))
	copy(buf, d.old)
	copy(buf[len(d.old):], d.new)
	f := newX86Filter()
	f.convert(buf[:len(d.old)], 0, true, true)
	f = newX86Filter()
	f.convert(buf[len(d.old):], 0, true, true)
	return encodeRCLZ(nil, buf, len(d.old), StreamWindow, rclzDefault)
}

// rcPayload returns a reader of the n payload bytes of patch and a check,
// for once the range-coded stream z has ended, that the payload was used
// up exactly.
func rcPayload(patch io.Reader, n uint64) (body *io.LimitedReader, end func(z *rclzReader) error) {
	body = &io.LimitedReader{R: patch, N: int64(n)}
	return body, func(z *rclzReader) error {
		if k := int64(z.unused()) + body.N; k != 0 {
			return fmt.Errorf("%w: %d payload bytes after the range-coded stream", ErrTrailingData, k)
		}
		return nil
	}
}

// applyRCSegments applies the rest of a patch in the range-coded bsdiff
// layout whose header a has read.
func (a *applier) applyRCSegments(patch io.Reader, payloadLen uint64) (int64, error) {
	in, end := rcPayload(patch, payloadLen)
	// The stream's declared length needs no bound of its own: the window
	// is the smaller of it and StreamWindow, and the decoder only decodes
	// what the segment reader asks for, which the declared output size
	// bounds; a stream that goes on past the segments is refused.
	z, err := newRCLZReader(in, rcInBuf, 0, nil, StreamWindow, 1<<62)
	if err != nil {
		return 0, a.fail(err)
	}
	r := bufio.NewReaderSize(z, min(a.chunk(), 8<<10))
	if err := a.applySegments(r); err != nil {
		return a.newPos, err
	}
	return a.finishPayload(patch, func() error { return rclzEnd(r) }, func() error { return end(z) })
}

// applyRCLZ applies the rest of a patch in the range-coded LZ layout whose
// header a has read.
func (a *applier) applyRCLZ(patch io.Reader, payloadLen uint64) (int64, error) {
	if a.oldSize+a.newSize > lzMaxImages {
		return 0, a.fail(fmt.Errorf("%w: LZ layout for %d+%d bytes of images, limit %d", ErrCorrupt, a.oldSize, a.newSize, lzMaxImages))
	}
	in, end := rcPayload(patch, payloadLen)
	// The stream decodes to the new image exactly; the window holds old
	// (the dictionary) and new, at most lzMaxImages bytes.
	z, err := newRCLZReader(in, rcInBuf, int(a.oldSize), a.readFilteredOld, a.newSize, a.newSize)
	if err != nil {
		return 0, a.fail(err)
	}
	if z.total != a.newSize {
		return 0, a.fail(fmt.Errorf("%w: range-coded stream of %d bytes for an image of %d", ErrCorrupt, z.total, a.newSize))
	}
	if err := a.unfilter(z); err != nil {
		return a.newPos, err
	}
	return a.finishPayload(patch, func() error { return rclzEnd(z) }, func() error { return end(z) })
}

// readFilteredOld reads the whole old image into p and filters it, as the
// LZ layouts' dictionary.
func (a *applier) readFilteredOld(p []byte) error {
	if got, err := a.old.ReadAt(p, 0); got < len(p) {
		return fmt.Errorf("delta: reading old: got %d of %d bytes: %w", got, len(p), err)
	}
	f := newX86Filter()
	f.convert(p, 0, true, true)
	return nil
}
