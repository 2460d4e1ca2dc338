package rollback

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

const (
	// MaxRolloutIDLen bounds a configured rollout ID, in bytes.
	MaxRolloutIDLen = 256
	// rolloutIDBytes is the size of a generated rollout ID before hex.
	rolloutIDBytes = 16
)

// ErrInvalidRolloutID: StateOptions.RolloutID is too long or not one line
// of text.
var ErrInvalidRolloutID = errors.New("rollback: invalid rollout ID")

// RolloutID returns the device's rollout ID, its place in the order of
// every staged rollout (manifest.RolloutBucket): StateOptions.RolloutID if
// one was configured, else the random ID OpenState generated on the
// device's first start and keeps in the state. It does not change while
// the state lives, so a device does not move in the order of a rollout
// from one start to the next.
func (s *State) RolloutID() string { return s.rolloutID }

// openRolloutID returns the configured rollout ID, or the stored one,
// generating and storing it on first use.
//
// A stored ID that is lost (no intact copy, or not a generated ID) is
// replaced by a new one: the ID protects nothing, it only spreads the
// fleet, so a damaged one must not keep the device from updating. The
// device then takes a new place in the order of rollouts under way.
func (s *State) openRolloutID(ctx context.Context) (string, error) {
	if id := s.opts.RolloutID; id != "" {
		return id, checkRolloutID(id)
	}
	r, err := s.store.Load(ctx, rolloutIDRecordName)
	var seq uint64 // 0 for a corrupt record: the store lets it be started afresh
	switch {
	case errors.Is(err, ErrCorrupt):
	case err != nil:
		return "", err
	case r.Exists() && isGeneratedID(r.Data):
		return string(r.Data), nil
	default:
		seq = r.Seq
	}
	random := s.opts.Rand
	if random == nil {
		random = rand.Reader
	}
	b := make([]byte, rolloutIDBytes)
	if _, err := io.ReadFull(random, b); err != nil {
		return "", fmt.Errorf("rollback: generate rollout ID: %w", err)
	}
	id := hex.EncodeToString(b)
	if _, err := s.store.CompareAndSwap(ctx, rolloutIDRecordName, seq, []byte(id)); err != nil {
		return "", fmt.Errorf("rollback: store rollout ID: %w", err)
	}
	return id, nil
}

func isGeneratedID(b []byte) bool {
	if len(b) != 2*rolloutIDBytes {
		return false
	}
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// checkRolloutID accepts 1..MaxRolloutIDLen bytes of UTF-8 without
// control characters: a serial number or a certificate subject.
func checkRolloutID(id string) error {
	if len(id) > MaxRolloutIDLen || !utf8.ValidString(id) {
		return fmt.Errorf("%w: %d bytes (limit %d), or not UTF-8", ErrInvalidRolloutID, len(id), MaxRolloutIDLen)
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: control character %U", ErrInvalidRolloutID, r)
		}
	}
	return nil
}
