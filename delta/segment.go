package delta

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

// The streaming format groups control entries into segments so that zstd
// sees like with like: the entries of a segment, then its diff data as
// zero runs and nonzero literals, then its extra data. Interleaving entry
// by entry cost a third more patch size on real binaries. Only a segment's
// run and literal data are buffered by the applier; extra data streams
// through. The limits below bound those buffers whatever the patch says.

const (
	// maxSegmentControls caps the entries of one segment.
	maxSegmentControls = 4096
	// maxSegmentAdd caps the add bytes of one segment, and so the literal
	// buffer; the run buffer is at most 2*maxSegmentAdd+maxSegmentSlack.
	maxSegmentAdd   = 512 << 10
	maxSegmentSlack = 64
)

// segmentControl is one parsed entry of a segment.
type segmentControl struct {
	add, copy uint64
	seek      int64
}

// diffRuns encodes diff data as pairs (uvarint zeros, uvarint literals)
// and the nonzero literal bytes. One encoding per input: only the first
// pair may have no zeros, only the last may have no literals, and no
// literal is zero.
func diffRuns(runs, lits, diff []byte) ([]byte, []byte) {
	for i := 0; i < len(diff); {
		z := i
		for i < len(diff) && diff[i] == 0 {
			i++
		}
		s := i
		for i < len(diff) && diff[i] != 0 {
			i++
		}
		runs = binary.AppendUvarint(runs, uint64(s-z))
		runs = binary.AppendUvarint(runs, uint64(i-s))
		lits = append(lits, diff[s:i]...)
	}
	return runs, lits
}

// segmentWriter buffers one segment of the streaming format.
type segmentWriter struct {
	w      io.Writer
	ctl    []byte
	n      int
	add    int
	diff   []byte // the segment's diff data, run-coded at flush
	runs   []byte
	lits   []byte
	extras [][]byte
}

// entry adds an entry whose diff data is diff and extra data extra.
func (s *segmentWriter) entry(diff, extra []byte, seek int64) error {
	if s.n == maxSegmentControls || s.add+len(diff) > maxSegmentAdd {
		if err := s.flush(); err != nil {
			return err
		}
	}
	s.ctl = binary.AppendUvarint(s.ctl, uint64(len(diff)))
	s.ctl = binary.AppendUvarint(s.ctl, uint64(len(extra)))
	s.ctl = binary.AppendVarint(s.ctl, seek)
	s.n++
	s.add += len(diff)
	s.diff = append(s.diff, diff...)
	s.extras = append(s.extras, extra)
	return nil
}

func (s *segmentWriter) flush() error {
	if s.n == 0 {
		return nil
	}
	s.runs, s.lits = diffRuns(s.runs[:0], s.lits[:0], s.diff)
	var hdr []byte
	hdr = binary.AppendUvarint(hdr, uint64(s.n))
	parts := [][]byte{hdr, s.ctl, binary.AppendUvarint(nil, uint64(len(s.runs))), s.runs, s.lits}
	parts = append(parts, s.extras...)
	for _, p := range parts {
		if _, err := s.w.Write(p); err != nil {
			return err
		}
	}
	s.ctl, s.n, s.add, s.diff, s.extras = s.ctl[:0], 0, 0, s.diff[:0], s.extras[:0]
	return nil
}

// segmentReader reads segments and serves their diff data in order.
type segmentReader struct {
	r       bufioReader
	ctl     []segmentControl
	runsBuf []byte // reused across segments
	litsBuf []byte
	runs    []byte // unread part of runsBuf
	lits    []byte // unread part of litsBuf
	zeros   uint64 // zeros left in the current run
	litLeft uint64 // literals left in the current run
}

// bufioReader is the reader the segments come from: a byte reader for
// varints and a plain reader for data.
type bufioReader interface {
	io.Reader
	io.ByteReader
}

// next reads the next segment header, runs and literals. planned is the
// output written so far and newSize the declared total: entries that would
// pass it are refused here, before anything is buffered.
func (s *segmentReader) next(planned, newSize int64) error {
	n, err := readUvarint(s.r)
	if err != nil {
		return err
	}
	if n == 0 || n > maxSegmentControls {
		return fmt.Errorf("%w: segment of %d entries (limit %d)", ErrCorrupt, n, maxSegmentControls)
	}
	s.ctl = s.ctl[:0]
	var sumAdd uint64
	for range n {
		add, err := readUvarint(s.r)
		if err != nil {
			return err
		}
		cp, err := readUvarint(s.r)
		if err != nil {
			return err
		}
		seek, err := readVarint(s.r)
		if err != nil {
			return err
		}
		room := uint64(newSize - planned)
		if add > room || cp > room-add {
			return fmt.Errorf("%w: entry writes %d+%d bytes, %d left of declared %d", ErrOutputLimit, add, cp, room, newSize)
		}
		planned += int64(add + cp)
		sumAdd += add
		if sumAdd > maxSegmentAdd {
			return fmt.Errorf("%w: segment adds more than %d bytes", ErrCorrupt, maxSegmentAdd)
		}
		s.ctl = append(s.ctl, segmentControl{add, cp, seek})
	}
	runsLen, err := readUvarint(s.r)
	if err != nil {
		return err
	}
	if runsLen > 2*sumAdd+maxSegmentSlack {
		return fmt.Errorf("%w: %d bytes of runs for %d diff bytes", ErrCorrupt, runsLen, sumAdd)
	}
	s.runsBuf = grow(s.runsBuf, int(runsLen))
	s.runs = s.runsBuf
	if _, err := io.ReadFull(s.r, s.runs); err != nil {
		return streamErr(err)
	}
	// Check the runs cover the diff data exactly, canonically, and size
	// the literals before reading them.
	var total, litTotal uint64
	rr := bytes.NewReader(s.runs)
	for pair := 0; rr.Len() > 0; pair++ {
		z, err1 := readUvarint(rr)
		l, err2 := readUvarint(rr)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("%w: bad run encoding", ErrCorrupt)
		}
		if (z == 0 && pair > 0) || (l == 0 && rr.Len() > 0) || z > sumAdd || l > sumAdd || total+z+l > sumAdd {
			return fmt.Errorf("%w: runs do not cover the diff data canonically", ErrCorrupt)
		}
		total += z + l
		litTotal += l
	}
	if total != sumAdd {
		return fmt.Errorf("%w: runs cover %d of %d diff bytes", ErrCorrupt, total, sumAdd)
	}
	s.litsBuf = grow(s.litsBuf, int(litTotal))
	s.lits = s.litsBuf
	if _, err := io.ReadFull(s.r, s.lits); err != nil {
		return streamErr(err)
	}
	if bytes.IndexByte(s.lits, 0) >= 0 {
		return fmt.Errorf("%w: zero byte among diff literals", ErrCorrupt)
	}
	s.zeros, s.litLeft = 0, 0
	return nil
}

// Read serves the segment's diff data: zeros and literals in run order.
// The runs were validated in next, so this cannot fail on their account.
func (s *segmentReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		switch {
		case s.zeros > 0:
			k := int(min(s.zeros, uint64(len(p)-n)))
			clear(p[n : n+k])
			n += k
			s.zeros -= uint64(k)
		case s.litLeft > 0:
			k := copy(p[n:n+int(min(s.litLeft, uint64(len(p)-n)))], s.lits)
			if k == 0 {
				// Cannot happen after next's checks; never spin.
				return n, io.ErrUnexpectedEOF
			}
			s.lits = s.lits[k:]
			n += k
			s.litLeft -= uint64(k)
		case len(s.runs) > 0:
			z, w1 := binary.Uvarint(s.runs)
			l, w2 := binary.Uvarint(s.runs[w1:])
			s.runs = s.runs[w1+w2:]
			s.zeros, s.litLeft = z, l
		default:
			return n, io.ErrUnexpectedEOF
		}
	}
	return n, nil
}

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}
