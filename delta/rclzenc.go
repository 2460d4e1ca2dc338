package delta

import (
	"encoding/binary"
	"hash/crc32"
	"math"
	"math/bits"
)

// The encoder of the range-coded LZ stream. Its memory is sized to its
// input: a hash-chain link of 4 bytes per position of the dictionary and
// the data, and a head table of half a byte to a byte per position (the
// LZ layout adds its filtered copy of the images: about 6 bytes per byte). Matches are
// found by walking the chains; the parse is lazy, with choices between a
// literal, a repeated distance and a new match weighed by what the model
// would currently pay for them.

// rcPrices[p>>4] is the cost, in 1/16 bit, of a bit whose probability is
// p/probOne.
var rcPrices = func() (t [probOne >> 4]uint32) {
	for i := range t {
		p := (float64(i) + 0.5) * 16 / probOne
		t[i] = uint32(math.Round(-math.Log2(p) * 16))
	}
	return t
}()

func bitPrice(p prob, b uint32) uint32 {
	if b == 0 {
		return rcPrices[p>>4]
	}
	return rcPrices[(probOne-p)>>4]
}

func treePrice(p []prob, v uint32, n int) uint32 {
	var s uint32
	m := uint32(1)
	for i := n - 1; i >= 0; i-- {
		b := v >> uint(i) & 1
		s += bitPrice(p[m], b)
		m = m<<1 | b
	}
	return s
}

func reverseTreePrice(p []prob, v uint32, n int) uint32 {
	return treePrice(p, reverseBits(v, n), n)
}

// rclzParams are the encoder's effort: how many chain links it follows per
// position and the match length at which it stops looking for a longer one.
type rclzParams struct {
	depth, nice int
	props       byte // lc + 5*pb
}

// rclzDefault suits images: literals in the context of the previous
// byte's top three bits, positions modulo 4 (instruction alignment).
// rclzSegments suits the bsdiff layout's segments, whose bytes are varints,
// literal diff bytes and extra data side by side: one context bit and no
// position bits code them about 0.8% smaller on the benchmark pairs.
var (
	rclzDefault  = rclzParams{depth: 96, nice: 128, props: 3 + 5*2}
	rclzSegments = rclzParams{depth: 96, nice: 128, props: 1}
)

type rclzEncoder struct {
	m       rcModel
	rc      *rcEncoder
	buf     []byte // the dictionary, then the data
	start   int    // the first position coded
	maxDist int
	head    []int32
	prev    []int32
	shift   uint
	next    int // the next position to enter into the chains
	end     int // the end of the chunk being coded: no match crosses it
	p       rclzParams
	state   int
	reps    [4]uint32
}

// encodeRCLZ appends to dst the range-coded LZ stream of buf[start:], with
// buf[:start] as the dictionary. Matches reach back at most start plus the
// smaller of window and len(buf)-start bytes, as the decoder's window does.
// Each chunk of rcChunk bytes is range-coded, or stored when coding would
// not make it smaller (compressed or encrypted content, which adaptive
// coding would grow by a percent or two).
func encodeRCLZ(dst, buf []byte, start int, window int, p rclzParams) []byte {
	n := len(buf) - start
	dst = append(dst, p.props)
	dst = binary.AppendUvarint(dst, uint64(n))
	e := &rclzEncoder{buf: buf, start: start, maxDist: start + min(n, window), p: p}
	e.m.init(p.props)
	hb := uint(min(max(bits.Len(uint(len(buf)))-3, 10), 22))
	e.shift = 32 - hb
	e.head = make([]int32, 1<<hb)
	for i := range e.head {
		e.head[i] = -1
	}
	e.prev = make([]int32, len(buf))
	e.insertTo(start)
	var snap rclzSnapshot
	var coded []byte
	for cs := start; cs < len(buf); cs += rcChunk {
		ce := min(cs+rcChunk, len(buf))
		snap.save(e)
		e.rc = newRCEncoder(coded[:0])
		e.end = ce
		e.parse(cs)
		coded = e.rc.finish()
		if len(coded) <= ce-cs {
			dst = append(dst, coded...)
		} else {
			// The decoder leaves model, state and distances as they were
			// across a stored chunk.
			snap.restore(e)
			dst = append(dst, rcStoredChunk)
			dst = append(dst, buf[cs:ce]...)
		}
	}
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(buf[start:], crc32c))
}

// rclzSnapshot is what the encoder restores when it stores a chunk.
type rclzSnapshot struct {
	m     rcModel
	lit   []prob
	state int
	reps  [4]uint32
}

func (s *rclzSnapshot) save(e *rclzEncoder) {
	s.lit = append(s.lit[:0], e.m.lit...)
	s.m, s.state, s.reps = e.m, e.state, e.reps
}

func (s *rclzSnapshot) restore(e *rclzEncoder) {
	lit := e.m.lit
	copy(lit, s.lit)
	e.m, e.state, e.reps = s.m, s.state, s.reps
	e.m.lit = lit
}

func (e *rclzEncoder) hash(p int) uint32 {
	return binary.LittleEndian.Uint32(e.buf[p:]) * 2654435761 >> e.shift
}

// insertTo enters the positions up to end (exclusive) into the chains.
func (e *rclzEncoder) insertTo(end int) {
	for ; e.next < end; e.next++ {
		if e.next+4 > len(e.buf) {
			continue
		}
		h := e.hash(e.next)
		e.prev[e.next] = e.head[h]
		e.head[h] = int32(e.next)
	}
}

// find returns the longest match at pos found in the chains (length 0 if
// none of at least 4 bytes), and enters pos into them.
func (e *rclzEncoder) find(pos int) (length, dist int) {
	e.insertTo(pos)
	limit := min(rcMaxMatch, e.end-pos)
	if limit >= 4 {
		cand := e.head[e.hash(pos)]
		cur := e.buf[pos : pos+limit]
		for range e.p.depth {
			if cand < 0 || pos-int(cand) > e.maxDist {
				break
			}
			c := int(cand)
			if e.buf[c+length] == cur[length] {
				if l := commonPrefix(e.buf[c:], cur); l > length {
					length, dist = l, pos-c
					if l >= e.p.nice || l == limit {
						break
					}
				}
			}
			cand = e.prev[c]
		}
	}
	e.insertTo(pos + 1)
	if length < 4 {
		return 0, 0
	}
	return length, dist
}

// repLen returns the length of the match at pos at distance reps[k]+1.
func (e *rclzEncoder) repLen(pos, k int) int {
	d := int(e.reps[k]) + 1
	if d > pos || d > e.maxDist {
		return 0
	}
	limit := min(rcMaxMatch, e.end-pos)
	return commonPrefix(e.buf[pos-d:pos-d+limit], e.buf[pos:pos+limit])
}

// changePair reports whether a match at distance big is worse than one a
// byte shorter at distance small.
func changePair(small, big int) bool { return big>>7 > small }

// parse codes the chunk from pos to e.end.
func (e *rclzEncoder) parse(pos int) {
	end := e.end
	cachedPos, cachedLen, cachedDist := -1, 0, 0
	lits := 0 // literals in a row
	for pos < end {
		// In a long run of literals (content that does not compress)
		// look for matches at fewer positions: every 4th after 256
		// literals, every 16th after 1024, as fast LZ coders do. Each
		// search there costs cache misses and almost never finds one
		// (2 MB of random bytes against 2 MB: 5.2 s -> 2.2 s; C bsdiff
		// takes 3.9 s).
		search := lits < 256 || (lits < 1024 && pos&3 == 0) || pos&15 == 0
		repLen, repIdx := 0, 0
		for k := range 4 {
			if k > 0 && !search {
				break
			}
			if l := e.repLen(pos, k); l > repLen {
				repLen, repIdx = l, k
			}
		}
		var ml, md int
		switch {
		case cachedPos == pos:
			ml, md = cachedLen, cachedDist
		case search:
			ml, md = e.find(pos)
		}
		lits++
		if repLen >= e.p.nice || (repLen >= rcMinMatch &&
			(repLen+1 >= ml || (repLen+2 >= ml && md >= 512) || (repLen+3 >= ml && md >= 32768))) {
			e.encodeRep(pos, repIdx, repLen)
			pos += repLen
			lits = 0
			continue
		}
		if ml > 0 && ml < e.p.nice {
			// Worth it against plain literals?
			if ml <= 6 && e.matchPrice(pos, md, ml) >= e.literalsPrice(pos, ml) {
				ml = 0
			}
		}
		if ml > 0 && ml < e.p.nice && pos+1 < end {
			// Lazy: a better match one byte on makes this byte a literal.
			nl, nd := e.find(pos + 1)
			cachedPos, cachedLen, cachedDist = pos+1, nl, nd
			if nl >= ml && nd < md>>7 || nl == ml+1 && !changePair(md, nd) || nl > ml+1 ||
				nl+1 >= ml && ml >= 3 && changePair(nd, md) {
				ml = 0
			} else if r := e.repLenAt(pos+1, 0); r >= ml {
				ml = 0
			}
		}
		if ml > 0 {
			e.encodeMatch(pos, md, ml)
			pos += ml
			lits = 0
			continue
		}
		if e.reps[0] < uint32(pos) && int(e.reps[0]) < e.maxDist &&
			e.buf[pos] == e.buf[pos-int(e.reps[0])-1] &&
			e.shortRepPrice(pos) < e.literalPrice(pos, e.state) {
			e.encodeShortRep(pos)
		} else {
			e.encodeLiteral(pos)
		}
		pos++
	}
}

// repLenAt is repLen for a position other than the next one to code.
func (e *rclzEncoder) repLenAt(pos, k int) int {
	if pos >= e.end {
		return 0
	}
	return e.repLen(pos, k)
}

func (e *rclzEncoder) posState(pos int) int { return (pos - e.start) & (1<<e.m.pb - 1) }

func (e *rclzEncoder) litProbs(pos int) []prob {
	var prev byte
	if pos > 0 {
		prev = e.buf[pos-1]
	}
	return e.m.lit[int(prev>>(8-e.m.lc))*0x300:][:0x300]
}

func (e *rclzEncoder) encodeLiteral(pos int) {
	rc, m := e.rc, &e.m
	rc.bit(&m.isMatch[e.state][e.posState(pos)], 0)
	probs := e.litProbs(pos)
	v := uint32(e.buf[pos])
	sym := uint32(1)
	matched := e.state >= rcLitStates
	match := uint32(0)
	if matched {
		match = uint32(e.buf[pos-int(e.reps[0])-1])
	}
	for i := 7; i >= 0; i-- {
		b := v >> uint(i) & 1
		if matched {
			mb := match >> uint(i) & 1
			rc.bit(&probs[0x100+mb<<8+sym], b)
			matched = b == mb
		} else {
			rc.bit(&probs[sym], b)
		}
		sym = sym<<1 | b
	}
	e.state = stateAfterLit(e.state)
}

func (e *rclzEncoder) literalPrice(pos, state int) uint32 {
	m := &e.m
	s := bitPrice(m.isMatch[state][e.posState(pos)], 0)
	probs := e.litProbs(pos)
	v := uint32(e.buf[pos])
	sym := uint32(1)
	matched := state >= rcLitStates
	match := uint32(0)
	if matched {
		match = uint32(e.buf[pos-int(e.reps[0])-1])
	}
	for i := 7; i >= 0; i-- {
		b := v >> uint(i) & 1
		if matched {
			mb := match >> uint(i) & 1
			s += bitPrice(probs[0x100+mb<<8+sym], b)
			matched = b == mb
		} else {
			s += bitPrice(probs[sym], b)
		}
		sym = sym<<1 | b
	}
	return s
}

// literalsPrice estimates n literals from pos on in the current state.
func (e *rclzEncoder) literalsPrice(pos, n int) uint32 {
	var s uint32
	state := e.state
	for i := range n {
		s += e.literalPrice(pos+i, state)
		state = stateAfterLit(state)
	}
	return s
}

func (e *rclzEncoder) encodeLen(l *rcLenModel, length, ps int) {
	rc := e.rc
	v := uint32(length - rcMinMatch)
	switch {
	case v < 8:
		rc.bit(&l.choice, 0)
		rc.tree(l.low[ps][:], v, 3)
	case v < 16:
		rc.bit(&l.choice, 1)
		rc.bit(&l.choice2, 0)
		rc.tree(l.mid[ps][:], v-8, 3)
	default:
		rc.bit(&l.choice, 1)
		rc.bit(&l.choice2, 1)
		rc.tree(l.high[:], v-16, 8)
	}
}

func lenPrice(l *rcLenModel, length, ps int) uint32 {
	v := uint32(length - rcMinMatch)
	switch {
	case v < 8:
		return bitPrice(l.choice, 0) + treePrice(l.low[ps][:], v, 3)
	case v < 16:
		return bitPrice(l.choice, 1) + bitPrice(l.choice2, 0) + treePrice(l.mid[ps][:], v-8, 3)
	}
	return bitPrice(l.choice, 1) + bitPrice(l.choice2, 1) + treePrice(l.high[:], v-16, 8)
}

func (e *rclzEncoder) encodeMatch(pos, dist, length int) {
	rc, m := e.rc, &e.m
	ps := e.posState(pos)
	rc.bit(&m.isMatch[e.state][ps], 1)
	rc.bit(&m.isRep[e.state], 0)
	e.encodeLen(&m.matchLn, length, ps)
	d := uint32(dist - 1)
	slot := distSlot(d)
	rc.tree(m.slot[lenState(length)][:], slot, 6)
	if slot >= rcEndSlot {
		nb := int(slot>>1) - 1
		base := (2 | slot&1) << uint(nb)
		r := d - base
		if slot < 14 {
			rc.reverseTree(m.special[slot][:1<<nb], r, nb)
		} else {
			rc.direct(r>>rcAlignBits, nb-rcAlignBits)
			rc.reverseTree(m.align[:], r&(1<<rcAlignBits-1), rcAlignBits)
		}
	}
	e.reps[3], e.reps[2], e.reps[1], e.reps[0] = e.reps[2], e.reps[1], e.reps[0], d
	e.state = stateAfterMatch(e.state)
}

func (e *rclzEncoder) matchPrice(pos, dist, length int) uint32 {
	m := &e.m
	ps := e.posState(pos)
	s := bitPrice(m.isMatch[e.state][ps], 1) + bitPrice(m.isRep[e.state], 0) + lenPrice(&m.matchLn, length, ps)
	d := uint32(dist - 1)
	slot := distSlot(d)
	s += treePrice(m.slot[lenState(length)][:], slot, 6)
	if slot >= rcEndSlot {
		nb := int(slot>>1) - 1
		r := d - (2|slot&1)<<uint(nb)
		if slot < 14 {
			s += reverseTreePrice(m.special[slot][:1<<nb], r, nb)
		} else {
			s += uint32(nb-rcAlignBits)*16 + reverseTreePrice(m.align[:], r&(1<<rcAlignBits-1), rcAlignBits)
		}
	}
	return s
}

func (e *rclzEncoder) encodeRep(pos, k, length int) {
	rc, m := e.rc, &e.m
	ps := e.posState(pos)
	rc.bit(&m.isMatch[e.state][ps], 1)
	rc.bit(&m.isRep[e.state], 1)
	if k == 0 {
		rc.bit(&m.isRepG0[e.state], 0)
		rc.bit(&m.isRep0Long[e.state][ps], 1)
	} else {
		rc.bit(&m.isRepG0[e.state], 1)
		d := e.reps[k]
		if k == 1 {
			rc.bit(&m.isRepG1[e.state], 0)
		} else {
			rc.bit(&m.isRepG1[e.state], 1)
			rc.bit(&m.isRepG2[e.state], uint32(k-2))
			if k == 3 {
				e.reps[3] = e.reps[2]
			}
			e.reps[2] = e.reps[1]
		}
		e.reps[1] = e.reps[0]
		e.reps[0] = d
	}
	e.encodeLen(&m.repLn, length, ps)
	e.state = stateAfterRep(e.state)
}

func (e *rclzEncoder) encodeShortRep(pos int) {
	rc, m := e.rc, &e.m
	ps := e.posState(pos)
	rc.bit(&m.isMatch[e.state][ps], 1)
	rc.bit(&m.isRep[e.state], 1)
	rc.bit(&m.isRepG0[e.state], 0)
	rc.bit(&m.isRep0Long[e.state][ps], 0)
	e.state = stateAfterShortRep(e.state)
}

func (e *rclzEncoder) shortRepPrice(pos int) uint32 {
	m := &e.m
	ps := e.posState(pos)
	return bitPrice(m.isMatch[e.state][ps], 1) + bitPrice(m.isRep[e.state], 1) +
		bitPrice(m.isRepG0[e.state], 0) + bitPrice(m.isRep0Long[e.state][ps], 0)
}
