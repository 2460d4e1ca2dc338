package delta

import (
	"fmt"
	"io"
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
	m := uint32(1)
	for range n {
		b := v & 1
		v >>= 1
		e.bit(&p[m], b)
		m = m<<1 | b
	}
}

// rcDecoder reads range-coded bits from a reader. It reads ahead nothing
// beyond what the encoder wrote for the bits decoded so far plus the four
// bytes the encoder's finish flushed, so the bytes after a range-coded
// stream are left in the reader.
type rcDecoder struct {
	r    io.ByteReader
	rng  uint32
	code uint32
	err  error // sticky: the first read error
}

// init starts decoding: the first byte a finished encoder writes is always
// zero, so another is corruption.
func (d *rcDecoder) init(r io.ByteReader) error {
	d.r, d.rng, d.code, d.err = r, 0xFFFFFFFF, 0, nil
	for i := range 5 {
		b, err := r.ReadByte()
		if err != nil {
			return streamErr(err)
		}
		if i == 0 && b != 0 {
			return fmt.Errorf("%w: range coder starts with %#x", ErrCorrupt, b)
		}
		d.code = d.code<<8 | uint32(b)
	}
	if d.code == d.rng {
		return fmt.Errorf("%w: range coder start out of range", ErrCorrupt)
	}
	return nil
}

func (d *rcDecoder) next() {
	d.rng <<= 8
	b, err := d.r.ReadByte()
	if err != nil && d.err == nil {
		d.err = streamErr(err)
	}
	d.code = d.code<<8 | uint32(b)
}

func (d *rcDecoder) bit(p *prob) (b uint32) {
	bound := (d.rng >> probBits) * uint32(*p)
	if d.code < bound {
		d.rng = bound
		*p += (probOne - *p) >> probShift
	} else {
		d.code -= bound
		d.rng -= bound
		*p -= *p >> probShift
		b = 1
	}
	if d.rng < rcTop {
		d.next()
	}
	return b
}

func (d *rcDecoder) direct(n int) uint32 {
	var v uint32
	for range n {
		d.rng >>= 1
		var b uint32
		if d.code >= d.rng {
			d.code -= d.rng
			b = 1
		}
		v = v<<1 | b
		if d.rng < rcTop {
			d.next()
		}
	}
	return v
}

func (d *rcDecoder) tree(p []prob, n int) uint32 {
	m := uint32(1)
	for range n {
		m = m<<1 | d.bit(&p[m])
	}
	return m - 1<<uint(n)
}

func (d *rcDecoder) reverseTree(p []prob, n int) uint32 {
	m, v := uint32(1), uint32(0)
	for i := range n {
		b := d.bit(&p[m])
		m = m<<1 | b
		v |= b << uint(i)
	}
	return v
}
