package delta

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
)

// DefaultMaxControls is the control-entry cap when ApplyOptions.MaxControls
// is zero. Diff emits one entry per region of change; 4 Mi entries is far
// more than a real image pair needs and bounds the work a patch can demand.
const DefaultMaxControls = 4 << 20

// maxEmptyControls caps consecutive entries that neither add nor copy a
// byte. They make no progress, so without a cap a patch of a few hundred
// compressed bytes could hold millions of them and keep a device busy (the
// empty-entry flood). Entries that write bytes are bounded by the output
// size; two empty ones in a row are never needed, as their seeks add up.
const maxEmptyControls = 16

// maxSeek bounds a seek and the old position it leads to, so their sum can
// never overflow an int64 however many seeks a patch chains.
const maxSeek = 1 << 62

// chunkSize is the unit of streaming: diff bytes, old bytes and output are
// moved through buffers of this size, so memory does not grow with the
// image.
const chunkSize = 32 << 10

// ApplyOptions are the limits and checks for applying an untrusted patch.
// The zero value is the strictest: it admits only an empty output.
type ApplyOptions struct {
	// MaxOutput is the largest output the patch may produce. Pass the
	// signed length of the target image: a patch that declares or writes
	// more fails with ErrOutputLimit before the excess is written.
	MaxOutput int64
	// SHA256, if not nil, is the expected digest of the output. A mismatch
	// is reported after the whole output has been written, as a
	// *HashMismatchError; the output must then be discarded.
	SHA256 []byte
	// MaxControls caps the number of control entries; zero means
	// DefaultMaxControls.
	MaxControls int
}

// applier holds the state shared by both formats: the position in old and
// new, the checks every control entry must pass, and the output hash.
type applier struct {
	format   Format
	dst      io.Writer
	old      io.ReaderAt
	oldSize  int64
	newSize  int64 // declared by the patch, already checked against MaxOutput
	maxCtl   int
	want     []byte
	hash     hash.Hash
	oldPos   int64
	newPos   int64
	control  int // index of the entry being applied
	empty    int
	diffBuf  []byte
	oldBuf   []byte
	finished bool
}

func newApplier(f Format, dst io.Writer, old io.ReaderAt, oldSize int64, opts *ApplyOptions) (*applier, error) {
	if opts == nil {
		opts = &ApplyOptions{}
	}
	if oldSize < 0 {
		panic("delta: negative old size")
	}
	if opts.SHA256 != nil && len(opts.SHA256) != sha256.Size {
		return nil, fmt.Errorf("delta: ApplyOptions.SHA256 has %d bytes, want %d", len(opts.SHA256), sha256.Size)
	}
	a := &applier{
		format:  f,
		dst:     dst,
		old:     old,
		oldSize: oldSize,
		maxCtl:  opts.MaxControls,
		want:    opts.SHA256,
		control: -1,
	}
	if a.maxCtl <= 0 {
		a.maxCtl = DefaultMaxControls
	}
	if a.want != nil {
		a.hash = sha256.New()
	}
	return a, nil
}

// fail wraps err with the position in the patch.
func (a *applier) fail(err error) error {
	return &PatchError{Format: a.format, Control: a.control, NewOffset: a.newPos, Err: err}
}

// setNewSize checks the declared output size against the caller's limit
// before anything is written.
func (a *applier) setNewSize(n int64, opts *ApplyOptions) error {
	var limit int64
	if opts != nil {
		limit = opts.MaxOutput
	}
	if n < 0 {
		return a.fail(fmt.Errorf("%w: negative output size %d", ErrCorrupt, n))
	}
	if n > limit {
		return a.fail(fmt.Errorf("%w: patch declares %d bytes, limit %d", ErrOutputLimit, n, limit))
	}
	a.newSize = n
	// No run is longer than the output: a tiny patch gets tiny buffers.
	a.diffBuf = make([]byte, a.chunk())
	a.oldBuf = make([]byte, a.chunk()+8) // a chunk and addRun's margins
	return nil
}

// chunk is the size of the applier's buffers: chunkSize, or the declared
// output size if that is smaller.
func (a *applier) chunk() int { return int(min(chunkSize, a.newSize)) }

// next validates the lengths of the next control entry before any of its
// bytes are read: they come from the wire and may be hostile.
func (a *applier) next(add, copy int64) error {
	a.control++
	if a.control >= a.maxCtl {
		return a.fail(fmt.Errorf("%w: more than %d", ErrTooManyControls, a.maxCtl))
	}
	if add < 0 || copy < 0 {
		return a.fail(fmt.Errorf("%w: negative length (add %d, copy %d)", ErrCorrupt, add, copy))
	}
	if add == 0 && copy == 0 {
		a.empty++
		if a.empty > maxEmptyControls {
			return a.fail(fmt.Errorf("%w: more than %d entries in a row that write nothing", ErrTooManyControls, maxEmptyControls))
		}
	} else {
		a.empty = 0
	}
	// Written as subtractions so that huge values cannot overflow past
	// the check: this is the CVE-2014-9862 family, where bspatch trusted
	// the lengths and wrote past its buffer.
	room := a.newSize - a.newPos
	if add > room || copy > room-add {
		return a.fail(fmt.Errorf("%w: entry writes %d+%d bytes, %d left of declared %d",
			ErrOutputLimit, add, copy, room, a.newSize))
	}
	// Every old byte the add run reads must lie inside old. bspatch 4.3
	// skips out-of-range bytes and some builds read before the start on a
	// negative seek; nothing Diff writes needs either, so we refuse.
	if add > 0 && (a.oldPos < 0 || a.oldPos > a.oldSize || add > a.oldSize-a.oldPos) {
		return a.fail(fmt.Errorf("%w: %d bytes at old offset %d, old is %d bytes",
			ErrOldRange, add, a.oldPos, a.oldSize))
	}
	return nil
}

// seek moves the old position after an entry's add run.
func (a *applier) seek(off int64) error {
	if off < -maxSeek || off > maxSeek {
		return a.fail(fmt.Errorf("%w: seek %d", ErrOldRange, off))
	}
	p := a.oldPos + off
	if p < -maxSeek || p > maxSeek {
		return a.fail(fmt.Errorf("%w: seek to %d", ErrOldRange, p))
	}
	a.oldPos = p
	return nil
}

// diffSource produces the diff data of add runs, chunk by chunk.
type diffSource interface {
	// begin starts an add run of n bytes; shift is its new position
	// minus its old position.
	begin(n int64, shift uint32)
	// fill produces the run's next len(d) diff bytes, whose old bytes
	// start at old position oldPos. buf holds old from position base,
	// up to 3 bytes before oldPos and 4 after the chunk where old has
	// them.
	fill(d, buf []byte, base, oldPos int64) error
}

// readerDiff is diff data read from a stream as it is, as in BSDIFF40.
type readerDiff struct{ r io.Reader }

func (readerDiff) begin(int64, uint32) {}

func (s readerDiff) fill(d, _ []byte, _, _ int64) error {
	if _, err := io.ReadFull(s.r, d); err != nil {
		return streamErr(err)
	}
	return nil
}

// addRun writes n bytes of old plus the diff bytes src produces. Old is
// read with 3 bytes of margin before and 4 after each chunk, so that the
// streaming format's predictions at the chunk's edges see the same bytes
// as its encoder did.
func (a *applier) addRun(src diffSource, n int64) error {
	if n == 0 {
		return nil
	}
	src.begin(n, uint32(a.newPos-a.oldPos))
	for n > 0 {
		k := int(min(n, chunkSize))
		lo, hi := max(a.oldPos-3, 0), min(a.oldPos+int64(k)+4, a.oldSize)
		buf := a.oldBuf[:hi-lo]
		// The range was checked in next, so a short read means the old
		// image changed or failed underneath us.
		if got, err := a.old.ReadAt(buf, lo); got < len(buf) {
			return a.fail(fmt.Errorf("delta: reading old at %d: got %d of %d bytes: %w", lo, got, len(buf), err))
		}
		d := a.diffBuf[:k]
		if err := src.fill(d, buf, lo, a.oldPos); err != nil {
			return a.fail(err)
		}
		addBytes(d, buf[a.oldPos-lo:])
		if err := a.write(d); err != nil {
			return err
		}
		a.oldPos += int64(k)
		n -= int64(k)
	}
	return nil
}

// addBytes sets d[i] += o[i], eight bytes at a time.
func addBytes(d, o []byte) {
	o = o[:len(d)]
	i := 0
	for ; i+8 <= len(d); i += 8 {
		sum := addBytes64(binary.LittleEndian.Uint64(d[i:]), binary.LittleEndian.Uint64(o[i:]))
		binary.LittleEndian.PutUint64(d[i:], sum)
	}
	for ; i < len(d); i++ {
		d[i] += o[i]
	}
}

// addBytes64 adds the bytes of a and b pairwise, each modulo 256: no carry
// crosses from one byte into the next.
func addBytes64(a, b uint64) uint64 {
	const high = 0x8080808080808080
	return ((a &^ high) + (b &^ high)) ^ ((a ^ b) & high)
}

// copyRun writes n bytes of extra data read from extra. With calls, it
// undoes the streaming format's conversion of calls (callConverter): a
// call whose field crosses the end of a read is kept back, at most 4
// bytes, until the rest arrives.
func (a *applier) copyRun(extra io.Reader, n int64, calls bool) error {
	pending := 0
	cc := newCallConverter()
	for n > 0 || pending > 0 {
		k := int(min(n, int64(chunkSize-pending)))
		d := a.diffBuf[:pending+k]
		if _, err := io.ReadFull(extra, d[pending:]); err != nil {
			return a.fail(streamErr(err))
		}
		n -= int64(k)
		done := len(d)
		if calls {
			done = cc.convert(d, a.newPos, false, n == 0)
		}
		if err := a.write(d[:done]); err != nil {
			return err
		}
		pending = copy(a.diffBuf, d[done:])
	}
	return nil
}

func (a *applier) write(p []byte) error {
	if a.hash != nil {
		a.hash.Write(p)
	}
	if _, err := a.dst.Write(p); err != nil {
		return fmt.Errorf("delta: writing output: %w", err)
	}
	a.newPos += int64(len(p))
	return nil
}

// done reports whether the declared output has been written.
func (a *applier) done() bool { return a.newPos == a.newSize }

// finish checks the hash once the output is complete.
func (a *applier) finish() (int64, error) {
	if a.hash != nil {
		got := a.hash.Sum(nil)
		if !bytes.Equal(got, a.want) {
			return a.newPos, &HashMismatchError{Got: got, Want: bytes.Clone(a.want)}
		}
	}
	return a.newPos, nil
}

// streamErr maps a read error of a patch stream to our sentinels: an early
// end is truncation, anything a decompressor rejects is corruption.
func streamErr(err error) error {
	// Our own decoders report with the sentinels already.
	if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrTruncated) || errors.Is(err, ErrTrailingData) {
		return err
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %v", ErrTruncated, err)
	}
	return fmt.Errorf("%w: %v", ErrCorrupt, err)
}

// expectEOF checks that r has nothing left: trailing bytes after the last
// entry are refused, so a patch has exactly one valid form. A decoder that
// reports an unexpected EOF here saw an incomplete stream: that is reported
// as onShort (ErrTruncated for a frame cut short, ErrTrailingData where the
// decoder was trying to read a stream that should not be there).
func expectEOF(r io.Reader, onShort error) error {
	var b [1]byte
	// A reader may return (0, nil) a few times; not forever.
	for range 100 {
		n, err := r.Read(b[:])
		if n > 0 {
			return ErrTrailingData
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: %v", onShort, err)
		}
		if err != nil {
			// Bytes followed the end and did not even decode.
			return fmt.Errorf("%w: %v", ErrTrailingData, err)
		}
	}
	return io.ErrNoProgress
}
