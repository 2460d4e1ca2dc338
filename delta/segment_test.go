package delta

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
)

// seg builds raw segment bytes: a count, entries (add, copy, seek), the
// run data and whatever follows.
func seg(n uint64, entries [][3]int64, runs []uint64, rest ...byte) []byte {
	b := binary.AppendUvarint(nil, n)
	for _, e := range entries {
		b = binary.AppendUvarint(b, uint64(e[0]))
		b = binary.AppendUvarint(b, uint64(e[1]))
		b = binary.AppendVarint(b, e[2])
	}
	var r []byte
	for _, x := range runs {
		r = binary.AppendUvarint(r, x)
	}
	b = binary.AppendUvarint(b, uint64(len(r)))
	b = append(b, r...)
	return append(b, rest...)
}

func TestStreamSegmentChecks(t *testing.T) {
	old := make([]byte, 100)
	tests := []struct {
		name    string
		records []byte
		want    error
	}{
		{"valid", seg(1, [][3]int64{{10, 0, 0}}, []uint64{10, 0}), nil},
		{"valid with literals", seg(1, [][3]int64{{10, 2, 0}}, []uint64{3, 2, 5, 0}, 7, 7, 'x', 'y'), nil},
		{"no entries", seg(0, nil, nil), ErrCorrupt},
		{"too many entries", seg(maxSegmentControls+1, nil, nil), ErrCorrupt},
		{"runs short of the diff data", seg(1, [][3]int64{{10, 0, 0}}, []uint64{9, 0}), ErrCorrupt},
		{"runs past the diff data", seg(1, [][3]int64{{10, 0, 0}}, []uint64{11, 0}), ErrCorrupt},
		{"second pair without zeros", seg(1, [][3]int64{{10, 0, 0}}, []uint64{3, 1, 0, 1, 5, 0}, 1, 1), ErrCorrupt},
		{"empty pair before the end", seg(1, [][3]int64{{10, 0, 0}}, []uint64{5, 0, 5, 0}), ErrCorrupt},
		{"zero literal", seg(1, [][3]int64{{10, 0, 0}}, []uint64{9, 1}, 0), ErrCorrupt},
		{"runs longer than possible", seg(1, [][3]int64{{1, 9, 0}}, []uint64{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}), ErrCorrupt},
		{"segment adds too much", seg(2, [][3]int64{{maxSegmentAdd, 0, 0}, {1, 0, 0}}, nil), ErrCorrupt},
		{"entry past declared size", seg(1, [][3]int64{{10, 1, 0}}, []uint64{10, 0}), ErrOutputLimit},
		{"entries after the end", seg(2, [][3]int64{{10, 0, 0}, {0, 0, 0}}, []uint64{10, 0}), ErrTrailingData},
		{"truncated literals", seg(1, [][3]int64{{10, 0, 0}}, []uint64{8, 2}, 1), ErrTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			newSize := uint64(10)
			switch tt.name {
			case "valid with literals":
				newSize = 12
			case "segment adds too much":
				newSize = maxSegmentAdd + 1
			}
			patch := buildStream(t, uint64(len(old)), newSize, tt.records)
			_, err := applyLimited(t, FormatStream, old, patch, &ApplyOptions{MaxOutput: int64(newSize)})
			if tt.want == nil {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, tt.want)
		})
	}
}
