// Package bzip2 writes bzip2 streams, the compression inside bsdiff 4.3's
// BSDIFF40 patch format. Package delta uses it to write the three streams
// of a BSDIFF40 patch; it is a codec and knows nothing about patches.
//
// Entry points: NewWriter returns a Writer; Write the data, then Close to
// end the stream. Output is deterministic: the same input gives the same
// bytes however it is split across Write calls.
//
// It does not read bzip2 (use compress/bzip2) and offers no levels: it
// always writes what bzip2 -9 writes in form ("BZh9", blocks of at most
// 900k bytes), with libbz2's table selection, so sizes come within about
// a tenth of a percent of bzip2 -9's. It does not randomise blocks, which bzip2 1.0
// decoders do not need.
//
// Why our own: github.com/dsnet/compress writes valid streams, but assigns
// its Huffman tables to symbol groups round-robin instead of clustering
// them, which costs 10-40% on the small, skewed control and extra streams
// of a patch. This writer does what libbz2 does: initial tables from
// equal-frequency ranges of the alphabet, then four rounds of choosing the
// cheapest table per group of 50 symbols and rebuilding the tables from
// those choices. The Burrows-Wheeler transform comes from the suffix array
// of the doubled block (package sais).
//
// Stream layout (the bzip2 1.0 format, bit-packed MSB first): "BZh9"; per
// block the magic 0x314159265359, the CRC of the block's input, a zero
// "randomised" bit, the 24-bit BWT origin, the 16+16n-bit map of bytes
// used, the number of tables and of selectors, the selectors
// (move-to-front, unary), each table's code lengths (delta coded), and the
// Huffman-coded MTF/RLE2 symbols; after the last block the magic
// 0x177245385090 and the combined CRC, padded to a byte.
package bzip2

import (
	"io"
	"slices"

	"github.com/otaseal/otaseal/internal/sais"
)

const (
	maxBlock   = 100000*9 - 19 // bytes of RLE1 output per block at level 9, as libbz2
	groupSize  = 50            // symbols per table selector
	maxCodeLen = 17            // libbz2's limit when encoding
	rounds     = 4             // table refinement rounds, as libbz2
)

// crcTable is the MSB-first CRC-32 table of polynomial 0x04c11db7 that
// bzip2 uses (hash/crc32 only offers the bit-reflected form).
var crcTable = func() (t [256]uint32) {
	for i := range t {
		c := uint32(i) << 24
		for range 8 {
			if c&0x80000000 != 0 {
				c = c<<1 ^ 0x04c11db7
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

// Writer compresses one bzip2 stream to the io.Writer given to NewWriter.
// Close must be called; the stream is not valid before. A Writer is not
// safe for concurrent use.
//
// Blocks are independent apart from their order in the bit stream, so they
// are encoded on up to parallel goroutines and spliced in order.
type Writer struct {
	bits     bitWriter
	block    []byte // RLE1 output of the current block
	runByte  byte
	runLen   int
	blockCRC uint32
	combined uint32
	started  bool

	encoders chan *encoder   // idle encoders; at most parallel exist
	pending  []*pendingBlock // encoding or encoded, in stream order
}

// parallel bounds the blocks of one stream encoded at once, and so the
// memory: each encoder holds about 12 bytes per block byte.
const parallel = 2

// pendingBlock is one block on its way through an encoder.
type pendingBlock struct {
	bits bitWriter // the block's bits, not yet byte-aligned
	done chan struct{}
}

// encoder holds the buffers of one block encoding, reused across blocks.
type encoder struct {
	block   []byte
	doubled []byte
	sa      []int32
	bwt     []byte
	syms    []uint16
	bits    *bitWriter
}

// NewWriter returns a Writer that writes one stream to w. Output reaches w
// in pieces of about 64 KiB as blocks finish; the first error from w is
// sticky and returned by Write and Close.
func NewWriter(w io.Writer) *Writer {
	z := &Writer{
		bits:     bitWriter{w: w},
		block:    make([]byte, 0, maxBlock),
		blockCRC: ^uint32(0),
		encoders: make(chan *encoder, parallel),
	}
	for range parallel {
		z.encoders <- &encoder{}
	}
	return z
}

// Write compresses p. It buffers up to a block and may return before the
// data is written to the underlying io.Writer.
func (z *Writer) Write(p []byte) (int, error) {
	if z.bits.err != nil {
		return 0, z.bits.err
	}
	for _, b := range p {
		if z.runLen > 0 && (b != z.runByte || z.runLen == 255) {
			z.flushRun()
		}
		z.runByte = b
		z.runLen++
	}
	return len(p), z.bits.err
}

// flushRun appends the pending run to the block in RLE1 form: up to three
// bytes literally, longer runs as four bytes and a count. Runs never span
// blocks.
func (z *Writer) flushRun() {
	if len(z.block)+5 > maxBlock {
		z.endBlock()
	}
	b, n := z.runByte, z.runLen
	for range n {
		z.blockCRC = z.blockCRC<<8 ^ crcTable[byte(z.blockCRC>>24)^b]
	}
	if n < 4 {
		for range n {
			z.block = append(z.block, b)
		}
	} else {
		z.block = append(z.block, b, b, b, b, byte(n-4))
	}
	z.runLen = 0
}

func (z *Writer) header() {
	if !z.started {
		z.started = true
		z.bits.write(uint64('B')<<24|uint64('Z')<<16|uint64('h')<<8|uint64('9'), 32)
	}
}

// Close ends the last block and the stream.
func (z *Writer) Close() error {
	if z.runLen > 0 {
		z.flushRun()
	}
	z.endBlock()
	z.emit(true)
	z.header()
	z.bits.write(0x177245385090, 48)
	z.bits.write(uint64(z.combined), 32)
	z.bits.flush()
	return z.bits.err
}

// endBlock hands the current block to an idle encoder (waiting for one if
// both are busy) and writes out the blocks that are finished, in order.
func (z *Writer) endBlock() {
	if len(z.block) == 0 {
		return
	}
	z.header()
	crc := ^z.blockCRC
	z.combined = (z.combined<<1 | z.combined>>31) ^ crc
	e := <-z.encoders
	e.block = append(e.block[:0], z.block...)
	blk := &pendingBlock{done: make(chan struct{})}
	z.pending = append(z.pending, blk)
	go func() {
		e.bits = &blk.bits
		e.bits.write(0x314159265359, 48)
		e.bits.write(uint64(crc), 32)
		e.bits.write(0, 1)
		origin := e.transform()
		e.bits.write(uint64(origin), 24)
		e.encodeSymbols()
		e.bits = nil
		close(blk.done)
		z.encoders <- e
	}()
	z.block = z.block[:0]
	z.blockCRC = ^uint32(0)
	z.emit(false)
}

// emit splices finished blocks into the stream in order; with wait, it
// waits for all of them.
func (z *Writer) emit(wait bool) {
	for len(z.pending) > 0 {
		blk := z.pending[0]
		if wait {
			<-blk.done
		} else {
			select {
			case <-blk.done:
			default:
				return
			}
		}
		for _, b := range blk.bits.buf {
			z.bits.write(uint64(b), 8)
		}
		z.bits.write(blk.bits.acc, blk.bits.nbits)
		z.pending = z.pending[1:]
	}
}

// transform computes the Burrows-Wheeler transform of the block into
// z.bwt and returns the rank of the unrotated block. Rotations of the block
// sort like the suffixes of the block written twice, restricted to the
// first copy; rotations that are equal give equal output in either order.
func (z *encoder) transform() int {
	n := len(z.block)
	z.doubled = append(append(z.doubled[:0], z.block...), z.block...)
	z.sa = slices.Grow(z.sa[:0], 2*n)[:2*n]
	sais.Sort(z.doubled, z.sa)
	z.bwt = z.bwt[:0]
	origin := 0
	for _, p := range z.sa {
		if int(p) >= n {
			continue
		}
		if p == 0 {
			origin = len(z.bwt)
			z.bwt = append(z.bwt, z.block[n-1])
		} else {
			z.bwt = append(z.bwt, z.block[p-1])
		}
	}
	return origin
}

// encodeSymbols writes the byte map, then move-to-front with zero runs
// coded as RUNA/RUNB digits, Huffman coded with up to six tables.
func (z *encoder) encodeSymbols() {
	var used [256]bool
	for _, b := range z.bwt {
		used[b] = true
	}
	var order []byte // move-to-front list of the bytes used
	var used16 uint64
	for i := range 16 {
		for j := range 16 {
			if used[i*16+j] {
				used16 |= 1 << (15 - i)
			}
		}
	}
	z.bits.write(used16, 16)
	for i := range 16 {
		if used16&(1<<(15-i)) == 0 {
			continue
		}
		var m uint64
		for j := range 16 {
			if used[i*16+j] {
				m |= 1 << (15 - j)
				order = append(order, byte(i*16+j))
			}
		}
		z.bits.write(m, 16)
	}
	alpha := len(order) + 2 // RUNA, RUNB, MTF indices 1..n-1 shifted by one, EOB
	eob := uint16(alpha - 1)

	syms := z.syms[:0]
	zeros := 0
	flushZeros := func() {
		// Bijective base 2: RUNA is digit 1, RUNB digit 2.
		for zeros > 0 {
			zeros--
			syms = append(syms, uint16(zeros&1))
			zeros >>= 1
		}
	}
	for _, b := range z.bwt {
		j := 0
		for order[j] != b {
			j++
		}
		if j == 0 {
			zeros++
			continue
		}
		flushZeros()
		copy(order[1:j+1], order[:j])
		order[0] = b
		syms = append(syms, uint16(j+1))
	}
	flushZeros()
	syms = append(syms, eob)
	z.syms = syms

	lens, sels := chooseTables(syms, alpha)
	z.bits.write(uint64(len(lens)), 3)
	z.bits.write(uint64(len(sels)), 15)
	mtf := []uint8{0, 1, 2, 3, 4, 5}[:len(lens)]
	for _, s := range sels {
		j := 0
		for mtf[j] != s {
			j++
		}
		copy(mtf[1:j+1], mtf[:j])
		mtf[0] = s
		z.bits.write(1<<(j+1)-2, uint(j+1)) // j ones, then a zero
	}
	codes := make([][]uint32, len(lens))
	for t, l := range lens {
		cur := l[0]
		z.bits.write(uint64(cur), 5)
		for _, want := range l {
			for cur < want {
				z.bits.write(2, 2)
				cur++
			}
			for cur > want {
				z.bits.write(3, 2)
				cur--
			}
			z.bits.write(0, 1)
		}
		codes[t] = canonicalCodes(l)
	}
	for g, s := range sels {
		l, c := lens[s], codes[s]
		end := min((g+1)*groupSize, len(syms))
		for _, sym := range syms[g*groupSize : end] {
			z.bits.write(uint64(c[sym]), uint(l[sym]))
		}
	}
}
