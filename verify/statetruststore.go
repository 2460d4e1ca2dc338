package verify

import (
	"context"
	"errors"
	"log/slog"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/rollback"
)

// StateTrustStore keeps the trusted metadata in a device's rollback.State, so
// that it shares the crash-safe, checksummed store of the install state.
type StateTrustStore struct {
	State *rollback.State
	// Logger hears about damaged records; nil means none.
	Logger *slog.Logger
}

// LoadMetadata implements TrustStore. A damaged copy of any document but
// the root reads as absent: the client then fetches a fresh one, which must
// still pass every signature, version and expiry check. A damaged root is
// an error wrapping rollback.ErrCorrupt, because only the root shipped with
// the device can restore trust (Config.ShippedRoot).
func (s StateTrustStore) LoadMetadata(ctx context.Context, role string) ([]byte, error) {
	rec, err := s.State.Metadata(ctx, role)
	if errors.Is(err, rollback.ErrCorrupt) && role != manifest.RoleRoot {
		if s.Logger != nil {
			s.Logger.Warn("stored metadata damaged; fetching it again", "role", role, "err", err)
		}
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return rec.Data, nil
}

// StoreMetadata implements TrustStore.
func (s StateTrustStore) StoreMetadata(ctx context.Context, role string, data []byte) error {
	rec, err := s.State.Metadata(ctx, role)
	if err != nil && !errors.Is(err, rollback.ErrCorrupt) {
		return err
	}
	// A record with no intact copy starts afresh at sequence 0 (rollback's
	// documented way to replace it); otherwise swap from what we read.
	_, err = s.State.SetMetadata(ctx, role, rec.Seq, data)
	return err
}
