package sais

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
)

// suffixArray is Sort into a new array.
func suffixArray(text []byte) []int32 {
	sa := make([]int32, len(text))
	Sort(text, sa)
	return sa
}

// naiveSuffixArray sorts suffixes by direct comparison: slow, obviously right.
func naiveSuffixArray(text []byte) []int32 {
	sa := make([]int32, len(text))
	for i := range sa {
		sa[i] = int32(i)
	}
	slices.SortFunc(sa, func(a, b int32) int { return bytes.Compare(text[a:], text[b:]) })
	return sa
}

func TestSuffixArrayTable(t *testing.T) {
	tests := []struct {
		name string
		text string
	}{
		{"empty", ""},
		{"one", "a"},
		{"two equal", "aa"},
		{"increasing", "abcdef"},
		{"decreasing", "fedcba"},
		{"run", "aaaaaaaaaaaaaaaa"},
		{"banana", "banana"},
		{"mississippi", "mississippi"},
		{"periodic", "abababababababab"},
		{"nested periods", "abaabaabaababaabaabaab"},
		{"zeros and ff", "\x00\xff\x00\xff\x00\x00\xff\xff\x00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := suffixArray([]byte(tt.text))
			want := naiveSuffixArray([]byte(tt.text))
			assert.Equal(t, want, got)
		})
	}
}

func TestSuffixArrayRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 500; iter++ {
		n := rng.IntN(300)
		alpha := 1 + rng.IntN(4)
		if iter%5 == 0 {
			alpha = 256
		}
		text := make([]byte, n)
		for i := range text {
			text[i] = byte(rng.IntN(alpha))
		}
		got := suffixArray(text)
		want := naiveSuffixArray(text)
		if !assert.Equal(t, want, got, "text %q", text) {
			return
		}
	}
}

func TestSuffixArrayLargeSorted(t *testing.T) {
	// A repetitive text forces several recursion levels.
	rng := rand.New(rand.NewPCG(3, 4))
	unit := make([]byte, 1000)
	for i := range unit {
		unit[i] = byte(rng.IntN(3))
	}
	var text []byte
	for len(text) < 200_000 {
		text = append(text, unit...)
		text = append(text, byte(rng.IntN(3)))
	}
	sa := suffixArray(text)
	seen := make([]bool, len(text))
	for i, p := range sa {
		assert.False(t, seen[p], "position %d twice", p)
		seen[p] = true
		if i > 0 && bytes.Compare(text[sa[i-1]:], text[p:]) >= 0 {
			t.Fatalf("suffixes %d and %d out of order at rank %d", sa[i-1], p, i)
		}
	}
}

func TestSortPanicsOnShortArray(t *testing.T) {
	assert.Panics(t, func() { Sort([]byte("abc"), make([]int32, 2)) })
}

func FuzzSuffixArray(f *testing.F) {
	f.Add([]byte("mississippi"))
	f.Add([]byte("abababab\x00"))
	f.Fuzz(func(t *testing.T, text []byte) {
		if len(text) > 4096 {
			return
		}
		assert.Equal(t, naiveSuffixArray(text), suffixArray(text))
	})
}
