package delta

import (
	"bufio"
	"bytes"
	stdbzip2 "compress/bzip2"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/otaseal/otaseal/internal/bzip2"
)

// bsdiff40Magic opens a BSDIFF40 patch.
const bsdiff40Magic = "BSDIFF40"

// bsdiff40HeaderSize is the fixed header: magic and three integers.
const bsdiff40HeaderSize = 32

// putOff writes x as bsdiff's 8-byte sign-magnitude little-endian integer.
func putOff(b []byte, x int64) {
	u := uint64(x)
	if x < 0 {
		u = uint64(-x) | 1<<63
	}
	binary.LittleEndian.PutUint64(b, u)
}

// getOff reads bsdiff's sign-magnitude integer. Negative zero is refused:
// bsdiff never writes it and each value has one encoding.
func getOff(b []byte) (int64, error) {
	u := binary.LittleEndian.Uint64(b)
	mag := int64(u &^ (1 << 63))
	if u>>63 == 0 {
		return mag, nil
	}
	if mag == 0 {
		return 0, fmt.Errorf("%w: negative zero", ErrCorrupt)
	}
	return -mag, nil
}

// writeBSDIFF40 compresses the three blocks with our bzip2 writer
// (internal/bzip2) into memory (a patch is small next to the images), then
// writes header and blocks. Above StreamWindow of new image the blocks are
// compressed concurrently, for time; below it one after the other, for
// memory: each block's encoder holds about 13 bytes per byte it codes,
// which on a small pair would otherwise be paid three times at once, and
// the whole compression takes tens of milliseconds there.
func (d *Script) writeBSDIFF40(w io.Writer) error {
	var blocks [3]bytes.Buffer
	var errs [3]error
	fill := [3]func(io.Writer) error{d.writeControls, d.writeDiffData, d.writeExtraData}
	compress := func(i int) {
		zw := bzip2.NewWriter(&blocks[i])
		err := fill[i](zw)
		if err == nil {
			err = zw.Close()
		}
		errs[i] = err
	}
	if len(d.new) <= StreamWindow {
		for i := range blocks {
			compress(i)
		}
	} else {
		var wg sync.WaitGroup
		for i := range blocks {
			wg.Go(func() { compress(i) })
		}
		wg.Wait()
	}
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("delta: bzip2: %w", err)
		}
	}
	var hdr [bsdiff40HeaderSize]byte
	copy(hdr[:], bsdiff40Magic)
	putOff(hdr[8:], int64(blocks[0].Len()))
	putOff(hdr[16:], int64(blocks[1].Len()))
	putOff(hdr[24:], int64(len(d.new)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	for i := range blocks {
		if _, err := blocks[i].WriteTo(w); err != nil {
			return err
		}
	}
	return nil
}

// writeControls writes the (add, copy, seek) triples.
func (d *Script) writeControls(w io.Writer) error {
	bw := bufio.NewWriterSize(w, chunkSize)
	var b [24]byte
	for i, o := range d.ops {
		putOff(b[0:], o.add)
		putOff(b[8:], o.copy)
		putOff(b[16:], d.seek(i))
		if _, err := bw.Write(b[:]); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// writeDiffData writes new-old over every add run, regenerated from the
// images a chunk at a time.
func (d *Script) writeDiffData(w io.Writer) error {
	buf := make([]byte, chunkSize)
	for _, o := range d.ops {
		nw := d.new[o.newPos : o.newPos+o.add]
		ol := d.old[o.oldPos : o.oldPos+o.add]
		for len(nw) > 0 {
			k := min(len(nw), len(buf))
			b := buf[:k]
			for i := range b {
				b[i] = nw[i] - ol[i]
			}
			if _, err := w.Write(b); err != nil {
				return err
			}
			nw, ol = nw[k:], ol[k:]
		}
	}
	return nil
}

// writeExtraData writes the bytes of new that no add run covers.
func (d *Script) writeExtraData(w io.Writer) error {
	for _, o := range d.ops {
		start := o.newPos + o.add
		if _, err := w.Write(d.new[start : start+o.copy]); err != nil {
			return err
		}
	}
	return nil
}

// ApplyBSDIFF40 applies a BSDIFF40 patch to old (oldSize bytes) and writes
// the new image to dst, a chunk at a time. The format stores its three
// streams one after the other and all three are read in step, so the patch
// must be an io.ReaderAt (a file, or a download kept on disk) of patchSize
// bytes.
//
// It returns the number of bytes written. On error, what was written is
// garbage and must be discarded: a patch is untrusted until the output
// matches the signed image.
func ApplyBSDIFF40(dst io.Writer, old io.ReaderAt, oldSize int64, patch io.ReaderAt, patchSize int64, opts *ApplyOptions) (int64, error) {
	a, err := newApplier(FormatBSDIFF40, dst, old, oldSize, opts)
	if err != nil {
		return 0, err
	}
	var hdr [bsdiff40HeaderSize]byte
	if patchSize < bsdiff40HeaderSize {
		return 0, a.fail(fmt.Errorf("%w: %d bytes", ErrFormat, patchSize))
	}
	if _, err := patch.ReadAt(hdr[:], 0); err != nil {
		return 0, a.fail(streamErr(err))
	}
	if string(hdr[:8]) != bsdiff40Magic {
		return 0, a.fail(fmt.Errorf("%w: magic %q", ErrFormat, hdr[:8]))
	}
	ctrlLen, err1 := getOff(hdr[8:])
	diffLen, err2 := getOff(hdr[16:])
	newSize, err3 := getOff(hdr[24:])
	for _, err := range []error{err1, err2, err3} {
		if err != nil {
			return 0, a.fail(err)
		}
	}
	// The block lengths locate the streams inside the patch: check them
	// against its real size, overflow-safe, before making readers.
	body := patchSize - bsdiff40HeaderSize
	if ctrlLen < 0 || diffLen < 0 || ctrlLen > body || diffLen > body-ctrlLen {
		return 0, a.fail(fmt.Errorf("%w: block lengths %d and %d in a %d-byte patch", ErrCorrupt, ctrlLen, diffLen, patchSize))
	}
	if err := a.setNewSize(newSize, opts); err != nil {
		return 0, err
	}
	ctrlR := stdbzip2.NewReader(io.NewSectionReader(patch, bsdiff40HeaderSize, ctrlLen))
	diffR := stdbzip2.NewReader(io.NewSectionReader(patch, bsdiff40HeaderSize+ctrlLen, diffLen))
	extraR := stdbzip2.NewReader(io.NewSectionReader(patch, bsdiff40HeaderSize+ctrlLen+diffLen, body-ctrlLen-diffLen))
	ctrl := bufio.NewReaderSize(ctrlR, 4096)
	diff := readerDiff{diffR}

	var b [24]byte
	for !a.done() {
		if _, err := io.ReadFull(ctrl, b[:]); err != nil {
			a.control++
			return a.newPos, a.fail(streamErr(err))
		}
		add, err1 := getOff(b[0:])
		cp, err2 := getOff(b[8:])
		seek, err3 := getOff(b[16:])
		for _, err := range []error{err1, err2, err3} {
			if err != nil {
				a.control++
				return a.newPos, a.fail(err)
			}
		}
		if err := a.next(add, cp); err != nil {
			return a.newPos, err
		}
		if err := a.addRun(diff, add); err != nil {
			return a.newPos, err
		}
		if err := a.copyRun(extraR, cp, false); err != nil {
			return a.newPos, err
		}
		if err := a.seek(seek); err != nil {
			return a.newPos, err
		}
	}
	// The output is complete: all three streams must end here too.
	for _, r := range []io.Reader{ctrl, diffR, extraR} {
		if err := expectEOF(r, ErrTrailingData); err != nil {
			return a.newPos, a.fail(err)
		}
	}
	return a.finish()
}
