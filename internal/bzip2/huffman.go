package bzip2

import (
	"container/heap"
	"io"
)

// Entropy coding for the bzip2 writer: choosing and building the Huffman
// tables the way libbz2 does, and packing bits.

// chooseTables picks the number of Huffman tables and, per group of 50
// symbols, which one codes it, refining as libbz2 does.
func chooseTables(syms []uint16, alpha int) (lens [][]uint8, sels []uint8) {
	n := len(syms)
	nTables := 6
	for i, lim := range []int{200, 600, 1200, 2400} {
		if n < lim {
			nTables = 2 + i
			break
		}
	}
	freq := make([]int, alpha)
	for _, s := range syms {
		freq[s]++
	}
	// Start with each table cheap on one range of symbols holding about
	// an equal share of the frequency.
	lens = make([][]uint8, nTables)
	rem, start := n, 0
	for part := nTables; part > 0; part-- {
		target := rem / part
		end, acc := start-1, 0
		for acc < target && end < alpha-1 {
			end++
			acc += freq[end]
		}
		if end > start && part != nTables && part != 1 && (nTables-part)%2 == 1 {
			acc -= freq[end]
			end--
		}
		l := make([]uint8, alpha)
		for v := range l {
			if v < start || v > end {
				l[v] = 15
			}
		}
		lens[part-1] = l
		start = end + 1
		rem -= acc
	}
	nGroups := (n + groupSize - 1) / groupSize
	sels = make([]uint8, nGroups)
	counts := make([][]int, nTables)
	for t := range counts {
		counts[t] = make([]int, alpha)
	}
	for range rounds {
		for t := range counts {
			clear(counts[t])
		}
		for g := range nGroups {
			group := syms[g*groupSize : min((g+1)*groupSize, n)]
			best, bestCost := 0, int(^uint(0)>>1)
			for t, l := range lens {
				cost := 0
				for _, s := range group {
					cost += int(l[s])
				}
				if cost < bestCost {
					best, bestCost = t, cost
				}
			}
			sels[g] = uint8(best)
			for _, s := range group {
				counts[best][s]++
			}
		}
		for t := range lens {
			lens[t] = huffmanLengths(counts[t], maxCodeLen)
		}
	}
	return lens, sels
}

// canonicalCodes assigns codes in order of length, then symbol: the order
// bzip2 decoders rebuild them in.
func canonicalCodes(lens []uint8) []uint32 {
	codes := make([]uint32, len(lens))
	code := uint32(0)
	for l := uint8(1); l <= 20; l++ {
		for s, sl := range lens {
			if sl == l {
				codes[s] = code
				code++
			}
		}
		code <<= 1
	}
	return codes
}

// huffmanLengths returns Huffman code lengths for freq, every symbol coded
// (unused ones as if seen once), none longer than maxLen: when the tree is
// too deep, frequencies are halved and it is rebuilt, as libbz2 does.
func huffmanLengths(freq []int, maxLen int) []uint8 {
	n := len(freq)
	w := make([]int, n)
	for i, f := range freq {
		w[i] = max(f, 1) << 8
	}
	lens := make([]uint8, n)
	parent := make([]int, 2*n)
	weight := make([]int, 2*n)
	for {
		h := &nodeHeap{weight: weight}
		for i := range n {
			weight[i] = w[i]
			h.nodes = append(h.nodes, i)
		}
		heap.Init(h)
		next := n
		for h.Len() > 1 {
			a := heap.Pop(h).(int)
			b := heap.Pop(h).(int)
			// The combined weight keeps the depth in its low byte so
			// that ties prefer shallow trees, as libbz2 does.
			weight[next] = (weight[a]&^0xff + weight[b]&^0xff) | (1 + max(weight[a]&0xff, weight[b]&0xff))
			parent[a], parent[b] = next, next
			heap.Push(h, next)
			next++
		}
		root := next - 1
		tooLong := false
		for i := range n {
			d := 0
			for j := i; j != root; j = parent[j] {
				d++
			}
			if d > maxLen {
				tooLong = true
			}
			lens[i] = uint8(d)
		}
		if !tooLong {
			return lens
		}
		for i := range w {
			w[i] = (1 + (w[i]>>8)/2) << 8
		}
	}
}

type nodeHeap struct {
	nodes  []int
	weight []int
}

func (h *nodeHeap) Len() int { return len(h.nodes) }
func (h *nodeHeap) Less(i, j int) bool {
	a, b := h.weight[h.nodes[i]], h.weight[h.nodes[j]]
	if a != b {
		return a < b
	}
	return h.nodes[i] < h.nodes[j]
}
func (h *nodeHeap) Swap(i, j int) { h.nodes[i], h.nodes[j] = h.nodes[j], h.nodes[i] }
func (h *nodeHeap) Push(x any)    { h.nodes = append(h.nodes, x.(int)) }
func (h *nodeHeap) Pop() any {
	x := h.nodes[len(h.nodes)-1]
	h.nodes = h.nodes[:len(h.nodes)-1]
	return x
}

// bitWriter packs bits MSB first; with a nil w it only collects them.
type bitWriter struct {
	w     io.Writer
	acc   uint64
	nbits uint
	buf   []byte
	err   error
}

// write appends the low n bits of v (n <= 48).
func (b *bitWriter) write(v uint64, n uint) {
	b.acc = b.acc<<n | v&(1<<n-1)
	b.nbits += n
	for b.nbits >= 8 {
		b.nbits -= 8
		b.buf = append(b.buf, byte(b.acc>>b.nbits))
	}
	if b.w != nil && len(b.buf) >= 64<<10 {
		b.drain()
	}
}

func (b *bitWriter) drain() {
	if b.err == nil && len(b.buf) > 0 {
		_, b.err = b.w.Write(b.buf)
	}
	b.buf = b.buf[:0]
}

// flush pads the last byte with zeros and writes everything out.
func (b *bitWriter) flush() {
	if b.nbits > 0 {
		b.write(0, 8-b.nbits)
	}
	b.drain()
}
