package rollback

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/otaseal/otaseal/internal/atomicfile"
)

// FileStoreOptions configures a FileStore. The zero value is the default.
type FileStoreOptions struct {
	// MaxRecordSize bounds the data of one record in bytes, on write and,
	// before anything is read into memory, on load. 0 means
	// DefaultMaxRecordSize; at most MaxRecordSizeLimit.
	MaxRecordSize int

	// OnDamage, if set, is called when Load skips a damaged generation
	// file and falls back to the other copy, with the record name and what
	// was wrong. A damaged copy after a clean shutdown means failing flash
	// or tampering; devices should report it. It must not call the store.
	OnDamage func(name, detail string)
}

// FileStore is a Store in a directory, built to survive power loss at any
// instruction.
//
// Each record has two generation files, "<escaped name>.0" and ".1";
// sequence number n lives in generation n%2. A write replaces the older
// generation through a temporary file, fsync, rename and directory fsync,
// so the newer generation is untouched while it happens. Load returns the
// intact generation with the highest sequence number. If one generation is
// damaged (truncated, bit-flipped, replaced by another record's file) the
// other, intact one is returned: the last good copy. If neither is intact
// Load fails with ErrCorrupt and nothing is trusted.
//
// What it cannot detect: an attacker or a restore from backup that
// deletes or replaces both generations with older intact ones (the checksum
// is not a MAC). The hardware Counter bounds what that gains.
//
// Compare-and-swap holds across FileStores and processes on one directory:
// writes take an flock on the directory's ".lock" file (on Unix; elsewhere
// only one process may write a directory).
type FileStore struct {
	dir      string
	maxSize  int
	onDamage func(name, detail string)
	mu       sync.Mutex
	dirLock  *dirLock
}

// OpenFileStore opens (creating if needed, mode 0700) the state directory
// dir and removes temporary files an interrupted write left behind.
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
	// Under the lock: a temporary file of a write in progress in another
	// process is not a leftover.
	unlock, err := l.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := atomicfile.RemoveTemps(dir); err != nil {
		return nil, fmt.Errorf("rollback: %w", err)
	}
	return &FileStore{dir: dir, maxSize: max, onDamage: opts.OnDamage, dirLock: l}, nil
}

func (s *FileStore) path(name string, gen uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%s.%d", fileName(name), gen%2))
}

// Load implements Store.
func (s *FileStore) Load(ctx context.Context, name string) (Record, error) {
	if err := checkName(name); err != nil {
		return Record{}, err
	}
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.load(name)
}

func (s *FileStore) load(name string) (Record, error) {
	var (
		best, other *envelope
		problems    []string
	)
	for gen := uint64(0); gen < 2; gen++ {
		e, err := s.readGeneration(name, gen)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		var bad *badGeneration
		if errors.As(err, &bad) {
			problems = append(problems, bad.Error())
			continue
		}
		if err != nil {
			return Record{}, err // an I/O error says nothing about the record
		}
		switch {
		case best == nil:
			best = &e
		case e.seq > best.seq:
			best, other = &e, best
		default:
			other = &e
		}
	}
	// Writes alternate generations, so two intact ones hold consecutive
	// sequence numbers. Anything else is an old copy put back: still the
	// newest is returned, but it is worth reporting.
	if other != nil && other.seq+1 != best.seq {
		problems = append(problems, fmt.Sprintf("generations hold sequences %d and %d", other.seq, best.seq))
	}
	if best == nil {
		if len(problems) > 0 {
			return Record{}, &CorruptError{Name: name, Reason: fmt.Sprint(problems)}
		}
		return Record{}, nil
	}
	// One damaged generation next to an intact one is the last good copy:
	// the next write replaces the damaged one.
	if len(problems) > 0 && s.onDamage != nil {
		s.onDamage(name, problems[0])
	}
	return Record{Seq: best.seq, Data: best.data}, nil
}

// badGeneration marks a generation file that exists but is not an intact
// copy of the record.
type badGeneration struct {
	file, why string
}

func (b *badGeneration) Error() string { return b.file + ": " + b.why }

func (s *FileStore) readGeneration(name string, gen uint64) (envelope, error) {
	p := s.path(name, gen)
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
		return envelope{}, &badGeneration{base, fmt.Sprintf("%v: %d bytes (limit %d)", ErrRecordTooLarge, fi.Size(), limit)}
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return envelope{}, fmt.Errorf("rollback: %w", err)
	}
	if int64(len(b)) > limit {
		return envelope{}, &badGeneration{base, fmt.Sprintf("%v: over %d bytes", ErrRecordTooLarge, limit)}
	}
	e, err := decodeEnvelope(b, s.maxSize)
	if err != nil {
		return envelope{}, &badGeneration{base, err.Error()}
	}
	// A valid envelope in the wrong file is an old or foreign copy put there
	// to be trusted as this record (a floors file renamed over another,
	// an old generation copied over the new one).
	if e.name != name {
		return envelope{}, &badGeneration{base, fmt.Sprintf("holds record %q", e.name)}
	}
	if e.seq%2 != gen {
		return envelope{}, &badGeneration{base, fmt.Sprintf("holds sequence %d", e.seq)}
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
	unlock, err := s.dirLock.lock()
	if err != nil {
		return 0, err
	}
	defer unlock()
	cur, err := s.load(name)
	if err != nil && !errors.Is(err, ErrCorrupt) {
		return 0, err
	}
	if err != nil && oldSeq != 0 {
		return 0, err
	}
	if cur.Seq != oldSeq {
		return 0, &ConflictError{Name: name, Expected: oldSeq, Current: cur.Seq}
	}
	next := oldSeq + 1
	b := encodeEnvelope(envelope{name: name, seq: next, present: data != nil, data: data})
	if err := atomicfile.WriteFile(s.path(name, next), b, 0o600); err != nil {
		return 0, fmt.Errorf("rollback: %w", err)
	}
	return next, nil
}
