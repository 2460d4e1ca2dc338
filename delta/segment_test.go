package delta

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// seg builds raw segment bytes: a count, entries (add, copy, seek), the
// run records and whatever follows (literals, extra data).
func seg(n uint64, entries [][3]int64, records []uint64, rest ...byte) []byte {
	b := binary.AppendUvarint(nil, n)
	for _, e := range entries {
		b = binary.AppendUvarint(b, uint64(e[0]))
		b = binary.AppendUvarint(b, uint64(e[1]))
		b = binary.AppendVarint(b, e[2])
	}
	var r []byte
	for _, x := range records {
		r = binary.AppendUvarint(r, x)
	}
	b = binary.AppendUvarint(b, uint64(len(r)))
	b = append(b, r...)
	return append(b, rest...)
}

// lit is the record code of a literal run of n bytes.
func lit(n uint64) uint64 { return codeLiteral - 1 + n }

func TestStreamSegmentChecks(t *testing.T) {
	// old holds the 32-bit word 0x1000 at offsets 0 and 8: a literal run
	// changing the first to 0x2010 teaches the absolute table that page 1
	// moved by 0x1010, which then predicts the same two bytes at 8.
	old := make([]byte, 100)
	binary.LittleEndian.PutUint32(old[0:], 0x1000)
	binary.LittleEndian.PutUint32(old[8:], 0x1000)
	tests := []struct {
		name    string
		newSize uint64
		records []byte
		want    error
	}{
		{"valid", 10, seg(1, [][3]int64{{10, 0, 0}}, []uint64{codeEnd}), nil},
		{"valid with literals", 12, seg(1, [][3]int64{{10, 2, 0}}, []uint64{lit(2), 3, lit(1), 5, codeEnd}, 7, 7, 9, 'x', 'y'), nil},
		{"valid with a predicted run", 12, seg(1, [][3]int64{{12, 0, 0}}, []uint64{lit(2), 0, codeAbs, 8, codeEnd}, 0x10, 0x10), nil},
		{"no entries", 10, seg(0, nil, nil), ErrCorrupt},
		{"too many entries", 10, seg(maxSegmentControls+1, nil, nil), ErrCorrupt},
		{"records end early", 10, seg(1, [][3]int64{{10, 0, 0}}, []uint64{lit(2), 3}, 7, 7), ErrCorrupt},
		{"records after the end code", 10, seg(1, [][3]int64{{10, 0, 0}}, []uint64{codeEnd, 5}), ErrCorrupt},
		{"run starts past its entry", 10, seg(1, [][3]int64{{10, 0, 0}}, []uint64{lit(1), 10, codeEnd}, 1), ErrCorrupt},
		{"literal run ends past its entry", 10, seg(1, [][3]int64{{10, 0, 0}}, []uint64{lit(3), 8, codeEnd}, 1, 1, 1), ErrCorrupt},
		{"literal runs touch", 10, seg(1, [][3]int64{{10, 0, 0}}, []uint64{lit(2), 3, lit(1), 2, codeEnd}, 1, 1, 1), ErrCorrupt},
		{"zero literal", 10, seg(1, [][3]int64{{10, 0, 0}}, []uint64{lit(1), 9, codeEnd}, 0), ErrCorrupt},
		{"prediction from empty tables", 10, seg(1, [][3]int64{{10, 0, 0}}, []uint64{codeAbs, 0, codeEnd}), ErrCorrupt},
		{"run touches a predicted run", 12, seg(1, [][3]int64{{12, 0, 0}}, []uint64{lit(2), 0, codeAbs, 8, lit(1), 2, codeEnd}, 0x10, 0x10, 5), ErrCorrupt},
		{"predicted run ends past its entry", 9, seg(1, [][3]int64{{9, 0, 0}}, []uint64{lit(2), 0, codeAbs, 8, codeEnd}, 0x10, 0x10), ErrCorrupt},
		{"records longer than possible", 10, seg(1, [][3]int64{{1, 9, 0}}, make([]uint64, 70)), ErrCorrupt},
		{"segment adds too much", maxSegmentAdd + 1, seg(2, [][3]int64{{maxSegmentAdd, 0, 0}, {1, 0, 0}}, nil), ErrCorrupt},
		{"entry past declared size", 10, seg(1, [][3]int64{{10, 1, 0}}, []uint64{codeEnd}), ErrOutputLimit},
		{"entries after the end", 10, seg(2, [][3]int64{{10, 0, 0}, {0, 0, 0}}, []uint64{codeEnd}), ErrTrailingData},
		{"truncated literals", 10, seg(1, [][3]int64{{10, 0, 0}}, []uint64{lit(2), 8, codeEnd}, 1), ErrTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			patch := buildStream(t, uint64(len(old)), tt.newSize, tt.records)
			var out bytes.Buffer
			_, err := ApplyStream(&out, bytes.NewReader(old), int64(len(old)), bytes.NewReader(patch), &ApplyOptions{MaxOutput: int64(tt.newSize)})
			if tt.want != nil {
				assert.ErrorIs(t, err, tt.want)
				return
			}
			require.NoError(t, err)
			if tt.name == "valid with a predicted run" {
				want := bytes.Clone(old[:12])
				binary.LittleEndian.PutUint32(want[0:], 0x2010)
				binary.LittleEndian.PutUint32(want[8:], 0x2010)
				assert.Equal(t, want, out.Bytes())
			}
		})
	}
}

// A patch of the first version of the streaming format, whose run data had
// no predictions, is refused by its magic rather than misread.
func TestStreamVersion1Refused(t *testing.T) {
	patch := buildStream(t, 100, 10, seg(1, [][3]int64{{10, 0, 0}}, []uint64{codeEnd}))
	copy(patch, "OTADLT01")
	_, err := ApplyStream(io.Discard, bytes.NewReader(make([]byte, 100)), 100, bytes.NewReader(patch), &ApplyOptions{MaxOutput: 10})
	assert.ErrorIs(t, err, ErrFormat)
}
