package delta

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

// The streaming format groups control entries into segments so that zstd
// sees like with like: the entries of a segment, then the run records that
// describe their diff data, then the literal diff bytes, then the extra
// data. Interleaving entry by entry cost a third more patch size on real
// binaries. Only a segment's run records and literals are buffered by the
// applier; extra data streams through. The limits below bound those
// buffers whatever the patch says.

const (
	// maxSegmentControls caps the entries of one segment.
	maxSegmentControls = 4096
	// maxSegmentAdd caps the add bytes of one segment, and so the literal
	// buffer; the record buffer is at most 2*maxSegmentAdd plus one byte
	// per entry plus maxSegmentSlack.
	maxSegmentAdd   = 512 << 10
	maxSegmentSlack = 64
)

// segmentControl is one parsed entry of a segment.
type segmentControl struct {
	add, copy uint64
	seek      int64
}

// segmentWriter buffers one segment of the streaming format. It reads the
// diff and extra data from old and new, and keeps the predictor that both
// it and the applier update run by run.
type segmentWriter struct {
	w        io.Writer
	old, new []byte
	pred     *predictor
	ctl      []byte
	n        int
	add      int64
	runs     []byte
	lits     []byte
	extras   [][2]int64 // new position and length of each entry's extra data
	diff     []byte     // scratch: one run's diff bytes
	scratch  []byte     // scratch: one entry's converted extra data
	// Counts of runs, and of runs written as a prediction, for tests.
	nruns, npredicted int
}

func newSegmentWriter(w io.Writer, old, new []byte) *segmentWriter {
	return &segmentWriter{w: w, old: old, new: new, pred: newPredictor()}
}

// entry adds an entry: add bytes of new at newPos made from old at oldPos,
// then copy bytes of extra data, then a seek.
func (s *segmentWriter) entry(oldPos, newPos, add, copy, seek int64) error {
	if s.n == maxSegmentControls || s.add+add > maxSegmentAdd {
		if err := s.flush(); err != nil {
			return err
		}
	}
	s.ctl = binary.AppendUvarint(s.ctl, uint64(add))
	s.ctl = binary.AppendUvarint(s.ctl, uint64(copy))
	s.ctl = binary.AppendVarint(s.ctl, seek)
	s.n++
	s.add += add
	if add > 0 {
		s.encodeRuns(oldPos, newPos, add)
	}
	s.extras = append(s.extras, [2]int64{newPos + add, copy})
	return nil
}

// encodeRuns appends the run records and literals of one entry's diff
// data: for each maximal run of nonzero diff bytes, its code and its gap
// (from the entry's start for the first run, from the previous run's start
// after that), then the end code.
func (s *segmentWriter) encodeRuns(oldPos, newPos, add int64) {
	old := s.old[oldPos : oldPos+add]
	nw := s.new[newPos : newPos+add]
	shift := uint32(newPos - oldPos)
	var w oldWindow
	prev := 0
	for i := 0; i < len(nw); {
		for i < len(nw) && nw[i] == old[i] {
			i++
		}
		if i == len(nw) {
			break
		}
		start := i
		s.diff = s.diff[:0]
		for ; i < len(nw) && nw[i] != old[i]; i++ {
			s.diff = append(s.diff, nw[i]-old[i])
		}
		w.fill(s.old, 0, oldPos+int64(start))
		code := s.pred.choose(&w, s.diff, shift)
		s.runs = binary.AppendUvarint(s.runs, code)
		s.runs = binary.AppendUvarint(s.runs, uint64(start-prev))
		s.nruns++
		if code >= codeLiteral {
			s.lits = append(s.lits, s.diff...)
		} else {
			s.npredicted++
		}
		s.pred.learn(&w, s.diff, shift)
		prev = start
	}
	s.runs = append(s.runs, codeEnd)
}

func (s *segmentWriter) flush() error {
	if s.n == 0 {
		return nil
	}
	var hdr []byte
	hdr = binary.AppendUvarint(hdr, uint64(s.n))
	for _, p := range [][]byte{hdr, s.ctl, binary.AppendUvarint(nil, uint64(len(s.runs))), s.runs, s.lits} {
		if _, err := s.w.Write(p); err != nil {
			return err
		}
	}
	for _, e := range s.extras {
		s.scratch = append(s.scratch[:0], s.new[e[0]:e[0]+e[1]]...)
		cc := newCallConverter()
		cc.convert(s.scratch, e[0], true, true)
		if _, err := s.w.Write(s.scratch); err != nil {
			return err
		}
	}
	s.ctl, s.n, s.add = s.ctl[:0], 0, 0
	s.runs, s.lits, s.extras = s.runs[:0], s.lits[:0], s.extras[:0]
	return nil
}

// segmentReader reads segments and produces their diff data entry by entry.
type segmentReader struct {
	r       bufioReader
	ctl     []segmentControl
	runsBuf []byte // reused across segments
	litsBuf []byte
	runs    []byte // unread part of runsBuf
	lits    []byte // unread part of litsBuf
	pred    *predictor

	// The entry being applied.
	add     int64   // its add length
	shift   uint32  // its new position minus its old position
	pos     int64   // diff bytes produced so far
	runAt   int64   // where the next run starts; add once the end code is read
	code    uint64  // the next run's code
	cur     [4]byte // a predicted run being produced
	curLen  int
	curOff  int
	litLeft int // literal bytes of the current run not yet produced
	window  oldWindow
}

// bufioReader is the reader the segments come from: a byte reader for
// varints and a plain reader for data.
type bufioReader interface {
	io.Reader
	io.ByteReader
}

func newSegmentReader(r bufioReader) *segmentReader {
	return &segmentReader{r: r, pred: newPredictor()}
}

// next reads the next segment's entries, run records and literals. planned
// is the output written so far and newSize the declared total: entries that
// would pass it are refused here, before anything is buffered. The records
// are checked for everything that does not depend on the predictions:
// their form, that each run starts inside its entry after the previous one,
// and the number of literal bytes, so the literals can be sized and read.
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
	if runsLen > 2*sumAdd+n+maxSegmentSlack {
		return fmt.Errorf("%w: %d bytes of run records for %d diff bytes", ErrCorrupt, runsLen, sumAdd)
	}
	s.runsBuf = grow(s.runsBuf, int(runsLen))
	s.runs = s.runsBuf
	s.pred.expect(int(runsLen))
	if _, err := io.ReadFull(s.r, s.runs); err != nil {
		return streamErr(err)
	}
	litTotal, err := checkRuns(s.runs, s.ctl)
	if err != nil {
		return err
	}
	s.litsBuf = grow(s.litsBuf, int(litTotal))
	s.lits = s.litsBuf
	if _, err := io.ReadFull(s.r, s.lits); err != nil {
		return streamErr(err)
	}
	if bytes.IndexByte(s.lits, 0) >= 0 {
		return fmt.Errorf("%w: zero byte among diff literals", ErrCorrupt)
	}
	return nil
}

// checkRuns checks the run records of a segment's entries and returns the
// number of literal bytes they use. A predicted run is at least one byte
// long; its exact length is checked when it is produced.
func checkRuns(runs []byte, ctl []segmentControl) (uint64, error) {
	bad := func(what string) error { return fmt.Errorf("%w: run records: %s", ErrCorrupt, what) }
	var lits uint64
	for _, c := range ctl {
		if c.add == 0 {
			continue
		}
		var pos, minGap uint64
		for {
			code, n := uvarint(runs)
			if n == 0 {
				return 0, bad("end early or bad varint")
			}
			runs = runs[n:]
			if code == codeEnd {
				break
			}
			gap, n := uvarint(runs)
			if n == 0 {
				return 0, bad("end early or bad varint")
			}
			runs = runs[n:]
			if gap < minGap || gap >= c.add-pos {
				return 0, bad("a run overlaps the previous one or starts past its entry")
			}
			pos += gap
			minGap = 2 // the previous run, of at least one byte, then a zero
			if code >= codeLiteral {
				l := code - (codeLiteral - 1)
				if l > c.add-pos {
					return 0, bad("a literal run ends past its entry")
				}
				lits += l
				minGap = l + 1
			}
		}
	}
	if len(runs) != 0 {
		return 0, bad("data after the last entry's end code")
	}
	return lits, nil
}

// uvarint decodes a varint from the front of b with readUvarint's rules
// (minimal, at most 64 bits); n is 0 if b does not start with one.
func uvarint(b []byte) (x uint64, n int) {
	if len(b) > 0 && b[0] < 0x80 {
		return uint64(b[0]), 1 // most codes and gaps
	}
	x, n = binary.Uvarint(b)
	if n <= 0 || (n > 1 && b[n-1] == 0) {
		return 0, 0
	}
	return x, n
}

// begin starts producing the diff data of an entry of add bytes.
func (s *segmentReader) begin(add int64, shift uint32) {
	s.add, s.shift, s.pos, s.curLen, s.curOff, s.litLeft = add, shift, 0, 0, 0, 0
	s.record(0)
}

// record reads the next run record of the entry; start is where the
// previous run started (0 before the first). The records were checked in
// next, so they decode and stay inside the entry.
func (s *segmentReader) record(start int64) {
	code, w := uvarint(s.runs)
	s.runs = s.runs[w:]
	s.code = code
	if code == codeEnd {
		s.runAt = s.add
		return
	}
	gap, w := uvarint(s.runs)
	s.runs = s.runs[w:]
	s.runAt = start + int64(gap)
}

// fill produces the next len(d) diff bytes of the entry, as diffSource
// says.
func (s *segmentReader) fill(d, buf []byte, base, oldPos int64) error {
	clear(d)
	n := 0
	for {
		// Finish the run in progress, which may have begun in an earlier
		// chunk.
		if s.curOff < s.curLen {
			k := copy(d[n:], s.cur[s.curOff:s.curLen])
			s.curOff += k
			n += k
			s.pos += int64(k)
		} else if s.litLeft > 0 {
			k := copy(d[n:n+min(s.litLeft, len(d)-n)], s.lits)
			s.lits = s.lits[k:]
			s.litLeft -= k
			n += k
			s.pos += int64(k)
		}
		// Zeros (d is cleared) up to the next run or the end of d.
		if rest := int64(len(d) - n); s.runAt-s.pos >= rest {
			s.pos += rest
			return nil
		}
		n += int(s.runAt - s.pos)
		s.pos = s.runAt
		// A run starts here.
		if s.runAt >= s.add {
			return fmt.Errorf("%w: diff data ends before its entry", ErrCorrupt)
		}
		s.window.fill(buf, base, oldPos+int64(n))
		var run []byte
		if s.code >= codeLiteral {
			s.litLeft = int(s.code - (codeLiteral - 1))
			run = s.lits[:s.litLeft]
		} else {
			var k int
			s.cur, k = s.pred.predict(s.code, &s.window, s.shift)
			if k == 0 {
				return fmt.Errorf("%w: run code %d predicts nothing at old offset %d", ErrCorrupt, s.code, s.window.pos)
			}
			if int64(k) > s.add-s.pos {
				return fmt.Errorf("%w: a predicted run ends past its entry", ErrCorrupt)
			}
			s.curLen, s.curOff = k, 0
			run = s.cur[:k]
		}
		s.pred.learn(&s.window, run, s.shift)
		start := s.pos
		s.record(start)
		if s.code != codeEnd && s.runAt <= start+int64(len(run)) {
			return fmt.Errorf("%w: a run starts inside the previous one or right after it", ErrCorrupt)
		}
	}
}

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}
