package rollback

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/otaseal/otaseal/internal/atomicfile"
)

// FileStoreOptions configures a FileStore. The zero value is the default.
type FileStoreOptions struct {
	// MaxRecordSize bounds the data of one record in bytes, on write and,
	// before anything is read into memory, on load. 0 means
	// DefaultMaxRecordSize; at most MaxRecordSizeLimit.
	MaxRecordSize int

	// OnDamage, if set, is called when Load skips a damaged copy and falls
	// back to the other one, with the record name and what was wrong. A
	// damaged copy after a clean shutdown means failing flash or
	// tampering; devices should report it. It must not call the store.
	OnDamage func(name, detail string)

	// Logger hears, at level WARN with the message "state recovered", of
	// every record read from one copy because the other was damaged,
	// missing or behind, and rewritten from it. nil means none.
	Logger *slog.Logger
}

// FileStore is a Store in a directory, built to survive power loss at any
// instruction and the loss of any one stored file.
//
// Each record has two copy files, "<escaped name>.0" and ".1", from its
// first write on. A write replaces one copy, then the other, each through
// a temporary file, fsync, rename and directory fsync, so one copy is
// always intact: the old record while the first copy is replaced, the new
// one from then on. Load returns the intact copy with the highest
// sequence number; a copy that is damaged (truncated, bit-flipped,
// replaced by another record's file), missing or older is rewritten from
// it and reported. If no copy is intact Load fails with ErrCorrupt and
// nothing is trusted. Both copies hold the current record, not the current
// and the previous one: falling back to an older install record would
// lower its floors and point at the wrong slot.
//
// What it cannot detect: an attacker or a restore from backup that
// deletes or replaces both copies with older intact ones (the checksum is
// not a MAC). The hardware Counter bounds what that gains.
//
// One FileStore at a time may hold a directory: OpenFileStore takes an
// exclusive lock on its ".lock" file until Close (on Unix; elsewhere the
// caller must ensure it), and a second opener, in this process or
// another, fails at once with a *LockedError. A second agent on the same
// state would revert the first one's installs and write its slots.
type FileStore struct {
	dir      string
	maxSize  int
	onDamage func(name, detail string)
	log      *slog.Logger
	mu       sync.Mutex
	dirLock  *dirLock // nil after Close
}

// OpenFileStore opens (creating if needed, mode 0700) the state directory
// dir, locks it for the lifetime of the FileStore, and removes temporary
// files an interrupted write left behind. While another FileStore holds
// dir it fails with a *LockedError (errors.Is ErrLocked). Call Close when
// done.
func OpenFileStore(dir string, opts FileStoreOptions) (*FileStore, error) {
	max := opts.MaxRecordSize
	switch {
	case max == 0:
		max = DefaultMaxRecordSize
	case max < 0 || max > MaxRecordSizeLimit:
		return nil, fmt.Errorf("rollback: MaxRecordSize %d outside 0..%d", max, MaxRecordSizeLimit)
	}
	_, statErr := os.Stat(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("rollback: %w", err)
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		// A new directory is itself an entry of its parent: without this a
		// power cut can lose it, and every record in it, after the first
		// write "succeeded".
		if err := atomicfile.SyncDir(filepath.Dir(dir)); err != nil {
			return nil, fmt.Errorf("rollback: %w", err)
		}
	}
	l, err := openDirLock(dir)
	if err != nil {
		return nil, err
	}
	// Under the lock: no other process is writing, so every temporary
	// file is a leftover.
	if err := atomicfile.RemoveTemps(dir); err != nil {
		_ = l.release()
		return nil, fmt.Errorf("rollback: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &FileStore{dir: dir, maxSize: max, onDamage: opts.OnDamage, log: log, dirLock: l}, nil
}

// Close releases the directory lock. Calls after Close fail with
// ErrClosed; Close itself may be called again.
func (s *FileStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dirLock == nil {
		return nil
	}
	err := s.dirLock.release()
	s.dirLock = nil
	if err != nil {
		return fmt.Errorf("rollback: unlock state directory: %w", err)
	}
	return nil
}

// lockFileName is the lock file in a state directory; escaped record names
// never start with ".".
const lockFileName = ".lock"

func (s *FileStore) path(name string, copyNum int) string {
	return filepath.Join(s.dir, fmt.Sprintf("%s.%d", fileName(name), copyNum))
}

// Load implements Store. A record found intact in one copy only is
// rewritten to the other before Load returns (a failure to do so is
// logged, not returned: the record itself was read).
func (s *FileStore) Load(ctx context.Context, name string) (Record, error) {
	if err := checkName(name); err != nil {
		return Record{}, err
	}
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dirLock == nil {
		return Record{}, ErrClosed
	}
	cur, err := s.load(name)
	if err != nil {
		return Record{}, err
	}
	s.repair(name, cur)
	return cur.record(), nil
}

// copyState is what one copy file holds.
type copyState struct {
	env     *envelope // nil unless intact
	missing bool
	problem string // why a present copy is not intact, or is behind
}

// loaded is a record as found in its two copies.
type loaded struct {
	copies [2]copyState
	best   int // index of the newest intact copy; -1 when none
}

func (l loaded) record() Record {
	if l.best < 0 {
		return Record{}
	}
	e := l.copies[l.best].env
	return Record{Seq: e.seq, Data: e.data}
}

// seq is the record's sequence number, 0 when no copy is intact.
func (l loaded) seq() uint64 {
	if l.best < 0 {
		return 0
	}
	return l.copies[l.best].env.seq
}

func (s *FileStore) load(name string) (loaded, error) {
	l := loaded{best: -1}
	var problems []string
	for i := range l.copies {
		e, err := s.readCopy(name, i)
		var bad *badCopy
		switch {
		case errors.Is(err, fs.ErrNotExist):
			l.copies[i].missing = true
		case errors.As(err, &bad):
			l.copies[i].problem = bad.Error()
			problems = append(problems, bad.Error())
		case err != nil:
			return loaded{best: -1}, err // an I/O error says nothing about the record
		default:
			l.copies[i].env = &e
			if l.best < 0 || e.seq > l.copies[l.best].env.seq {
				l.best = i
			}
		}
	}
	if l.best < 0 {
		if len(problems) > 0 {
			return loaded{best: -1}, &CorruptError{Name: name, Reason: strings.Join(problems, "; ")}
		}
		return l, nil
	}
	b := l.copies[l.best].env
	if o := l.copies[1-l.best].env; o != nil {
		switch {
		case o.seq == b.seq && !o.equal(b):
			// Two different records under one sequence number are no
			// write of ours: neither can be trusted over the other.
			return loaded{best: -1}, &CorruptError{Name: name, Reason: fmt.Sprintf("copies differ at sequence %d", b.seq)}
		case o.seq < b.seq:
			// A write cut between its two copies, or an old copy put
			// back: the newer one is the record.
			l.copies[1-l.best].problem = fmt.Sprintf("%s: behind at sequence %d (record at %d)",
				filepath.Base(s.path(name, 1-l.best)), o.seq, b.seq)
		}
	}
	if len(problems) > 0 && s.onDamage != nil {
		s.onDamage(name, problems[0])
	}
	return l, nil
}

// repair rewrites a copy that is not an intact copy of the newest record
// from the newest one, so that one more damaged file is survivable.
func (s *FileStore) repair(name string, l loaded) {
	if l.best < 0 {
		return
	}
	other := l.copies[1-l.best]
	if other.env != nil && other.problem == "" {
		return
	}
	detail := other.problem
	if other.missing {
		detail = "copy missing"
	}
	from := filepath.Base(s.path(name, l.best))
	err := atomicfile.WriteFile(s.path(name, 1-l.best), encodeEnvelope(*l.copies[l.best].env), 0o600)
	s.log.Warn("state recovered", "record", name, "from", from, "damaged", detail, "rewritten", err == nil, "err", err)
}

// badCopy marks a copy file that exists but is not an intact copy of the
// record.
type badCopy struct {
	file, why string
}

func (b *badCopy) Error() string { return b.file + ": " + b.why }

func (s *FileStore) readCopy(name string, copyNum int) (envelope, error) {
	p := s.path(name, copyNum)
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return envelope{}, err
		}
		return envelope{}, fmt.Errorf("rollback: %w", err)
	}
	defer f.Close()
	base := filepath.Base(p)
	limit := int64(envelopeMin + MaxNameLength + s.maxSize)
	// Check the size before reading: a state directory filled with a huge
	// file must not exhaust a small device's memory.
	if fi, err := f.Stat(); err == nil && fi.Size() > limit {
		return envelope{}, &badCopy{base, fmt.Sprintf("%v: %d bytes (limit %d)", ErrRecordTooLarge, fi.Size(), limit)}
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return envelope{}, fmt.Errorf("rollback: %w", err)
	}
	if int64(len(b)) > limit {
		return envelope{}, &badCopy{base, fmt.Sprintf("%v: over %d bytes", ErrRecordTooLarge, limit)}
	}
	e, err := decodeEnvelope(b, s.maxSize)
	if err != nil {
		return envelope{}, &badCopy{base, err.Error()}
	}
	// A valid envelope in the wrong file is an old or foreign copy put there
	// to be trusted as this record (a floors file renamed over another).
	if e.name != name {
		return envelope{}, &badCopy{base, fmt.Sprintf("holds record %q", e.name)}
	}
	return e, nil
}

// CompareAndSwap implements Store. A record with no intact copy counts as
// sequence 0 here (and only here: Load keeps failing), so it can be
// rewritten from scratch by a caller that decided to, and by no other.
func (s *FileStore) CompareAndSwap(ctx context.Context, name string, oldSeq uint64, data []byte) (uint64, error) {
	if err := checkWrite(name, data, s.maxSize); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dirLock == nil {
		return 0, ErrClosed
	}
	cur, err := s.load(name)
	if err != nil && !errors.Is(err, ErrCorrupt) {
		return 0, err
	}
	if err != nil && oldSeq != 0 {
		return 0, err
	}
	if cur.seq() != oldSeq {
		return 0, &ConflictError{Name: name, Expected: oldSeq, Current: cur.seq()}
	}
	next := oldSeq + 1
	b := encodeEnvelope(envelope{name: name, seq: next, present: data != nil, data: data})
	// The copy that does not hold the current record first: if this write
	// fails halfway, the current record is still intact in the other.
	first := 0
	if cur.best == 0 {
		first = 1
	}
	for _, i := range []int{first, 1 - first} {
		if err := atomicfile.WriteFile(s.path(name, i), b, 0o600); err != nil {
			return 0, fmt.Errorf("rollback: %w", err)
		}
	}
	return next, nil
}
