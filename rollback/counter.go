package rollback

import (
	"context"
	"errors"
	"fmt"
	"strconv"
)

// Counter is a monotonic hardware counter: a TPM NV counter, eFuses, OTP
// bits, a secure element's counter. The device's own security-version floor
// is mirrored in it, so an attacker who can rewrite the state directory
// (restore an old backup, delete the floors) still cannot make the device
// accept an image below it.
//
// Contract:
//   - Value never decreases, across power cuts and reinstalls of the state
//     directory.
//   - Advance(v) raises the value to at least v and is durable when it
//     returns nil; Advance with v at or below the value changes nothing.
//     Hardware that can only increment by one (TPM) loops; hardware that
//     cannot count that high returns an error rather than a lower value.
//   - Only Confirm advances it, after the new image booted and passed its
//     health check: raised earlier, a bad release could not be reverted
//     (the bootloader would refuse the old image) and the device bricks.
//     (Provision sets it for the factory image, and OpenState finishes an
//     advance that a crash interrupted right after Confirm committed.)
type Counter interface {
	Value(ctx context.Context) (uint64, error)
	Advance(ctx context.Context, v uint64) error
}

// StoreCounter is a Counter kept as a record in a Store: for tests, and for
// boards without a hardware counter. On a FileStore it survives power cuts,
// but not an attacker who can rewrite the directory.
type StoreCounter struct {
	store Store
	name  string
	owned *FileStore // the store OpenFileCounter opened, closed by Close
}

// NewStoreCounter returns a counter kept in store under the record name.
func NewStoreCounter(store Store, name string) *StoreCounter {
	return &StoreCounter{store: store, name: name}
}

// OpenFileCounter returns a counter kept in its own state directory dir,
// ideally on another partition than the main state. Like OpenFileStore it
// holds dir locked until Close.
func OpenFileCounter(dir string) (*StoreCounter, error) {
	s, err := OpenFileStore(dir, FileStoreOptions{MaxRecordSize: 64})
	if err != nil {
		return nil, err
	}
	return &StoreCounter{store: s, name: "counter", owned: s}, nil
}

// Close closes the store OpenFileCounter opened; on a counter from
// NewStoreCounter it does nothing (its caller owns the store).
func (c *StoreCounter) Close() error {
	if c.owned == nil {
		return nil
	}
	return c.owned.Close()
}

// Value implements Counter.
func (c *StoreCounter) Value(ctx context.Context) (uint64, error) {
	_, v, err := c.load(ctx)
	return v, err
}

func (c *StoreCounter) load(ctx context.Context) (uint64, uint64, error) {
	r, err := c.store.Load(ctx, c.name)
	if err != nil {
		return 0, 0, err
	}
	if !r.Exists() {
		return r.Seq, 0, nil
	}
	v, err := strconv.ParseUint(string(r.Data), 10, 64)
	if err != nil || strconv.FormatUint(v, 10) != string(r.Data) {
		return 0, 0, &CorruptError{Name: c.name, Reason: "counter value is not a decimal number"}
	}
	return r.Seq, v, nil
}

// Advance implements Counter.
func (c *StoreCounter) Advance(ctx context.Context, v uint64) error {
	for {
		seq, cur, err := c.load(ctx)
		if err != nil {
			return err
		}
		if cur >= v {
			return nil
		}
		_, err = c.store.CompareAndSwap(ctx, c.name, seq, []byte(strconv.FormatUint(v, 10)))
		if errors.Is(err, ErrConflict) {
			continue // someone else advanced it; look again
		}
		if err != nil {
			return fmt.Errorf("rollback: advance counter: %w", err)
		}
		return nil
	}
}
