package delta

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// streamMagic opens a patch in our streaming format; the last two bytes are
// the format version.
const streamMagic = "OTADLT02"

// streamHeaderSize is the fixed header: magic, old size, new size, payload
// length.
const streamHeaderSize = 32

// StreamWindow is the zstd window of the streaming format. The applier
// refuses frames that need more, so its memory stays bounded whatever the
// patch says; the encoder uses exactly this window.
const StreamWindow = 4 << 20

// maxStreamDecoderMemory bounds what the zstd decoder may allocate for one
// frame, beyond the window: a patch cannot make it grow with the image.
const maxStreamDecoderMemory = 64 << 20

// streamEncoders keeps zstd encoders between Encode calls. The best level
// allocates about 40 MB of match tables per encoder, which dwarfs the work
// for a small patch; Reset makes a pooled one start an independent frame.
var streamEncoders sync.Pool

func getStreamEncoder(w io.Writer) (*zstd.Encoder, error) {
	if zw, ok := streamEncoders.Get().(*zstd.Encoder); ok {
		zw.Reset(w)
		return zw, nil
	}
	return zstd.NewWriter(w,
		zstd.WithEncoderLevel(zstd.SpeedBestCompression),
		zstd.WithWindowSize(StreamWindow),
		zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderCRC(true),
		zstd.WithLowerEncoderMem(true))
}

// writeStream writes d in the streaming format. Images of at most
// lzMaxImages bytes together get a range-coded layout (rclayout.go);
// larger ones the bsdiff layout in zstd.
func (d *Script) writeStream(w io.Writer) error {
	if len(d.old)+len(d.new) <= lzMaxImages {
		return d.writeRangeCoded(w)
	}
	return d.writeSegmentsPatch(w)
}

// writeSegmentsPatch writes the header and one zstd frame of segments (the
// bsdiff layout).
func (d *Script) writeSegmentsPatch(w io.Writer) error {
	var payload bytes.Buffer
	zw, err := getStreamEncoder(&payload)
	if err != nil {
		return fmt.Errorf("delta: zstd: %w", err)
	}
	bw := bufio.NewWriterSize(zw, 256<<10)
	seg := newSegmentWriter(bw, d.old, d.new)
	if err := d.writeSegments(seg); err != nil {
		return err
	}
	if err := seg.flush(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("delta: zstd: %w", err)
	}
	streamEncoders.Put(zw) // only a cleanly closed encoder goes back
	return writeStreamPatch(w, streamMagic, len(d.old), len(d.new), &payload)
}

// writeStreamPatch writes a streaming-format header (magic, the old and
// new sizes, the payload's length) and then the payload.
func writeStreamPatch(w io.Writer, magic string, oldLen, newLen int, payload *bytes.Buffer) error {
	var hdr [streamHeaderSize]byte
	copy(hdr[:], magic)
	binary.LittleEndian.PutUint64(hdr[8:], uint64(oldLen))
	binary.LittleEndian.PutUint64(hdr[16:], uint64(newLen))
	binary.LittleEndian.PutUint64(hdr[24:], uint64(payload.Len()))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := payload.WriteTo(w)
	return err
}

// writeSegments feeds the edit script to seg. An add run longer than a
// segment allows is split into entries that continue in old where the
// previous one stopped (seek 0).
func (d *Script) writeSegments(seg *segmentWriter) error {
	for i, o := range d.ops {
		oldPos, newPos, add := o.oldPos, o.newPos, o.add
		for add > maxSegmentAdd {
			if err := seg.entry(oldPos, newPos, maxSegmentAdd, 0, 0); err != nil {
				return err
			}
			oldPos, newPos, add = oldPos+maxSegmentAdd, newPos+maxSegmentAdd, add-maxSegmentAdd
		}
		if err := seg.entry(oldPos, newPos, add, o.copy, d.seek(i)); err != nil {
			return err
		}
	}
	return nil
}

// ApplyStream applies a patch in the streaming format to old (oldSize
// bytes) and writes the new image to dst. The patch is read once, front to
// back, so it can be applied while it downloads; memory is bounded by
// StreamWindow plus small buffers, whatever the image size. A patch in the
// LZ layout (see the package doc) also holds old in memory (range-coded:
// old and new, as the window), which that layout allows only for old and
// new of at most StreamWindow together.
//
// It returns the number of bytes written. On error, what was written is
// garbage and must be discarded.
func ApplyStream(dst io.Writer, old io.ReaderAt, oldSize int64, patch io.Reader, opts *ApplyOptions) (int64, error) {
	a, err := newApplier(FormatStream, dst, old, oldSize, opts)
	if err != nil {
		return 0, err
	}
	var hdr [streamHeaderSize]byte
	if _, err := io.ReadFull(patch, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, a.fail(fmt.Errorf("%w: short header", ErrFormat))
		}
		return 0, a.fail(err)
	}
	magic := string(hdr[:8])
	switch magic {
	case streamMagic, lzMagic, rcSegMagic, rcLZMagic:
	default:
		return 0, a.fail(fmt.Errorf("%w: magic %q", ErrFormat, hdr[:8]))
	}
	hdrOld := binary.LittleEndian.Uint64(hdr[8:])
	hdrNew := binary.LittleEndian.Uint64(hdr[16:])
	payloadLen := binary.LittleEndian.Uint64(hdr[24:])
	if hdrOld != uint64(oldSize) {
		return 0, a.fail(fmt.Errorf("%w: patch wants %d bytes, old is %d", ErrOldSize, hdrOld, oldSize))
	}
	if hdrNew > 1<<62 || payloadLen > 1<<62 {
		return 0, a.fail(fmt.Errorf("%w: size field out of range", ErrCorrupt))
	}
	if err := a.setNewSize(int64(hdrNew), opts); err != nil {
		return 0, err
	}
	switch magic {
	case lzMagic:
		return a.applyLZ(patch, payloadLen)
	case rcSegMagic:
		return a.applyRCSegments(patch, payloadLen)
	case rcLZMagic:
		return a.applyRCLZ(patch, payloadLen)
	}

	body := &io.LimitedReader{R: patch, N: int64(payloadLen)}
	zr, err := zstd.NewReader(body,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(StreamWindow),
		zstd.WithDecoderMaxMemory(maxStreamDecoderMemory))
	if err != nil {
		return 0, fmt.Errorf("delta: zstd: %w", err)
	}
	defer zr.Close()
	// Reads of literals and extra data at least as long as the buffer
	// bypass it; it serves the varints, which need no more.
	r := bufio.NewReaderSize(zr, min(a.chunk(), 8<<10))
	if err := a.applySegments(r); err != nil {
		return a.newPos, err
	}
	// The records are complete: the frame must end, the payload must be
	// used up, and nothing may follow it.
	return a.finishPayload(patch, func() error { return expectEOF(r, ErrTruncated) }, frameUsedUp(body))
}

// finishPayload runs checks, that the payload's entropy-coded stream ended
// where it should and used the payload up, then refuses anything after
// the payload and finishes the apply.
func (a *applier) finishPayload(patch io.Reader, checks ...func() error) (int64, error) {
	for _, check := range checks {
		if err := check(); err != nil {
			return a.newPos, a.fail(err)
		}
	}
	if err := expectEOF(patch, ErrTrailingData); err != nil {
		return a.newPos, a.fail(err)
	}
	return a.finish()
}

// frameUsedUp checks that a zstd frame read through body left none of
// the payload unread.
func frameUsedUp(body *io.LimitedReader) func() error {
	return func() error {
		if body.N != 0 {
			return fmt.Errorf("%w: %d payload bytes after the frame", ErrTrailingData, body.N)
		}
		return nil
	}
}

// applySegments applies segments read from r until the declared output is
// complete.
func (a *applier) applySegments(r *bufio.Reader) error {
	seg := newSegmentReader(r)
	for !a.done() {
		if err := seg.next(a.newPos, a.newSize); err != nil {
			a.control++
			return a.fail(err)
		}
		for _, c := range seg.ctl {
			if a.done() {
				// Entries after the output is complete: the patch has
				// one valid form, without them.
				a.control++
				return a.fail(fmt.Errorf("%w: entries after the end of the output", ErrTrailingData))
			}
			if err := a.next(int64(c.add), int64(c.copy)); err != nil {
				return err
			}
			if err := a.addRun(seg, int64(c.add)); err != nil {
				return err
			}
			if err := a.copyRun(r, int64(c.copy), true); err != nil {
				return err
			}
			if err := a.seek(c.seek); err != nil {
				return err
			}
		}
	}
	return nil
}

// readUvarint reads a minimally encoded unsigned varint: a value has one
// encoding, and a varint longer than ten bytes is refused.
func readUvarint(r io.ByteReader) (uint64, error) {
	var x uint64
	for i := 0; i < binary.MaxVarintLen64; i++ {
		b, err := r.ReadByte()
		if err != nil {
			return 0, streamErr(err)
		}
		if i == binary.MaxVarintLen64-1 && b > 1 {
			break
		}
		x |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			if b == 0 && i > 0 {
				return 0, fmt.Errorf("%w: non-minimal varint", ErrCorrupt)
			}
			return x, nil
		}
	}
	return 0, fmt.Errorf("%w: varint overflows 64 bits", ErrCorrupt)
}

// readVarint reads a zigzag-encoded signed varint.
func readVarint(r io.ByteReader) (int64, error) {
	u, err := readUvarint(r)
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x, err
}
