package delta

import (
	"encoding/binary"
)

// Most of the diff data of two builds of a program is addresses that moved:
// pointers in tables and the 32-bit displacements of calls and
// PC-relative loads. Where one of them changed, others that point into the
// same region usually changed by the same amount. The streaming format
// exploits that: encoder and applier both keep two small tables, learned
// from the runs of nonzero diff bytes seen so far, and a run the tables
// predict exactly is written as a one-byte code instead of its bytes. The
// prediction reads only old and the diff data already decoded, so both
// sides compute the same one; a wrong guess costs nothing, as the run is
// then written out as before.
//
// Both tables map a 4 KiB page of 32-bit values to the last change seen
// for a value in that page:
//
//   - the absolute table, for 32-bit words aligned on 4 bytes in old: the
//     page of the old word to (new word - old word);
//   - the relative table, for 32-bit fields at any offset read as a
//     displacement from the end of the field: the page of the target (field
//     position + 4 + displacement) to how far that target moved, that is
//     (new displacement - old displacement) + (new position - old position)
//     of the entry.
//
// A run of at most 4 bytes lies inside one 32-bit field; the field may
// start up to 3 bytes before the run (the low bytes of an address often
// stay the same), so the relative table is consulted for each such start.

// Run codes of the streaming format's run records.
const (
	codeEnd     = 0 // no more runs in this entry: the rest of its diff is zeros
	codeAbs     = 1 // the run is what the absolute table predicts
	codeRel     = 2 // 2..5: what the relative table predicts for a field starting code-2 bytes before the run
	codeLiteral = 6 // 6 and up: a run of code-5 literal bytes
)

// predBits sizes each table: 1<<predBits slots of a key and a value, 512 KiB
// for both tables together.
const predBits = 15

// predPageShift makes the table key of a 32-bit value: its 4 KiB page.
const predPageShift = 12

// predSparseMax is how many slots a table holds in a map before it moves
// to its full array. A tiny patch learns a few dozen runs: zeroing 512 KiB
// of tables for them was most of the fixed cost of applying it.
const predSparseMax = 512

// predTable is a direct-mapped cache from a page to the last change seen
// there. A slot holds page+1 in its high 32 bits, so zero marks an empty
// slot, and the change in its low 32 bits. The slots live in a map until
// more than predSparseMax are used, then in an array; both hold the same
// slots, so the format does not depend on which.
type predTable struct {
	full   *[1 << predBits]uint64
	sparse map[uint32]uint64
}

func predSlot(page uint32) uint32 { return (page * 0x9E3779B1) >> (32 - predBits) }

func (t *predTable) slot(i uint32) uint64 {
	if t.full != nil {
		return t.full[i]
	}
	return t.sparse[i]
}

// setSlot is small enough to inline for the array, the common case once a
// patch has more than a few runs.
func (t *predTable) setSlot(i uint32, v uint64) {
	if t.full != nil {
		t.full[i] = v
		return
	}
	t.setSparse(i, v)
}

func (t *predTable) setSparse(i uint32, v uint64) {
	if t.sparse == nil {
		t.sparse = make(map[uint32]uint64)
	}
	t.sparse[i] = v
	if len(t.sparse) > predSparseMax {
		t.grow()
	}
}

// grow moves the slots to the array.
func (t *predTable) grow() {
	if t.full != nil {
		return
	}
	t.full = new([1 << predBits]uint64)
	for k, v := range t.sparse {
		t.full[k] = v
	}
	t.sparse = nil
}

func (t *predTable) get(x uint32) (uint32, bool) {
	page := x >> predPageShift
	s := t.slot(predSlot(page))
	if uint32(s>>32) != page+1 {
		return 0, false
	}
	return uint32(s), true
}

func (t *predTable) put(x, v uint32) {
	page := x >> predPageShift
	t.setSlot(predSlot(page), uint64(page+1)<<32|uint64(v))
}

// predictor holds both tables. They fill as runs are learned, so a patch
// without runs (or one refused before its first) costs nothing.
type predictor struct {
	abs, rel predTable
	learned  bool
}

func newPredictor() *predictor { return &predictor{} }

// predFullRecords is the length of a segment's run records from which the
// applier sets up the tables' arrays at once: a run learns up to five
// slots, so past about a hundred runs the map fills and moves anyway, and
// the map inserts before the move were 2% of a 500 KB image's apply.
const predFullRecords = 512

// expect tells the tables that about runsLen bytes of run records follow.
func (p *predictor) expect(runsLen int) {
	if runsLen < predFullRecords {
		return
	}
	p.abs.grow()
	p.rel.grow()
}

// oldWindow holds old[pos-3 : pos+4), the bytes a run starting at old
// position pos can be predicted from, as a little-endian integer: byte i
// of the window is bits 8i..8i+7. Bytes i with lo <= i < hi are valid (the
// window is cut at the ends of old); the others are zero.
type oldWindow struct {
	pos    int64
	w      uint64
	lo, hi int
}

// fill fills w for position pos from buf, which holds old bytes starting
// at old position base and ending at the end of old or at least 4 bytes
// after pos.
func (w *oldWindow) fill(buf []byte, base, pos int64) {
	w.pos = pos
	start := pos - 3
	w.lo, w.hi = 0, 7
	if start < base {
		w.lo = int(base - start)
	}
	if end := base + int64(len(buf)); pos+4 > end {
		w.hi = 7 - int(pos+4-end)
	}
	b := buf[start+int64(w.lo)-base:]
	if w.lo == 0 && w.hi == 7 && len(b) >= 8 {
		w.w = binary.LittleEndian.Uint64(b) &^ (0xFF << 56)
		return
	}
	w.w = 0
	for i := w.lo; i < w.hi; i++ {
		w.w |= uint64(b[i-w.lo]) << (8 * i)
	}
}

// field returns the 32-bit little-endian value of the field starting c
// bytes before the run, and whether the window holds it.
func (w *oldWindow) field(c int) (uint32, bool) {
	i := 3 - c
	if i < w.lo || i+4 > w.hi {
		return 0, false
	}
	return uint32(w.w >> (8 * i)), true
}

// addBytes32 adds the bytes of a and b pairwise, each modulo 256: how diff
// bytes apply to old bytes.
func addBytes32(a, b uint32) uint32 { return uint32(addBytes64(uint64(a), uint64(b))) }

// predict returns the run that code predicts at the window's position, or
// n == 0 if the tables have nothing or the prediction changes nothing
// there. shift is the entry's new position minus its old position.
func (p *predictor) predict(code uint64, w *oldWindow, shift uint32) (run [4]byte, n int) {
	if !p.learned {
		return run, 0 // nothing learned yet
	}
	var c int
	switch {
	case code == codeAbs:
		c = int(w.pos & 3)
	case code >= codeRel && code < codeLiteral:
		c = int(code - codeRel)
	default:
		return run, 0
	}
	f, ok := w.field(c)
	if !ok {
		return run, 0
	}
	var want uint32
	if code == codeAbs {
		d, ok := p.abs.get(f)
		if !ok {
			return run, 0
		}
		want = f + d
	} else {
		moved, ok := p.rel.get(relTarget(w.pos, c, f))
		if !ok {
			return run, 0
		}
		want = f + moved - shift
	}
	// The predicted run is the nonzero differences from the run's first
	// byte to the first unchanged byte or the end of the field.
	for j := c; j < 4; j++ {
		d := byte(want>>(8*j)) - byte(f>>(8*j))
		if d == 0 {
			break
		}
		run[n] = d
		n++
	}
	return run, n
}

// relTarget is the key of the relative table: where the displacement disp
// of the field starting c bytes before old position pos points to.
func relTarget(pos int64, c int, disp uint32) uint32 {
	return uint32(pos-int64(c)+4) + disp
}

// learn records the run of diff bytes starting at the window's position in
// both tables, for every field that holds it.
func (p *predictor) learn(w *oldWindow, run []byte, shift uint32) {
	if len(run) > 4 {
		return
	}
	p.learned = true
	var r uint32
	for j, d := range run {
		r |= uint32(d) << (8 * j)
	}
	if c := int(w.pos & 3); c+len(run) <= 4 {
		if v, ok := w.field(c); ok {
			p.abs.put(v, addBytes32(v, r<<(8*c))-v)
		}
	}
	for c := 0; c+len(run) <= 4; c++ {
		disp, ok := w.field(c)
		if !ok {
			continue
		}
		p.rel.put(relTarget(w.pos, c, disp), addBytes32(disp, r<<(8*c))-disp+shift)
	}
}

// choose returns the code that predicts run exactly, or the literal code.
func (p *predictor) choose(w *oldWindow, run []byte, shift uint32) uint64 {
	if len(run) <= 4 {
		for code := uint64(codeAbs); code < codeLiteral; code++ {
			got, n := p.predict(code, w, shift)
			if n == len(run) && string(got[:n]) == string(run) {
				return code
			}
		}
	}
	return codeLiteral - 1 + uint64(len(run))
}

// The extra data of an entry is new code more often than anything else. In
// x86 code a call or jump (opcode E8 or E9) to the same function has a
// different 32-bit displacement at every call site; written as the
// absolute target instead, the calls repeat and compress. The streaming
// format stores extra data so converted; the doc comment of the package
// has the exact rule. The one subtlety is that the applier sees the bytes
// after an opcode already converted when a later field overlaps them: an
// opcode within 3 bytes after one that was left alone is therefore left
// alone too, so the bytes that decided the first one never change.

// callConverter converts the extra data of one entry, possibly in pieces.
type callConverter struct {
	// kept is the new position of the last E8 or E9 byte left alone.
	kept int64
}

func newCallConverter() callConverter { return callConverter{kept: -1 << 62} }

// convert converts p in place (encode) or back (decode); p[0] is at new
// position pos. Unless final, the last 4 bytes may belong to a field that
// continues in the next piece: it returns how many leading bytes are done,
// and the caller passes the rest again with more bytes after them.
func (c *callConverter) convert(p []byte, pos int64, encode, final bool) int {
	i := 0
	for ; i+5 <= len(p); i++ {
		if p[i]&0xFE != 0xE8 {
			continue
		}
		at := pos + int64(i)
		x := binary.LittleEndian.Uint32(p[i+1:])
		if top := x >> 24; (top != 0 && top != 0xFF) || at-c.kept <= 3 {
			c.kept = at
			continue
		}
		if encode {
			x += uint32(at + 5)
		} else {
			x -= uint32(at + 5)
		}
		x = uint32(int32(x<<7) >> 7) // sign-extend the low 25 bits
		binary.LittleEndian.PutUint32(p[i+1:], x)
		i += 4
	}
	if final {
		return len(p)
	}
	return i
}
