package delta

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
)

// The range-coded LZ stream (rclz): the entropy stage of the streaming
// format's range-coded layouts, in place of zstd for images of at most
// lzMaxImages bytes together. zstd's strongest encoder allocates tens of
// megabytes of match tables whatever the input size; this coder's tables
// are sized to its input (see rclzenc.go), and with its context modelling
// it also codes tighter than zstd's best level. Its design is the
// LZMA-style one: LZ77 symbols (literals, matches, repeats of the last
// four distances) coded bit by bit with adaptive binary probabilities
// chosen by a small state machine over the recent symbols. The package
// doc has the byte layout; this file holds the model both sides share and
// the decoder.

const (
	rcMinMatch  = 2
	rcMaxMatch  = 273 // rcMinMatch + 8 + 8 + 256 - 1
	rcStates    = 12
	rcLitStates = 7 // states below this follow a literal
	rcMaxLC     = 4 // literal context bits
	rcMaxPB     = 2 // position bits
	rcEndSlot   = 4 // distance slots below this are the distance itself
	rcAlignBits = 4
	rcLenStates = 4
	// rcProps is the number of valid property bytes: lc + 5*pb.
	rcProps = (rcMaxLC + 1) * (rcMaxPB + 1)
	// rcChunk is the output of one chunk (the last may be shorter). A
	// chunk is range-coded, starting with the coder's first byte (always
	// 00), or stored: rcStoredChunk and its bytes as they are.
	rcChunk       = 256 << 10
	rcStoredChunk = 0x01
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// rcLenModel codes a match length minus rcMinMatch: 0..7 with a choice
// bit and a 3-bit tree per position state, 8..15 likewise behind a second
// choice bit, and 16..271 with an 8-bit tree.
type rcLenModel struct {
	choice, choice2 prob
	low, mid        [1 << rcMaxPB][8]prob
	high            [256]prob
}

// rcModel is every adaptive probability of the stream. Encoder and decoder
// update it identically, symbol by symbol.
type rcModel struct {
	lc, pb     uint
	isMatch    [rcStates][1 << rcMaxPB]prob
	isRep      [rcStates]prob
	isRepG0    [rcStates]prob
	isRepG1    [rcStates]prob
	isRepG2    [rcStates]prob
	isRep0Long [rcStates][1 << rcMaxPB]prob
	// lit has 0x300 probabilities per context (the previous byte's top lc
	// bits): 0x100 for a plain literal's bit tree, and 0x200 for a literal
	// coded while it still agrees with the byte at the last distance.
	lit     []prob
	slot    [rcLenStates][64]prob
	special [14][32]prob // reverse trees of the low bits of slots 4..13
	align   [1 << rcAlignBits]prob
	matchLn rcLenModel
	repLn   rcLenModel
}

func initProbs(p []prob) {
	for i := range p {
		p[i] = probInit
	}
}

func (l *rcLenModel) init() {
	l.choice, l.choice2 = probInit, probInit
	for i := range l.low {
		initProbs(l.low[i][:])
		initProbs(l.mid[i][:])
	}
	initProbs(l.high[:])
}

func (m *rcModel) init(props byte) {
	m.lc, m.pb = uint(props%(rcMaxLC+1)), uint(props/(rcMaxLC+1))
	n := 0x300 << m.lc
	if cap(m.lit) >= n {
		m.lit = m.lit[:n]
	} else {
		m.lit = make([]prob, n)
	}
	initProbs(m.lit)
	for s := range rcStates {
		initProbs(m.isMatch[s][:])
		initProbs(m.isRep0Long[s][:])
	}
	initProbs(m.isRep[:])
	initProbs(m.isRepG0[:])
	initProbs(m.isRepG1[:])
	initProbs(m.isRepG2[:])
	for i := range m.slot {
		initProbs(m.slot[i][:])
	}
	for i := range m.special {
		initProbs(m.special[i][:])
	}
	initProbs(m.align[:])
	m.matchLn.init()
	m.repLn.init()
}

// The state remembers the last few symbol kinds; literals after a match
// are coded against the byte at the match's distance.
func stateAfterLit(s int) int {
	switch {
	case s < 4:
		return 0
	case s < 10:
		return s - 3
	}
	return s - 6
}

func stateAfterMatch(s int) int {
	if s < rcLitStates {
		return 7
	}
	return 10
}

func stateAfterRep(s int) int {
	if s < rcLitStates {
		return 8
	}
	return 11
}

func stateAfterShortRep(s int) int {
	if s < rcLitStates {
		return 9
	}
	return 11
}

// distSlot returns the slot of a distance minus one: the distance itself
// below 4, else twice the index of its top bit plus the bit below it.
func distSlot(d uint32) uint32 {
	if d < rcEndSlot {
		return d
	}
	n := uint32(31)
	for d>>n == 0 {
		n--
	}
	return 2*n + (d >> (n - 1) & 1)
}

func lenState(length int) int { return min(length-rcMinMatch, rcLenStates-1) }

// rclzReader decodes a range-coded LZ stream of a known length into a
// window, as an io.Reader.
type rclzReader struct {
	rc      rcDecoder
	m       rcModel
	win     []byte // history: the dictionary, then the output, wrapping
	wpos    int
	hist    int64 // bytes of history: the dictionary plus the output
	total   int64 // bytes the stream decodes to
	done    int64 // bytes of output so far
	state   int
	reps    [4]uint32 // the last four distances, minus one
	pending int       // bytes of the current match not yet output
	// chunkEnd is the output position where the current chunk ends;
	// coded says whether it is range-coded (else stored).
	chunkEnd int64
	coded    bool
	crc      uint32
	err      error
}

// newRCLZReader starts decoding a stream read from in, which decodes to at
// most maxTotal bytes. The history before the first output byte is a
// dictionary of dictLen bytes, which fill writes into the window once the
// stream's header has been checked. window (at least 1) bounds the
// distance of every match beyond the dictionary, and so the memory held:
// the reader's window is dictLen plus the smaller of window and the
// stream's length.
func newRCLZReader(in io.Reader, bufSize, dictLen int, fill func([]byte) error, window, maxTotal int64) (*rclzReader, error) {
	rc := newRCDecoder(in, bufSize)
	props, err := rc.readByte()
	if err != nil {
		return nil, err
	}
	if props >= rcProps {
		return nil, fmt.Errorf("%w: range coder properties %#x", ErrCorrupt, props)
	}
	total, err := readUvarint(&rc)
	if err != nil {
		return nil, err
	}
	if total > uint64(maxTotal) {
		return nil, fmt.Errorf("%w: range-coded stream of %d bytes, limit %d", ErrCorrupt, total, maxTotal)
	}
	z := &rclzReader{rc: rc, total: int64(total), hist: int64(dictLen)}
	z.m.init(props)
	z.win = make([]byte, dictLen+int(min(int64(total), window)))
	if dictLen > 0 {
		if err := fill(z.win[:dictLen]); err != nil {
			return nil, err
		}
	}
	z.wpos = dictLen % max(len(z.win), 1)
	return z, nil
}

// nextChunk ends the current chunk and starts the next one. A range-coded
// chunk must end where its coder flushed: with the code at zero.
func (z *rclzReader) nextChunk() error {
	if z.coded {
		if err := z.rc.overrun(); err != nil {
			return err
		}
		if z.rc.code != 0 {
			return fmt.Errorf("%w: range-coded chunk does not end cleanly", ErrCorrupt)
		}
		z.coded = false
	}
	if z.done == z.total {
		return nil
	}
	z.chunkEnd = z.done + min(rcChunk, z.total-z.done)
	b, err := z.rc.readByte()
	if err != nil {
		return err
	}
	switch b {
	case 0:
		z.coded = true
		return z.rc.init()
	case rcStoredChunk:
		return nil
	}
	return fmt.Errorf("%w: chunk starts with %#x", ErrCorrupt, b)
}

// stored outputs the next bytes of a stored chunk into p.
func (z *rclzReader) stored(p []byte) error {
	if err := z.rc.read(p); err != nil {
		return err
	}
	for len(p) > 0 {
		k := copy(z.win[z.wpos:], p)
		p = p[k:]
		z.wpos += k
		if z.wpos == len(z.win) {
			z.wpos = 0
		}
		z.hist += int64(k)
		z.done += int64(k)
	}
	return nil
}

// rclzEnd checks that a stream read through r has ended where it should:
// the next read reports io.EOF (after the reader has checked the checksum).
func rclzEnd(r io.Reader) error {
	var b [1]byte
	n, err := r.Read(b[:])
	switch {
	case n > 0:
		return fmt.Errorf("%w: the range-coded stream goes on", ErrTrailingData)
	case err == io.EOF:
		return nil
	case err == nil:
		return fmt.Errorf("%w: range-coded stream did not end", ErrCorrupt)
	}
	return err
}

func (z *rclzReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && z.err == nil {
		if z.pending > 0 {
			k := min(z.pending, len(p)-n)
			z.copyMatch(p[n : n+k])
			n += k
			continue
		}
		if z.done == z.chunkEnd {
			if err := z.nextChunk(); err != nil {
				z.err = err
				break
			}
			if z.done == z.total {
				z.crc = crc32.Update(z.crc, crc32c, p[:n])
				z.err = z.finish()
				if n > 0 {
					return n, nil
				}
				return 0, z.err
			}
		}
		if !z.coded {
			k := int(min(z.chunkEnd-z.done, int64(len(p)-n)))
			if err := z.stored(p[n : n+k]); err != nil {
				z.err = err
				break
			}
			n += k
			continue
		}
		lit, err := z.symbol()
		if err != nil {
			z.err = err
			break
		}
		if z.pending == 0 {
			p[n] = lit
			n++
		}
	}
	z.crc = crc32.Update(z.crc, crc32c, p[:n])
	if n > 0 {
		return n, nil
	}
	return 0, z.err
}

// back returns the window index of the byte d bytes before the next one.
func (z *rclzReader) back(d int) int {
	i := z.wpos - d
	if i < 0 {
		i += len(z.win)
	}
	return i
}

func (z *rclzReader) put(b byte) {
	z.win[z.wpos] = b
	z.wpos++
	if z.wpos == len(z.win) {
		z.wpos = 0
	}
	z.hist++
	z.done++
}

// copyMatch outputs len(p) bytes of the current match: in whole slices
// when neither side wraps around the window and they do not overlap.
func (z *rclzReader) copyMatch(p []byte) {
	k := len(p)
	src, dst := z.back(int(z.reps[0])+1), z.wpos
	if src+k <= len(z.win) && dst+k <= len(z.win) && (src+k <= dst || dst+k <= src) {
		copy(z.win[dst:dst+k], z.win[src:src+k])
		copy(p, z.win[dst:dst+k])
		z.wpos += k
		if z.wpos == len(z.win) {
			z.wpos = 0
		}
		z.hist += int64(k)
		z.done += int64(k)
	} else {
		for i := range p {
			b := z.win[src]
			p[i] = b
			z.put(b)
			if src++; src == len(z.win) {
				src = 0
			}
		}
	}
	z.pending -= k
}

// symbol decodes the next literal (returned, with pending 0) or match
// (pending set to its length).
func (z *rclzReader) symbol() (byte, error) {
	m, rc := &z.m, &z.rc
	ps := int(z.done) & (1<<m.pb - 1)
	rc.fill()
	if rc.bit(&m.isMatch[z.state][ps]) == 0 {
		var prev byte
		if z.hist > 0 {
			prev = z.win[z.back(1)]
		}
		probs := m.lit[int(prev>>(8-m.lc))*0x300:]
		var match uint32
		if z.state >= rcLitStates {
			match = uint32(z.win[z.back(int(z.reps[0])+1)])
		}
		b := rc.literal(probs, match, z.state >= rcLitStates)
		z.put(b)
		z.state = stateAfterLit(z.state)
		return b, rc.overrun()
	}
	var length int
	if rc.bit(&m.isRep[z.state]) == 0 {
		length = z.decodeLen(&m.matchLn, ps)
		d := z.decodeDist(length)
		z.reps[3], z.reps[2], z.reps[1], z.reps[0] = z.reps[2], z.reps[1], z.reps[0], d
		z.state = stateAfterMatch(z.state)
	} else {
		if rc.bit(&m.isRepG0[z.state]) == 0 {
			if rc.bit(&m.isRep0Long[z.state][ps]) == 0 {
				z.state = stateAfterShortRep(z.state)
				length = 1
			}
		} else {
			var d uint32
			if rc.bit(&m.isRepG1[z.state]) == 0 {
				d = z.reps[1]
			} else {
				if rc.bit(&m.isRepG2[z.state]) == 0 {
					d = z.reps[2]
				} else {
					d = z.reps[3]
					z.reps[3] = z.reps[2]
				}
				z.reps[2] = z.reps[1]
			}
			z.reps[1] = z.reps[0]
			z.reps[0] = d
		}
		if length == 0 {
			length = z.decodeLen(&m.repLn, ps)
			z.state = stateAfterRep(z.state)
		}
	}
	if err := rc.overrun(); err != nil {
		return 0, err
	}
	// A distance reaches back into the history the decoder holds, and a
	// match ends where the stream does.
	if d := int64(z.reps[0]) + 1; d > z.hist || d > int64(len(z.win)) {
		return 0, fmt.Errorf("%w: match distance %d with %d bytes of history", ErrCorrupt, d, min(z.hist, int64(len(z.win))))
	}
	if int64(length) > z.chunkEnd-z.done {
		return 0, fmt.Errorf("%w: match of %d bytes, %d left of the chunk", ErrCorrupt, length, z.chunkEnd-z.done)
	}
	z.pending = length
	return 0, nil
}

func (z *rclzReader) decodeLen(l *rcLenModel, ps int) int {
	rc := &z.rc
	if rc.bit(&l.choice) == 0 {
		return rcMinMatch + int(rc.tree(l.low[ps][:], 3))
	}
	if rc.bit(&l.choice2) == 0 {
		return rcMinMatch + 8 + int(rc.tree(l.mid[ps][:], 3))
	}
	return rcMinMatch + 16 + int(rc.tree(l.high[:], 8))
}

// decodeDist returns a distance minus one; it may be up to 2^32-1, which
// the caller's check refuses.
func (z *rclzReader) decodeDist(length int) uint32 {
	m, rc := &z.m, &z.rc
	slot := rc.tree(m.slot[lenState(length)][:], 6)
	if slot < rcEndSlot {
		return slot
	}
	bits := int(slot>>1) - 1
	d := (2 | slot&1) << uint(bits)
	if slot < 14 {
		return d + rc.reverseTree(m.special[slot][:1<<bits], bits)
	}
	d += rc.direct(bits-rcAlignBits) << rcAlignBits
	return d + rc.reverseTree(m.align[:], rcAlignBits)
}

// finish checks the end of the stream: the range coder's flush leaves its
// code at zero, and a CRC-32C of the output follows.
func (z *rclzReader) finish() error {
	var sum [4]byte
	for i := range sum {
		b, err := z.rc.readByte()
		if err != nil {
			return err
		}
		sum[i] = b
	}
	if got := binary.LittleEndian.Uint32(sum[:]); got != z.crc {
		return fmt.Errorf("%w: range-coded stream checksum %08x, want %08x", ErrCorrupt, z.crc, got)
	}
	return io.EOF
}

// unused returns how many bytes the reader took from its input beyond the
// stream.
func (z *rclzReader) unused() int { return z.rc.buffered() }
