package rollback

import (
	"bytes"
	"context"
	"fmt"
	"sync"
)

// Store keeps named records with compare-and-swap. Implementations must
// make each CompareAndSwap atomic and durable: after a crash at any point,
// Load returns the old record or the new one, never a mix, and a record that
// returned from CompareAndSwap survives the crash.
//
// Names are caller-chosen strings of 1..MaxNameLength bytes of UTF-8
// without control characters (role names of delegated targets included); a
// store must keep them from naming anything outside its own storage.
type Store interface {
	// Load returns the named record. A record never written loads as
	// Record{} with a nil error. A record with no intact copy is an error
	// wrapping ErrCorrupt, never data.
	Load(ctx context.Context, name string) (Record, error)

	// CompareAndSwap replaces the named record if its sequence number is
	// still oldSeq, and returns the new sequence number (oldSeq+1). A nil
	// data deletes the record (it then loads with nil Data and the new Seq).
	// If the stored sequence number differs it changes nothing and returns
	// a *ConflictError.
	//
	// A record that Load reports corrupt is replaced only by a caller that
	// passes oldSeq 0, having decided to start it afresh (verify
	// re-bootstrapping a role's metadata); any other oldSeq fails with the
	// corruption error. A store that cannot be corrupted never sees this.
	CompareAndSwap(ctx context.Context, name string, oldSeq uint64, data []byte) (uint64, error)
}

// MemStore is a Store in memory, for tests and for devices that keep state
// elsewhere. It is safe for concurrent use. It survives nothing.
type MemStore struct {
	mu      sync.Mutex
	records map[string]Record
	maxSize int
}

// NewMemStore returns an empty MemStore with the DefaultMaxRecordSize limit.
func NewMemStore() *MemStore {
	return &MemStore{records: map[string]Record{}, maxSize: DefaultMaxRecordSize}
}

// Load implements Store.
func (m *MemStore) Load(ctx context.Context, name string) (Record, error) {
	if err := checkName(name); err != nil {
		return Record{}, err
	}
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.records[name]
	r.Data = bytes.Clone(r.Data)
	return r, nil
}

// CompareAndSwap implements Store.
func (m *MemStore) CompareAndSwap(ctx context.Context, name string, oldSeq uint64, data []byte) (uint64, error) {
	if err := checkWrite(name, data, m.maxSize); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := m.records[name]
	if cur.Seq != oldSeq {
		return 0, &ConflictError{Name: name, Expected: oldSeq, Current: cur.Seq}
	}
	next := Record{Seq: oldSeq + 1}
	if data != nil {
		next.Data = append([]byte{}, data...)
	}
	m.records[name] = next
	return next.Seq, nil
}

func checkWrite(name string, data []byte, maxSize int) error {
	if err := checkName(name); err != nil {
		return err
	}
	if len(data) > maxSize {
		return fmt.Errorf("%w: %d bytes for %q (limit %d)", ErrRecordTooLarge, len(data), name, maxSize)
	}
	return nil
}
