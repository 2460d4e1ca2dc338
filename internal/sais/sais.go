// Package sais builds suffix arrays by induced sorting (SA-IS, Nong, Zhang
// and Chan 2009) with 32-bit indices. Two otaseal codecs need one: delta's
// Diff finds its matches in the suffix array of the old image, and the
// bzip2 writer gets its Burrows-Wheeler transform from the suffix array of
// a block written twice.
//
// Entry point: Sort fills a caller's array, so a caller that sorts many
// texts (one per bzip2 block) reuses one allocation.
//
// SA-IS runs in linear time and needs one int32 per byte plus a bit per
// byte for the suffix types; bsdiff 4.3's Larsson-Sadakane qsufsort is
// O(n log n) and needs two arrays of off_t per byte. The standard library's
// index/suffixarray builds the same array but does not expose it, and
// getting it out through its serialised form doubles the memory.
//
// It does not search: callers binary-search the array themselves. It does
// not handle texts of 2^31-1 bytes or more; callers reject those first
// (Diff refuses larger images).
//
// Conventions: the text is followed by a virtual sentinel smaller than every
// symbol, so the last suffix is always L-type. Empty slots in sa hold -1.
package sais

// symbol is the alphabet of a text level: bytes at the top, int32 names in
// the reduced problems.
type symbol interface{ ~uint8 | ~int32 }

// Sort writes the suffix array of text into sa: sa[r] is the start of the
// suffix of rank r. It panics unless len(sa) == len(text) and len(text) <
// 2^31-1, both checks the caller can make before calling.
func Sort(text []byte, sa []int32) {
	if len(sa) != len(text) || int64(len(text)) >= 1<<31-1 {
		panic("sais: Sort needs len(sa) == len(text) < 2^31-1")
	}
	sais(text, sa, 256, nil)
}

// typeBits records, for each position, whether its suffix is S-type (smaller
// than the suffix that follows it).
type typeBits []uint64

func (t typeBits) isS(i int) bool { return t[i>>6]>>(uint(i)&63)&1 != 0 }

func (t typeBits) setS(i int) { t[i>>6] |= 1 << (uint(i) & 63) }

// isLMS reports whether i is a leftmost S-type position.
func (t typeBits) isLMS(i int) bool { return i > 0 && t.isS(i) && !t.isS(i-1) }

func classify[T symbol](text []T) typeBits {
	n := len(text)
	t := make(typeBits, (n+63)/64)
	// text[n-1] is L-type: it is larger than the sentinel.
	for i := n - 2; i >= 0; i-- {
		if text[i] < text[i+1] || (text[i] == text[i+1] && t.isS(i+1)) {
			t.setS(i)
		}
	}
	return t
}

// bucketStarts fills bkt with the first index of each symbol's bucket.
func bucketStarts[T symbol](text []T, bkt []int32) {
	countSymbols(text, bkt)
	var sum int32
	for c, k := range bkt {
		bkt[c] = sum
		sum += k
	}
}

// bucketEnds fills bkt with one past the last index of each symbol's bucket.
func bucketEnds[T symbol](text []T, bkt []int32) {
	countSymbols(text, bkt)
	var sum int32
	for c, k := range bkt {
		sum += k
		bkt[c] = sum
	}
}

func countSymbols[T symbol](text []T, bkt []int32) {
	clear(bkt)
	for _, c := range text {
		bkt[c]++
	}
}

// induce sorts all suffixes from the LMS suffixes already placed at the ends
// of their buckets: first the L-type suffixes left to right, then the S-type
// ones right to left. The type of j = p-1 is decided from the symbols and
// the bucket pointers instead of the type bits, which saves a random read
// per step: in the L pass every p in sa is L-type or LMS, so j is L-type
// exactly when text[j] >= text[p]; in the S pass, p at index i is S-type
// exactly when i lies in the part of its bucket the pass has filled.
func induce[T symbol](text []T, sa []int32, bkt []int32) {
	n := len(text)
	bucketStarts(text, bkt)
	// The suffix before the sentinel is the smallest L-type suffix of its
	// bucket.
	c := text[n-1]
	sa[bkt[c]] = int32(n - 1)
	bkt[c]++
	for i := 0; i < n; i++ {
		p := int(sa[i])
		if p <= 0 {
			continue
		}
		if c := text[p-1]; c >= text[p] {
			sa[bkt[c]] = int32(p - 1)
			bkt[c]++
		}
	}
	bucketEnds(text, bkt)
	for i := n - 1; i >= 0; i-- {
		p := int(sa[i])
		if p <= 0 {
			continue
		}
		c, cp := text[p-1], text[p]
		if c < cp || (c == cp && int32(i) >= bkt[cp]) {
			bkt[c]--
			sa[bkt[c]] = int32(p - 1)
		}
	}
}

// sais writes the suffix array of text, over an alphabet of k symbols, into
// sa (len(sa) == len(text)). scratch is free space the bucket array may use
// instead of a new allocation: in a recursive call, the names can number
// up to a quarter of the input, and the middle of the parent's sa is unused.
func sais[T symbol](text []T, sa []int32, k int, scratch []int32) {
	n := len(text)
	switch n {
	case 0:
		return
	case 1:
		sa[0] = 0
		return
	}
	t := classify(text)
	var bkt []int32
	if len(scratch) >= k {
		bkt = scratch[:k]
	} else {
		bkt = make([]int32, k)
	}

	// Stage 1: sort the LMS substrings by one induced pass.
	for i := range sa {
		sa[i] = -1
	}
	bucketEnds(text, bkt)
	for i := n - 1; i >= 1; i-- {
		if t.isLMS(i) {
			c := text[i]
			bkt[c]--
			sa[bkt[c]] = int32(i)
		}
	}
	induce(text, sa, bkt)

	// Move the sorted LMS positions to the front.
	n1 := 0
	for i := 0; i < n; i++ {
		if p := int(sa[i]); t.isLMS(p) {
			sa[n1] = int32(p)
			n1++
		}
	}
	if n1 == 0 {
		// No LMS position at all (a non-increasing text): the single
		// induced pass from the sentinel already sorted everything.
		return
	}

	// Name the LMS substrings: equal substrings get equal names. LMS
	// positions are at least two apart, so p/2 is a unique slot in the
	// upper part of sa: it first holds the length of p's substring (to
	// the next LMS position, inclusive), then p's name.
	for i := n1; i < n; i++ {
		sa[i] = -1
	}
	next := n // the last LMS substring runs into the sentinel
	for i := n - 1; i >= 1; i-- {
		if t.isLMS(i) {
			sa[n1+i/2] = int32(next - i + 1)
			next = i
		}
	}
	names := 0
	prev, prevLen := -1, 0
	for i := 0; i < n1; i++ {
		p := int(sa[i])
		l := int(sa[n1+p/2])
		if !sameLMS(text, prev, prevLen, p, l) {
			names++
			prev, prevLen = p, l
		}
		sa[n1+p/2] = int32(names - 1)
	}
	// Pack the names, in text order, at the very end of sa: that is the
	// reduced string s1.
	j := n - 1
	for i := n - 1; i >= n1; i-- {
		if sa[i] >= 0 {
			sa[j] = sa[i]
			j--
		}
	}
	s1 := sa[n-n1:]
	sa1 := sa[:n1]

	// Stage 2: sort the reduced string, recursively when names repeat.
	if names < n1 {
		// The recursion touches only sa1 and s1, so the bucket array of
		// this level is dead and the middle of sa is free for it.
		sais(s1, sa1, names, sa[n1:n-n1])
	} else {
		for i, c := range s1 {
			sa1[c] = int32(i)
		}
	}

	// Stage 3: map reduced ranks back to LMS positions, place them at the
	// ends of their buckets in sorted order and induce the rest.
	j = n1 - 1
	for i := n - 1; i >= 1; i-- {
		if t.isLMS(i) {
			s1[j] = int32(i)
			j--
		}
	}
	for i := range sa1 {
		sa1[i] = s1[sa1[i]]
	}
	for i := n1; i < n; i++ {
		sa[i] = -1
	}
	bucketEnds(text, bkt)
	for i := n1 - 1; i >= 0; i-- {
		p := sa[i]
		sa[i] = -1
		c := text[p]
		bkt[c]--
		sa[bkt[c]] = p
	}
	induce(text, sa, bkt)
}

// sameLMS reports whether the LMS substrings at a (length la) and b
// (length lb) are equal. a < 0 means "no previous substring". Equal symbols
// up to the same closing LMS position imply equal types, so symbols are
// all that need comparing; a substring that reaches the sentinel is unique.
func sameLMS[T symbol](text []T, a, la, b, lb int) bool {
	if a < 0 || la != lb || a+la > len(text) || b+lb > len(text) {
		return false
	}
	x, y := text[a:a+la], text[b:b+la]
	for i := range x {
		if x[i] != y[i] {
			return false
		}
	}
	return true
}
