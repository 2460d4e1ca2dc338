package delta

import (
	"fmt"
	"io"
	"math/bits"
)

// A binary adaptive range coder, the entropy stage of the range-coded
// layouts (see rclz.go). Each binary decision is coded with a probability
// of 11 bits that moves a 32nd of the way towards what was seen after each
// use; the coder narrows a 32-bit range by that probability and emits a
// byte whenever the range's top byte is settled, propagating a carry into
// bytes already emitted (one byte is held back, plus any run of FF bytes a
// carry could still change). Direct bits are coded with probability one
// half and no model.

const (
	probBits  = 11
	probOne   = 1 << probBits
	probInit  = probOne / 2
	probShift = 5
	rcTop     = 1 << 24
)

// prob is the probability, out of probOne, that the next bit is 0.
type prob uint16

// rcEncoder writes range-coded bits to a byte slice.
type rcEncoder struct {
	out       []byte
	low       uint64
	rng       uint32
	cache     byte
	cacheSize int64
}

func newRCEncoder(out []byte) *rcEncoder {
	return &rcEncoder{out: out, rng: 0xFFFFFFFF, cacheSize: 1}
}

// shiftLow moves the settled top byte of low out, resolving a pending
// carry into the held-back bytes.
func (e *rcEncoder) shiftLow() {
	if uint32(e.low) < 0xFF000000 || e.low>>32 != 0 {
		carry := byte(e.low >> 32)
		b := e.cache
		for {
			e.out = append(e.out, b+carry)
			b = 0xFF
			e.cacheSize--
			if e.cacheSize == 0 {
				break
			}
		}
		e.cache = byte(e.low >> 24)
	}
	e.cacheSize++
	e.low = (e.low & 0x00FFFFFF) << 8
}

func (e *rcEncoder) bit(p *prob, b uint32) {
	bound := (e.rng >> probBits) * uint32(*p)
	if b == 0 {
		e.rng = bound
		*p += (probOne - *p) >> probShift
	} else {
		e.low += uint64(bound)
		e.rng -= bound
		*p -= *p >> probShift
	}
	for e.rng < rcTop {
		e.rng <<= 8
		e.shiftLow()
	}
}

// direct codes the low n bits of v, most significant first, each with
// probability one half.
func (e *rcEncoder) direct(v uint32, n int) {
	for i := n - 1; i >= 0; i-- {
		e.rng >>= 1
		if v>>uint(i)&1 != 0 {
			e.low += uint64(e.rng)
		}
		for e.rng < rcTop {
			e.rng <<= 8
			e.shiftLow()
		}
	}
}

// finish flushes low: after it the decoder has read exactly the bytes
// written.
func (e *rcEncoder) finish() []byte {
	for range 5 {
		e.shiftLow()
	}
	return e.out
}

// tree codes the n-bit symbol v with the bit tree p (1<<n probabilities),
// most significant bit first.
func (e *rcEncoder) tree(p []prob, v uint32, n int) {
	m := uint32(1)
	for i := n - 1; i >= 0; i-- {
		b := v >> uint(i) & 1
		e.bit(&p[m], b)
		m = m<<1 | b
	}
}

// reverseTree codes v with the bit tree p, least significant bit first.
func (e *rcEncoder) reverseTree(p []prob, v uint32, n int) {
	e.tree(p, reverseBits(v, n), n)
}

// reverseBits returns the low n bits of v in reverse order: a symbol coded
// least significant bit first walks the same tree as its reverse coded
// most significant bit first.
func reverseBits(v uint32, n int) uint32 { return bits.Reverse32(v) >> (32 - uint(n)) }

// rcDecoder reads range-coded bits from a reader through its own buffer.
// Before each symbol the caller makes sure (fill) that the buffer holds
// rcSymbolBytes bytes, padding with zeros at the end of the input, so the
// bit functions index it without checks of their own; a decoder that used
// padding has run past the end of its input (truncated). A symbol reads at
// most one byte per bit: after a bit the range is at least 2^13 * 31.
type rcDecoder struct {
	src  io.Reader
	buf  []byte // buf[pos:end] are unread input bytes, then padding
	pos  int
	end  int
	eof  bool // src has no more bytes
	rng  uint32
	code uint32
	err  error // sticky: the first read error
}

// rcSymbolBytes is more than any symbol reads: 1 + 1 + 1 + 1 + 1 + 10 bits
// of a length, and 6 + 26 + 4 of a distance.
const rcSymbolBytes = 64

func newRCDecoder(src io.Reader, size int) rcDecoder {
	return rcDecoder{src: src, buf: make([]byte, size+rcSymbolBytes)}
}

// fill makes at least rcSymbolBytes bytes readable, padding with zeros
// past the end of the input.
func (d *rcDecoder) fill() {
	if d.end-d.pos < rcSymbolBytes && !d.eof {
		d.refill()
	}
}

func (d *rcDecoder) refill() {
	n := copy(d.buf, d.buf[d.pos:d.end])
	d.pos, d.end = 0, n
	for d.end < len(d.buf)-rcSymbolBytes && d.err == nil {
		k, err := d.src.Read(d.buf[d.end : len(d.buf)-rcSymbolBytes])
		d.end += k
		if err == io.EOF {
			d.eof = true
			break
		}
		if err != nil {
			d.err = err
		}
		if k == 0 && err == nil {
			break
		}
	}
	clear(d.buf[d.end:])
}

// overrun reports a decoder that read padding: its input was too short.
func (d *rcDecoder) overrun() error {
	if d.pos > d.end || d.err != nil {
		return d.overrunErr()
	}
	return nil
}

func (d *rcDecoder) overrunErr() error {
	if d.err != nil {
		return streamErr(d.err)
	}
	return fmt.Errorf("%w: range-coded stream cut short", ErrTruncated)
}

// readByte reads one byte outside the coded bits (a header or trailer).
func (d *rcDecoder) readByte() (byte, error) {
	d.fill()
	if err := d.overrun(); err != nil {
		return 0, err
	}
	if d.pos == d.end {
		return 0, fmt.Errorf("%w: range-coded stream cut short", ErrTruncated)
	}
	b := d.buf[d.pos]
	d.pos++
	return b, nil
}

// ReadByte makes d an io.ByteReader for the header's uvarint.
func (d *rcDecoder) ReadByte() (byte, error) { return d.readByte() }

// buffered returns the input bytes read from src and not used.
func (d *rcDecoder) buffered() int { return max(d.end-d.pos, 0) }

// init starts decoding a chunk whose first byte, always zero, has been
// read: the code is the next four bytes.
func (d *rcDecoder) init() error {
	d.rng, d.code = 0xFFFFFFFF, 0
	for range 4 {
		b, err := d.readByte()
		if err != nil {
			return err
		}
		d.code = d.code<<8 | uint32(b)
	}
	if d.code == d.rng {
		return fmt.Errorf("%w: range coder start out of range", ErrCorrupt)
	}
	return nil
}

// read reads len(p) bytes outside the coded bits (a stored chunk).
func (d *rcDecoder) read(p []byte) error {
	for len(p) > 0 {
		if d.pos >= d.end {
			d.fill()
			if err := d.overrun(); err != nil {
				return err
			}
			if d.pos >= d.end {
				return fmt.Errorf("%w: range-coded stream cut short", ErrTruncated)
			}
		}
		k := copy(p, d.buf[d.pos:d.end])
		d.pos += k
		p = p[k:]
	}
	return nil
}

func (d *rcDecoder) bit(p *prob) uint32 {
	v := uint32(*p)
	bound := (d.rng >> probBits) * v
	var b uint32
	if d.code < bound {
		d.rng = bound
		*p = prob(v + (probOne-v)>>probShift)
	} else {
		d.code -= bound
		d.rng -= bound
		*p = prob(v - v>>probShift)
		b = 1
	}
	if d.rng < rcTop {
		d.rng <<= 8
		d.code = d.code<<8 | uint32(d.buf[d.pos])
		d.pos++
	}
	return b
}

func (d *rcDecoder) direct(n int) uint32 {
	rng, code, pos, buf := d.rng, d.code, d.pos, d.buf
	var v uint32
	for range n {
		rng >>= 1
		mask := uint32((int64(code) - int64(rng)) >> 63) // all ones for a 0
		code -= rng &^ mask
		v = v<<1 | ^mask&1
		if rng < rcTop {
			rng <<= 8
			code = code<<8 | uint32(buf[pos])
			pos++
		}
	}
	d.rng, d.code, d.pos = rng, code, pos
	return v
}

// tree decodes an n-bit symbol with the bit tree p, keeping the coder's
// state in locals: this loop and the literal's are where decoding spends
// its time.
func (d *rcDecoder) tree(p []prob, n int) uint32 {
	rng, code, pos, buf := d.rng, d.code, d.pos, d.buf
	m := uint32(1)
	for range n {
		v := uint32(p[m])
		bound := (rng >> probBits) * v
		if code < bound {
			rng = bound
			p[m] = prob(v + (probOne-v)>>probShift)
			m <<= 1
		} else {
			code -= bound
			rng -= bound
			p[m] = prob(v - v>>probShift)
			m = m<<1 | 1
		}
		if rng < rcTop {
			rng <<= 8
			code = code<<8 | uint32(buf[pos])
			pos++
		}
	}
	d.rng, d.code, d.pos = rng, code, pos
	return m - 1<<uint(n)
}

// reverseTree decodes an n-bit symbol coded least significant bit first.
func (d *rcDecoder) reverseTree(p []prob, n int) uint32 {
	return reverseBits(d.tree(p, n), n)
}

// literal decodes a byte with the 0x300 probabilities p: against the
// match byte while the bits agree with it (if matched), then plainly.
func (d *rcDecoder) literal(p []prob, match uint32, matched bool) byte {
	p = p[:0x300]
	rng, code, pos, buf := d.rng, d.code, d.pos, d.buf
	sym := uint32(1)
	if matched {
		for sym < 0x100 {
			mb := match >> 7 & 1
			match <<= 1
			i := 0x100 + mb<<8 + sym
			v := uint32(p[i])
			bound := (rng >> probBits) * v
			// Branch-free: the bits of a literal are hard to predict.
			mask := uint32((int64(code) - int64(bound)) >> 63) // all ones for a 0
			rng = bound&mask | (rng-bound)&^mask
			code -= bound &^ mask
			p[i] = prob(v + ((probOne-v)>>probShift)&mask - (v>>probShift)&^mask)
			b := ^mask & 1
			if rng < rcTop {
				rng <<= 8
				code = code<<8 | uint32(buf[pos])
				pos++
			}
			sym = sym<<1 | b
			if b != mb {
				break
			}
		}
	}
	for sym < 0x100 {
		v := uint32(p[sym])
		bound := (rng >> probBits) * v
		mask := uint32((int64(code) - int64(bound)) >> 63)
		rng = bound&mask | (rng-bound)&^mask
		code -= bound &^ mask
		p[sym] = prob(v + ((probOne-v)>>probShift)&mask - (v>>probShift)&^mask)
		if rng < rcTop {
			rng <<= 8
			code = code<<8 | uint32(buf[pos])
			pos++
		}
		sym = sym<<1 | ^mask&1
	}
	d.rng, d.code, d.pos = rng, code, pos
	return byte(sym)
}
