package delta

import (
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// The LZ layout of the streaming format: the new image, filtered
// (x86Filter), coded against the old image, filtered the same way, as its
// dictionary: in one zstd frame (OTADLZ01, which Encode no longer writes
// but appliers keep reading) or range-coded (OTADLZ02, rclayout.go).
// Between distant versions of a program most of the new image is new code
// that bsdiff's approximate matches cannot describe; LZ matching against
// old and against earlier output describes it better.
// Applying needs old in memory, so the layout is only for images small
// enough: old and new together at most lzMaxImages bytes.

// lzMagic opens a patch in the LZ layout of the streaming format.
const lzMagic = "OTADLZ01"

// lzMaxImages bounds old+new for the LZ layout. With it every match of the
// frame, into the dictionary or into earlier output, lies within
// StreamWindow, and the applier holds at most lzMaxImages bytes of old.
const lzMaxImages = StreamWindow

// lzTryShare: Encode tries the LZ layout when at least 1/lzTryShare of the
// new image is extra data. Close versions have almost none, and the bsdiff
// layout wins there by far; trying costs a second compression pass.
const lzTryShare = 8

// lzCandidate reports whether Encode should try the LZ layout for d.
func (d *Script) lzCandidate() bool {
	if len(d.old)+len(d.new) > lzMaxImages || len(d.new) == 0 {
		return false
	}
	var extra int64
	for _, o := range d.ops {
		extra += o.copy
	}
	return extra*lzTryShare >= int64(len(d.new))
}

// applyLZ applies the rest of a patch in the LZ layout whose header a has
// read: the payload of payloadLen bytes follows in patch.
func (a *applier) applyLZ(patch io.Reader, payloadLen uint64) (int64, error) {
	if a.oldSize+a.newSize > lzMaxImages {
		return 0, a.fail(fmt.Errorf("%w: LZ layout for %d+%d bytes of images, limit %d", ErrCorrupt, a.oldSize, a.newSize, lzMaxImages))
	}
	oldF := make([]byte, a.oldSize)
	if got, err := a.old.ReadAt(oldF, 0); got < len(oldF) {
		return 0, a.fail(fmt.Errorf("delta: reading old: got %d of %d bytes: %w", got, len(oldF), err))
	}
	f := newX86Filter()
	f.convert(oldF, 0, true, true)

	body := &io.LimitedReader{R: patch, N: int64(payloadLen)}
	zr, err := zstd.NewReader(body,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(StreamWindow),
		zstd.WithDecoderMaxMemory(maxStreamDecoderMemory),
		zstd.WithDecoderDictRaw(0, oldF))
	if err != nil {
		return 0, fmt.Errorf("delta: zstd: %w", err)
	}
	defer zr.Close()

	if err := a.unfilter(zr); err != nil {
		return a.newPos, err
	}
	// The image is complete: the frame must end, the payload must be used
	// up, and nothing may follow it.
	return a.finishPayload(patch, func() error { return expectEOF(zr, ErrTruncated) }, frameUsedUp(body))
}

// unfilter reads the filtered new image from r and writes it restored,
// a buffer at a time; a field that may continue past the end of a read is
// kept back, at most 5 bytes.
func (a *applier) unfilter(r io.Reader) error {
	f := newX86Filter()
	n := a.newSize
	pending := 0
	for n > 0 || pending > 0 {
		k := int(min(n, int64(len(a.diffBuf)-pending)))
		d := a.diffBuf[:pending+k]
		if _, err := io.ReadFull(r, d[pending:]); err != nil {
			return a.fail(streamErr(err))
		}
		n -= int64(k)
		done := f.convert(d, a.newPos, false, n == 0)
		if err := a.write(d[:done]); err != nil {
			return err
		}
		pending = copy(a.diffBuf, d[done:])
	}
	return nil
}
