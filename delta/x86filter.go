package delta

import "encoding/binary"

// The LZ layout of the streaming format compresses whole images, so it
// filters them first, the way xz's x86 filter does but with one more kind
// of field: the 32-bit displacements of x86-64 code are made absolute, so
// that two calls of one function, or two loads of one variable, become the
// same bytes and LZ matching finds them. Two kinds of field are converted:
//
//   - call and jmp rel32: an E8 or E9 byte, then the 4-byte field; the
//     displacement counts from the end of the field;
//   - RIP-relative mov and lea: an 89, 8B or 8D byte, then a ModRM byte
//     whose mod is 00 and r/m is 101 (byte & C7 = 05), then the 4-byte
//     field; the displacement counts from the end of the field, where
//     these instructions end.
//
// The package doc has the exact rule. As in callConverter, the bytes that
// decided whether a field is converted must look the same to the decoder:
// a candidate within 4 bytes after one that was left alone is left alone
// too (a converted field would overlap the bytes the earlier candidate was
// judged by).

// x86Opcode marks the bytes that may start a candidate.
var x86Opcode = func() (t [256]bool) {
	for _, b := range []byte{0xE8, 0xE9, 0x89, 0x8B, 0x8D} {
		t[b] = true
	}
	return t
}()

// x86Filter converts or restores a stream of bytes, possibly in pieces.
type x86Filter struct {
	// kept is the position of the last candidate left alone.
	kept int64
}

func newX86Filter() x86Filter { return x86Filter{kept: -1 << 62} }

// x86FilterMargin is the most bytes a candidate needs from its first byte:
// opcode, ModRM and a 4-byte field.
const x86FilterMargin = 6

// convert converts p in place (encode) or restores it (decode); p[0] is at
// position pos. Unless final, a candidate whose bytes may continue in the
// next piece is not judged: convert returns how many leading bytes are
// done (all but at most x86FilterMargin-1), and the caller passes the rest
// again followed by more bytes. With final, p ends where the data does.
func (f *x86Filter) convert(p []byte, pos int64, encode, final bool) int {
	// Up to safe, a byte's candidacy never depends on bytes beyond p.
	safe := len(p)
	if !final {
		safe = max(len(p)-x86FilterMargin+1, 0)
	}
	i := 0
	for ; i < len(p); i++ {
		// Skip bytes that start no candidate, the most of them.
		for i < safe && !x86Opcode[p[i]] {
			i++
		}
		if !final && i+x86FilterMargin > len(p) {
			return i
		}
		if i == len(p) {
			break
		}
		var field int // offset of the 4-byte field from the opcode
		switch b := p[i]; {
		case b&0xFE == 0xE8:
			field = 1
		case (b == 0x89 || b == 0x8B || b == 0x8D) && i+1 < len(p) && p[i+1]&0xC7 == 0x05:
			field = 2
		default:
			continue
		}
		if i+field+4 > len(p) {
			continue // only with final: the data ends inside the field
		}
		at := pos + int64(i)
		x := binary.LittleEndian.Uint32(p[i+field:])
		if top := x >> 24; (top != 0 && top != 0xFF) || at-f.kept <= 4 {
			f.kept = at
			continue
		}
		end := uint32(at + int64(field) + 4)
		if encode {
			x += end
		} else {
			x -= end
		}
		x = uint32(int32(x<<7) >> 7) // sign-extend the low 25 bits
		binary.LittleEndian.PutUint32(p[i+field:], x)
		i += field + 3
	}
	return len(p)
}
