package delta

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"runtime"
	"sync"

	"github.com/otaseal/otaseal/internal/sais"
)

// MaxInputSize is the largest old or new image Diff accepts: suffix array
// indices are int32, and both patch formats carry sizes that fit.
const MaxInputSize = 1<<31 - 2

// op is one control entry of the edit script, with the absolute positions
// the encoders need to regenerate the diff and extra bytes from old and new
// instead of keeping copies of them.
type op struct {
	oldPos int64 // where the add run reads old
	newPos int64 // where the add run writes new
	add    int64 // bytes of new = old + diff
	copy   int64 // bytes of new taken verbatim from the extra data
}

// seek returns the old-position change after entry i: to where the next
// entry reads, and zero after the last one (its value is never used, and a
// fixed value keeps the encoding of an edit script unique).
func (d *Script) seek(i int) int64 {
	if i+1 == len(d.ops) {
		return 0
	}
	o := d.ops[i]
	return d.ops[i+1].oldPos - (o.oldPos + o.add)
}

// Script is the edit script that turns old into new, as computed by Diff:
// the list of control entries both patch formats encode (see the package
// doc). It is not a manifest.Delta, which describes a signed delta target.
// It refers to old and new, which must not change until it has been
// encoded.
type Script struct {
	old, new []byte
	ops      []op
}

// OldSize returns the length of the image the script starts from.
func (d *Script) OldSize() int64 { return int64(len(d.old)) }

// NewSize returns the length of the image the script produces.
func (d *Script) NewSize() int64 { return int64(len(d.new)) }

// Controls returns the number of control entries in the edit script.
func (d *Script) Controls() int { return len(d.ops) }

// Encode writes the script to w as a patch in format f.
func (d *Script) Encode(w io.Writer, f Format) error {
	switch f {
	case FormatBSDIFF40:
		return d.writeBSDIFF40(w)
	case FormatStream:
		return d.writeStream(w)
	}
	return fmt.Errorf("delta: encode: %w: %v", ErrFormat, f)
}

// Diff computes the bsdiff edit script from old to new: a suffix array over
// old finds, for each position of new, the longest exact match in old;
// matches that beat the current alignment by more than a few bytes start a
// new control entry, and each entry's approximate match is extended forwards
// and backwards as long as at least half the bytes agree. The bytes that
// differ go to the diff data (new-old, mostly zeros, which compresses well)
// and the unmatched bytes to the extra data.
//
// Memory is len(old)+len(new) plus 4 bytes and one bit per byte of old.
// Inputs above MaxInputSize are rejected with ErrInputTooLarge.
func Diff(old, new []byte) (*Script, error) {
	if len(old) > MaxInputSize || len(new) > MaxInputSize {
		return nil, fmt.Errorf("delta: diff: %w: old %d, new %d bytes, limit %d",
			ErrInputTooLarge, len(old), len(new), MaxInputSize)
	}
	m := newMatcher(old)
	// The scan is split into chunks of new scanned in parallel. The chunk
	// boundaries depend only on len(new), never on the number of CPUs, so
	// a given pair always gives the same patch. Each boundary costs a few
	// bytes of patch: the chunk starts without the alignment the previous
	// one ended with.
	chunks := min(max(len(new)/scanChunk, 1), maxScanChunks)
	parts := make([][]op, chunks)
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for c := range parts {
		start, end := len(new)*c/chunks, len(new)*(c+1)/chunks
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			// Start each chunk aligned with the proportional place in old:
			// right for images that grew or shrank evenly, harmless otherwise.
			pos := 0
			if len(new) > 0 {
				pos = int(int64(start) * int64(len(old)) / int64(len(new)))
			}
			parts[c] = m.scan(new[:end], start, pos, end == len(new))
		})
	}
	wg.Wait()
	d := &Script{old: old, new: new}
	for _, p := range parts {
		d.ops = append(d.ops, p...)
	}
	return d, nil
}

// scanChunk and maxScanChunks set how new is split for the parallel scan:
// chunks of at least 2 MiB, at most 64 of them: enough for the CPUs to
// finish together, few enough that the boundaries cost little (1 MiB
// chunks cost 1.2% of patch size on a 28 MB pair). scanChunk is a variable
// only so that tests can exercise many chunks on small inputs.
var scanChunk = 2 << 20

const maxScanChunks = 64

// matcher finds longest matches of byte strings in old through its suffix
// array.
type matcher struct {
	old []byte
	sa  []int32
	// prefix[k] is the first rank of the suffixes whose first two bytes,
	// read as a big-endian number, are at least k: one lookup replaces the
	// first sixteen steps of each binary search, which are the ones that
	// miss the cache.
	prefix []int32
}

func newMatcher(old []byte) *matcher {
	m := &matcher{old: old, sa: make([]int32, len(old)), prefix: make([]int32, 1<<16+1)}
	sais.Sort(old, m.sa)
	for _, p := range m.sa {
		m.prefix[prefixKey(old[p:])+1]++
	}
	for k := 1; k < len(m.prefix); k++ {
		m.prefix[k] += m.prefix[k-1]
	}
	return m
}

// prefixKey is the two-byte bucket of a suffix; a one-byte suffix sorts
// first in the bucket of its byte followed by zero.
func prefixKey(s []byte) int {
	if len(s) == 1 {
		return int(s[0]) << 8
	}
	return int(s[0])<<8 | int(s[1])
}

// longest returns the start in old and the length of the longest prefix of
// target that occurs in old.
func (m *matcher) longest(target []byte) (pos, n int) {
	if len(m.sa) == 0 || len(target) == 0 {
		return 0, 0
	}
	lo, hi := 0, len(m.sa)-1
	if len(target) >= 2 {
		k := prefixKey(target)
		lo, hi = int(m.prefix[k]), int(m.prefix[k+1])-1
		if lo > hi {
			// No suffix shares two bytes: at best one byte matches.
			first := int(target[0]) << 8
			if r := m.prefix[first]; r < m.prefix[first+256] {
				return int(m.sa[r]), 1
			}
			return 0, 0
		}
	}
	// Binary search for target's rank among the suffixes; the longest
	// match is one of the two neighbours of that rank. lcpLo and lcpHi are
	// the common prefixes of target with the bounds, so each comparison
	// skips the bytes the bounds already share with target.
	lcpLo := commonPrefix(m.old[m.sa[lo]:], target)
	lcpHi := commonPrefix(m.old[m.sa[hi]:], target)
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		skip := min(lcpLo, lcpHi)
		s := m.old[int(m.sa[mid])+skip:]
		l := skip + commonPrefix(s, target[skip:])
		suffix := m.old[m.sa[mid]:]
		if l == len(target) || (l < len(suffix) && suffix[l] > target[l]) {
			hi, lcpHi = mid, l
		} else {
			lo, lcpLo = mid, l
		}
	}
	if lcpLo > lcpHi {
		return int(m.sa[lo]), lcpLo
	}
	return int(m.sa[hi]), lcpHi
}

// commonPrefix returns the length of the common prefix of a and b.
func commonPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	a, b = a[:n], b[:n]
	// Compare eight bytes at a time: matches in similar binaries run for
	// kilobytes.
	i := 0
	for ; i+8 <= n; i += 8 {
		x := binary.LittleEndian.Uint64(a[i:]) ^ binary.LittleEndian.Uint64(b[i:])
		if x != 0 {
			return i + bits.TrailingZeros64(x)/8
		}
	}
	for ; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// scan runs bsdiff's forward scan over new[start:] and returns the control
// entries covering it; oldStart is where the first entry reads old. last
// says whether new ends where the image does, or at a chunk boundary.
func (m *matcher) scan(new []byte, start, oldStart int, last bool) []op {
	old := m.old
	oldSize, newSize := len(old), len(new)
	var ops []op
	scan, n, pos := start, 0, 0
	lastScan, lastPos, lastOffset := start, oldStart, oldStart-start
	for scan < newSize {
		oldScore := 0
		scan += n
		for scsc := scan; scan < newSize; scan++ {
			pos, n = m.longest(new[scan:])
			// Count how many of the matched bytes the current alignment
			// (old shifted by lastOffset) already gets right.
			for ; scsc < scan+n; scsc++ {
				if scsc+lastOffset < oldSize && old[scsc+lastOffset] == new[scsc] {
					oldScore++
				}
			}
			// Stop at an exact continuation of the current alignment or
			// at a match clearly better than it.
			if (n == oldScore && n != 0) || n > oldScore+8 {
				break
			}
			if scan+lastOffset < oldSize && old[scan+lastOffset] == new[scan] {
				oldScore--
			}
		}
		if n == oldScore && scan != newSize {
			// The current alignment simply continues: bsdiff leaves the
			// region to the next entry's forward extension. At a chunk
			// boundary there is no next entry to recover, and when the
			// continuation runs to the boundary after unmatched bytes
			// the final forward extension would stop short and turn the
			// tail into extra data; close the pending region here
			// instead, so the tail gets an add run of its own.
			if last || scan+n != newSize || lastScan >= scan {
				continue
			}
		}

		// Extend the previous match forwards while at least half agrees.
		lenF := 0
		for i, s, best := 0, 0, 0; lastScan+i < scan && lastPos+i < oldSize; {
			if old[lastPos+i] == new[lastScan+i] {
				s++
			}
			i++
			if s*2-i > best*2-lenF {
				best, lenF = s, i
			}
		}
		// Extend the new match backwards the same way.
		lenB := 0
		if scan < newSize {
			for i, s, best := 1, 0, 0; scan >= lastScan+i && pos >= i; i++ {
				if old[pos-i] == new[scan-i] {
					s++
				}
				if s*2-i > best*2-lenB {
					best, lenB = s, i
				}
			}
		}
		// Where the extensions overlap, split at the point that keeps the
		// most agreeing bytes.
		if lastScan+lenF > scan-lenB {
			overlap := lastScan + lenF - (scan - lenB)
			s, best, lenS := 0, 0, 0
			for i := 0; i < overlap; i++ {
				if new[lastScan+lenF-overlap+i] == old[lastPos+lenF-overlap+i] {
					s++
				}
				if new[scan-lenB+i] == old[pos-lenB+i] {
					s--
				}
				if s > best {
					best, lenS = s, i+1
				}
			}
			lenF += lenS - overlap
			lenB -= lenS
		}

		ops = append(ops, op{
			oldPos: int64(lastPos),
			newPos: int64(lastScan),
			add:    int64(lenF),
			copy:   int64((scan - lenB) - (lastScan + lenF)),
		})
		lastScan = scan - lenB
		lastPos = pos - lenB
		lastOffset = pos - scan
	}
	return ops
}
