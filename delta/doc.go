// Package delta makes and applies bsdiff-style binary deltas: fast
// generation on the server, streaming bounded-memory application on the
// device. It imports nothing of otaseal outside internal/ (its bzip2 writer
// and suffix sorter) and knows nothing about TUF.
//
// Entry points:
//
//   - Diff(old, new) computes the edit script; (*Script).Encode writes it in
//     either format.
//   - ApplyStream applies our streaming format read front to back from an
//     io.Reader, so a device can apply a patch while it downloads.
//   - ApplyBSDIFF40 applies bsdiff 4.3's format, which needs the patch as an
//     io.ReaderAt.
//
// Both appliers read old through an io.ReaderAt (flash) and write the new
// image to an io.Writer (the inactive slot) a chunk at a time: the new image
// is never held in memory. The one exception on the old side is the
// streaming format's LZ layout, used only for images of at most 4 MiB
// together, whose applier holds old (and, range-coded, new) in memory
// (see below).
//
// A patch is untrusted transport. The appliers check every length and old
// offset before use and refuse, with a *PatchError wrapping one of the ErrX
// sentinels, rather than panic or write past ApplyOptions.MaxOutput (pass
// the signed length of the target image). They do not make the output
// trustworthy: only a match with the signed image hash does. Set
// ApplyOptions.SHA256 to have the applier check it, or hash the slot
// afterwards; on any error, discard what was written.
//
// What it does not do: verify signatures, choose which patch to fetch, or
// write to flash safely; those belong to the caller (package verify).
//
// # The bsdiff algorithm
//
// Diff builds the suffix array of old (SA-IS in internal/sais, linear
// time, one int32 per byte) and scans new. At each position it looks up the
// longest exact match in old; when that match beats the current alignment
// by more than 8 bytes, the region since the last control entry is closed:
// the previous alignment is extended forwards, the new one backwards, each
// as long as at least half of the bytes agree, and the bytes in between
// become extra data. The diff data (new minus old, bytewise) is mostly
// zeros where code merely moved, which is why it compresses well. The scan
// runs on chunks of new in parallel; the chunking depends only on len(new),
// so output is deterministic.
//
// # Control entries
//
// Both formats encode the same edit script, a list of control entries
// (add, copy, seek) applied with a position in old (starting at 0) and one
// in new (starting at 0):
//
//  1. add: new[newpos+i] = old[oldpos+i] + diff[i] (mod 256) for i < add,
//     taking add bytes from the diff data; oldpos and newpos advance by add.
//  2. copy: the next copy bytes of the extra data are written verbatim;
//     newpos advances by copy.
//  3. seek: oldpos += seek (may be negative).
//
// The patch is complete when newpos equals the declared new size. Our
// appliers refuse: negative add or copy; an entry writing past the declared
// size (CVE-2014-9862); an add run reading old outside [0, len(old)), even
// where bspatch would skip the bytes or read out of bounds; a seek taking
// oldpos beyond ±2^62; more than 16 consecutive entries that write nothing
// (a flood of empty entries costs a few bytes each once compressed); more
// than ApplyOptions.MaxControls entries; and any data after the last entry.
//
// # BSDIFF40 format
//
// Exactly what bsdiff 4.3 writes and bspatch reads. Integers ("off") are 8
// bytes, little-endian magnitude in the low 63 bits, with bit 63 (the top
// bit of byte 7) set for negative values. Negative zero is refused.
//
//	offset  size  field
//	0       8     magic "BSDIFF40"
//	8       8     off: length C of the compressed control block
//	16      8     off: length D of the compressed diff block
//	24      8     off: size of the new image
//	32      C     bzip2 stream: control entries, 24 bytes each: add, copy,
//	              seek as three offs
//	32+C    D     bzip2 stream: the diff data of all add runs, in order
//	32+C+D  rest  bzip2 stream: the extra data of all copy runs, in order
//
// Each bzip2 stream is a complete stream ("BZh9", blocks of at most 900k
// bytes, end-of-stream marker and combined CRC). Because the three streams
// are consumed side by side, applying needs random access to the patch. We
// write the streams with our own bzip2 writer (internal/bzip2: libbz2's
// Huffman table selection, so sizes match bzip2 -9's) and read them with
// compress/bzip2.
//
// # Streaming format
//
// One stream of control entries and their data behind a fixed header, so
// the patch is consumed strictly front to back. The layout below is the
// bsdiff layout with zstd as its entropy stage ("OTADLT02"), which Encode
// writes for images of more than 4 MiB together; smaller ones get the
// range-coded layouts (further below).
//
//	offset  size  field
//	0       8     magic "OTADLT02" (the last two bytes are the version)
//	8       8     uint64 little-endian: size of the old image the patch
//	              was made from; ApplyStream refuses another (ErrOldSize)
//	16      8     uint64 little-endian: size of the new image
//	24      8     uint64 little-endian: length P of the payload
//	32      P     payload: zstd frames (RFC 8878) decompressing to segments
//	32+P          end of patch: nothing may follow
//
// The decompressed payload is a sequence of segments; each groups up to
// 4096 control entries so that zstd sees like data together (grouping
// makes patches about an eighth smaller than interleaving entry by entry):
//
//	uvarint n         number of entries, 1..4096
//	n times:
//	  uvarint add     unsigned LEB128, minimal length (at most 10 bytes)
//	  uvarint copy    unsigned LEB128, minimal length
//	  varint  seek    zigzag then LEB128, as encoding/binary.PutVarint
//	uvarint R         length of the run records, at most 2*A+n+64 where A
//	                  is the sum of the segment's add lengths (A <= 512 KiB)
//	R bytes           run records of the entries with add > 0, in order
//	L bytes           literals: nonzero diff bytes, L being the sum of the
//	                  literal run lengths
//	C bytes           extra data of the entries, in order, calls converted
//
// Run records describe an entry's diff data as maximal runs of nonzero
// bytes, separated by zeros. Each run is a pair (uvarint code, uvarint
// gap); the entry's records end with a lone code 0, after which its diff
// data is zeros. The gap is where the run starts: counted from the start of
// the entry's add data for its first run and from the start of the
// previous run after that. A run lies inside its entry and leaves at least
// one zero between itself and the previous run. The code says where the
// bytes come from:
//
//	code 1      the prediction of the absolute table
//	code 2..5   the prediction of the relative table, for a 32-bit field
//	            starting code-2 bytes before the run
//	code k>=6   the next k-5 bytes of the literals
//
// The predictions model moved addresses. Encoder and applier keep two
// tables of 32768 slots, each mapping a 4 KiB page of 32-bit values to a
// 32-bit change, empty at the start of the patch. Let p be the old
// position of a run's first byte, c its offset in a field that starts at
// f = p-c, and F the old bytes f..f+3 read as a little-endian uint32 (a
// field must lie inside old). The entry's shift s is its new position
// minus its old position; all arithmetic is modulo 2^32.
//
//   - Absolute: the field is the aligned word holding p (c = p mod 4). The
//     prediction is F + abs[F>>12].
//   - Relative: the field starts c bytes before p; its target is
//     T = f + 4 + F. The prediction is F + rel[T>>12] - s.
//
// A table slot is found from a page q as (q * 0x9E3779B1 mod 2^32) >> 17,
// and holds q+1 (zero means empty) and the change; a page whose slot holds
// another page has no entry, and a code whose table has no entry is
// refused. The predicted run is the bytewise difference, new minus old,
// between the predicted field and F, from byte c up to the first zero
// difference or the end of the field; it must be at least one byte long.
// After every run of at most 4 bytes, predicted or literal, with its diff
// bytes added to the field to give G: if c = p mod 4 fits the run in its
// aligned word, abs[F>>12] = G - F for that word; and for each c in 0..3
// that fits the run in the field starting at p-c, rel[T>>12] = G - F + s.
// Updates overwrite the slot.
//
// Extra data is x86 code more often than anything else, so calls are stored
// converted. Scanning an entry's extra data from its start, each E8 or E9
// byte followed by 4 more bytes of that data is examined: let x be those 4
// bytes as a little-endian uint32 and q the new position of the E8 or E9
// byte. If the top byte of x is 00 or FF, and no E8 or E9 byte left alone
// lies 1 to 3 bytes before it, the 4 bytes are replaced by the low 25 bits
// of x+q+5 sign-extended from bit 24, and the scan resumes after them;
// otherwise the byte is left alone and the scan moves by one, as it does
// past any other byte. The applier scans the same way and subtracts instead:
// a converted value again has a top byte of 00 or FF, and the second rule
// keeps a later field from changing the bytes that decided an earlier
// opcode.
//
// Segments follow one another until the new size is reached; no entry may
// follow that point, and the decompressed payload must end exactly there.
// The applier buffers one segment's run records and literals (at most
// 1.5 MiB) and the two tables (at most 512 KiB; a patch with few runs
// fills only a few slots and pays for those); extra data streams through. The
// encoder uses a zstd window of StreamWindow bytes and the applier refuses
// frames that need a larger one, which with a single-threaded low-memory
// decoder keeps the applier's memory bounded independently of the image
// size. The last entry's seek is written as 0, and an add run longer than
// a segment allows is split into entries that continue in old (seek 0).
//
// # Streaming format, LZ layout
//
// Between distant versions most of a program is new code, which bsdiff's
// approximate matches describe poorly. For images small enough to hold in
// memory, the streaming format has a second layout: the whole new image,
// filtered, LZ-coded against the old image, filtered the same way. It has
// the same header with another magic:
//
//	offset  size  field
//	0       8     magic "OTADLZ01"
//	8       8     uint64 little-endian: size of the old image (ErrOldSize
//	              if it is not the old image's)
//	16      8     uint64 little-endian: size N of the new image
//	24      8     uint64 little-endian: length P of the payload
//	32      P     payload: one zstd frame (RFC 8878) with a raw-content
//	              dictionary and no Dictionary_ID: the filtered old image
//	32+P          end of patch: nothing may follow
//
// The frame decompresses to exactly N bytes, the filtered new image, and
// the payload must end with it. Old and new together are at most 4 MiB
// (StreamWindow): the applier refuses a larger pair before reading old, and
// holds old in memory, filtered, as the dictionary (at most 4 MiB, plus the
// window of at most StreamWindow). Every match of the frame, into the
// dictionary or into earlier output, then lies within the window.
//
// The filter makes the 32-bit displacements of x86-64 calls and
// RIP-relative loads absolute, so repeated references to one function or
// variable become repeated bytes. Scanning the image from its start, a
// candidate is an E8 or E9 byte followed by 4 more bytes (its field starts
// 1 byte after it), or an 89, 8B or 8D byte followed by a byte b with
// b & C7 = 05 and 4 more bytes (its field starts 2 bytes after it). Let q
// be the candidate's position in its image, e = q + 1 + 4 or q + 2 + 4 the
// end of its field, and x the field as a little-endian uint32. If the top
// byte of x is 00 or FF and no candidate left alone lies 1 to 4 bytes
// before q, the field is replaced by the low 25 bits of x+e sign-extended
// from bit 24 (the applier subtracts e instead) and the scan resumes after
// the field; otherwise the candidate is left alone and the scan moves on by
// one byte, as past any other byte. Old is filtered with its own positions,
// new with its own.
//
// Encode wrote this layout before the range-coded ones (below) and writes
// it no more; appliers keep applying it. An applier older than the layout
// refuses it with ErrFormat.
//
// # Streaming format, range-coded layouts
//
// For old and new of at most 4 MiB (StreamWindow) together, Encode writes
// one of two layouts whose entropy stage is a range-coded LZ stream of our
// own instead of zstd: its encoder's tables are sized to its input (zstd's
// best level allocates tens of megabytes whatever the input), and it codes
// tighter. Both have the streaming format's header, with magic:
//
//	"OTADLR01"  the bsdiff layout: the payload is a range-coded stream,
//	            without dictionary, that decodes to the segments exactly
//	            as "OTADLT02"'s zstd frames do
//	"OTADLZ02"  the LZ layout: the payload is a range-coded stream whose
//	            dictionary is the filtered old image and which decodes to
//	            exactly N bytes, the filtered new image (filter as above)
//
// Encode writes the LZ layout when at least an eighth of new is extra data
// in the edit script and the result is smaller, and the bsdiff layout
// otherwise. The LZ layout's applier refuses old plus new above 4 MiB
// before reading old, and holds both in memory (the window); the bsdiff
// layout's holds a window of the smaller of the stream's length and
// StreamWindow. Appliers older than these layouts refuse them with
// ErrFormat: a fleet must run a release that has them before a publisher
// sends such patches.
//
// A range-coded stream is, and the payload ends with it:
//
//	size  field
//	1     properties: lc + 5*pb, where lc (0..4) is the number of literal
//	      context bits and pb (0..2) of position bits; others are refused
//	1-10  uvarint U: the decoded length (minimal LEB128)
//	R     chunks, one per 256 KiB of the U bytes (the last one shorter,
//	      none if U is 0), each either range-coded: the range coder's
//	      bytes, of which the first is always 00, or stored: a byte 01
//	      and the chunk's bytes as they are
//	4     CRC-32C (Castagnoli) of the U decoded bytes, little-endian
//
// The encoder stores a chunk that coding would not make smaller
// (compressed or encrypted content), so a stream is at most a byte per
// chunk and 15 bytes larger than its content. A stored chunk's bytes join
// the history; the decoder's probabilities, state and distances stay as
// they were. A coded chunk starts a new range coder, with the model as the
// previous chunk left it; no match crosses the end of a chunk, where the
// coder's code must be 0.
//
// The coder is an adaptive binary range coder. Each probability is an
// 11-bit number (the chance of a 0, out of 2048) starting at 1024. The
// decoder keeps a 32-bit range (initially FFFFFFFF) and a 32-bit code (the
// chunk's bytes 1 to 4, big-endian; a code of FFFFFFFF is refused). To decode a
// bit with probability p: bound = (range >> 11) * p; if code < bound the bit
// is 0, range = bound and p += (2048 - p) >> 5; otherwise it is 1, code -=
// bound, range -= bound and p -= p >> 5. A direct bit halves the range and
// is 1 (code -= range) when code >= range. After each bit, if range < 2^24,
// range <<= 8 and code = code << 8 | the next byte. A bit tree of n bits
// decodes its bits most significant first (reverse: least significant
// first), each with the probability at index m of the tree, m starting at
// 1 and becoming 2m + bit.
//
// The decoder keeps a state s (0..11, initially 0), four repeat distances
// r0..r3 (initially 1), and the position i in the output; ps = i mod 2^pb.
// Each symbol starts with bit isMatch[s][ps]:
//
//   - 0, a literal: the previous byte (the dictionary's last, 0 if there is
//     none) selects, by its top lc bits, a set of 0x300 probabilities. If
//     s >= 7 the byte is first decoded against the match byte M (the byte
//     r0 back): while the bits decoded agree with M's, each bit uses index
//     0x100 + (M's bit << 8) + m; after the first disagreement, and always
//     for s < 7, index m (an 8-bit tree). Then s = 0 if s < 4, s-3 if
//     s < 10, else s-6.
//   - 1 then isRep[s] = 0, a match: a length L from the match length coder,
//     then a distance: a 6-bit tree slot[min(L-2, 3)] gives a slot; slots
//     0..3 are the distance minus one; for slot k >= 4, with b = k/2 - 1,
//     the distance minus one is ((2 + k mod 2) << b) plus b more bits: for
//     k < 14 a reverse b-bit tree of its own, else b-4 direct bits followed
//     by a reverse 4-bit tree shared by all slots. The distances shift:
//     r3 = r2, r2 = r1, r1 = r0, r0 = the new one; s = 7 if s < 7, else 10.
//   - 1, 1, then isRepG0[s] = 0 and isRep0Long[s][ps] = 0: one byte at r0
//     (s = 9 if s < 7, else 11). With isRep0Long 1: a match at r0.
//   - 1, 1, isRepG0 1: a match at r1 (isRepG1[s] = 0), r2 (isRepG1 1,
//     isRepG2[s] 0) or r3 (1, 1), which moves to r0, the ones before it
//     moving up by one.
//
// A repeat match's length comes from the repeat length coder, and then
// s = 8 if s < 7, else 11. The two length coders alike: a choice bit 0
// then a 3-bit tree per ps gives L = 2..9; choice 1, a second choice bit 0
// and another 3-bit tree per ps gives 10..17; 1, 1 and an 8-bit tree gives
// 18..273. A match copies L bytes from its distance back, byte by byte (it
// may overlap its own output). Every distance must lie within the history
// (the dictionary and the output so far) and within the window (the
// dictionary's length plus the smaller of U and StreamWindow), and every
// match within its chunk; decoding ends after U bytes, where the checksum
// must follow.
//
// On the benchmark pairs (x86-64 builds of real tools), predictions
// replace 56-90% of the runs of nonzero diff bytes between close versions
// and 30% on the pair of distant ones; on the ARM64 build of esbuild
// (0.24.0 to 0.24.2) they replace 88%, as many as on its x86-64 build:
// close to half of its runs lie in ADRP, ADD, BL and load/store
// instructions, whose changed immediates the page-keyed tables catch as
// well as x86 displacements. Call conversion shrinks the compressed extra
// data of x86 code by up to a tenth. For code the tables do not fit, they
// simply predict less: a run they miss is written as literals, as before.
package delta
