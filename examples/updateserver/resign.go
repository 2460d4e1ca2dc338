package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

// resignLoop checks the repository every CheckEvery until ctx is done.
// The interval is real time; every expiry decision uses s.now.
func (s *server) resignLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.CheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.check(ctx)
		}
	}
}

// check opens the repository afresh (so a release published meanwhile is
// picked up and a conflicting publish is detected by package sign) and
// re-signs snapshot and timestamp when either expires within ResignBefore.
// The outcome is recorded for /healthz; a failure is retried at the next
// check.
func (s *server) check(ctx context.Context) error {
	s.checkMu.Lock()
	defer s.checkMu.Unlock()
	err := s.checkLocked(ctx)
	if errors.Is(err, sign.ErrConflict) {
		// The release tool published between our Open and Publish; the
		// repository it left is whole, so build on it straight away.
		s.log.Info("repository changed during the check; checking again", "err", err)
		err = s.checkLocked(ctx)
	}
	if err != nil {
		s.log.Error("re-sign check failed", "err", err)
		s.mu.Lock()
		s.status.checked, s.status.err = s.now(), err
		s.mu.Unlock()
	}
	return err
}

func (s *server) checkLocked(ctx context.Context) error {
	repo, err := sign.OpenRepository(ctx, s.store, s.signOptions())
	if err != nil {
		return fmt.Errorf("opening the repository: %w", err)
	}
	defer repo.Close()
	now := s.now()
	// A root or targets key may have appeared in a rotation since start.
	if err := checkKeys(repo, s.cfg.SnapshotKey, s.cfg.TimestampKey, s.cfg.ControlKey); err != nil {
		return err
	}
	snapExpires, err := s.snapshotExpiry(ctx, repo)
	if err != nil {
		return err
	}
	ts := repo.Timestamp()
	deadline := now.Add(s.cfg.ResignBefore)
	// The offline roles first: when one has expired, the publish below
	// is refused, and the log must say which and who can fix it.
	var targetsExpires time.Time
	if t, ok := repo.Targets(manifest.RoleTargets); ok {
		targetsExpires = t.Signed.Expires
	}
	s.warnOffline(manifest.RoleRoot, repo.Root().Signed.Expires, now, deadline, "the root key holders must sign a new root (release rotate --root-expiry)")
	s.warnOffline(manifest.RoleTargets, targetsExpires, now, deadline, "publish a release, or release publish --renew targets, with the targets key")
	resigned := false
	renewControl, err := s.controlDue(repo, now, deadline)
	if err != nil {
		return err
	}
	if renewControl || !ts.Signed.Expires.After(deadline) || !snapExpires.After(deadline) {
		oldTS, oldSnap := ts.Signed.Version, ts.Signed.Meta["snapshot.json"].Version
		if err := repo.Publish(ctx, s.signers); err != nil {
			return fmt.Errorf("re-signing: %w", err)
		}
		ts = repo.Timestamp()
		if snapExpires, err = s.snapshotExpiry(ctx, repo); err != nil {
			return err
		}
		resigned = true
		s.log.Info("re-signed", "timestamp_version", ts.Signed.Version, "previous_timestamp_version", oldTS,
			"snapshot_version", ts.Signed.Meta["snapshot.json"].Version, "previous_snapshot_version", oldSnap,
			"timestamp_expires", ts.Signed.Expires, "snapshot_expires", snapExpires)
	}
	var controlExpires time.Time
	if c, ok := repo.Targets(manifest.RoleRolloutControl); ok {
		controlExpires = c.Signed.Expires
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status.checked, s.status.err = now, nil
	s.status.timestampVersion = ts.Signed.Version
	s.status.timestampExpires = ts.Signed.Expires
	s.status.snapshotVersion = ts.Signed.Meta["snapshot.json"].Version
	s.status.snapshotExpires = snapExpires
	s.status.targetsExpires = targetsExpires
	s.status.rootExpires = repo.Root().Signed.Expires
	s.status.controlExpires = controlExpires
	if resigned {
		s.status.lastResign = now
	}
	return nil
}

// warnOffline warns when an offline role's document expires within
// sign's warning window (or by deadline), and says so plainly once it
// has expired: "expires soon" for a root that expired an hour ago would
// send the operator to the wrong runbook.
func (s *server) warnOffline(role string, expires, now, deadline time.Time, fix string) {
	if expires.IsZero() {
		return
	}
	x := sign.RoleExpiry{Role: role, Expires: expires}
	switch {
	case x.State(now, 0) == sign.ExpiryExpired:
		s.log.Error(role+" metadata has expired; devices refuse every update until "+fix, "role", role, "expires", expires, "expired_ago", now.Sub(expires).Round(time.Second))
	case x.State(now, sign.ExpiryWarning(role)) == sign.ExpirySoon || !expires.After(deadline):
		s.log.Warn(role+" metadata expires soon; "+fix, "role", role, "expires", expires, "left", expires.Sub(now).Round(time.Second))
	}
}

// controlWarnBefore is how long before the rollout control document
// expires a server without the control key starts warning: days, so that
// someone can sign a new one (any rollout command of the release tool
// does) before every device stops updating.
const controlWarnBefore = 7 * 24 * time.Hour

// controlDue reports whether the rollout control document expires by
// deadline and the server holds the control key, and if so stages its
// renewal for the coming Publish. Without the key it warns once the
// document expires within controlWarnBefore: a delegated control that has
// expired makes every device refuse to update (fail closed).
func (s *server) controlDue(repo *sign.Repository, now, deadline time.Time) (bool, error) {
	c, ok := repo.Targets(manifest.RoleRolloutControl)
	if !ok {
		return false, nil
	}
	expires := c.Signed.Expires
	if s.cfg.ControlKey == nil {
		if !expires.After(now.Add(max(controlWarnBefore, s.cfg.ResignBefore))) {
			s.log.Warn("rollout control document expires soon and this server has no control key: devices stop updating once it expires; give --control-key or re-sign it with the release tool",
				"role", manifest.RoleRolloutControl, "expires", expires)
		}
		return false, nil
	}
	if expires.After(deadline) {
		return false, nil
	}
	if err := repo.RenewRolloutControl(); err != nil {
		return false, fmt.Errorf("renewing the rollout control: %w", err)
	}
	return true, nil
}

// snapshotExpiry is the expiry of the snapshot the timestamp names, as
// sign.OpenRepository verified it.
func (s *server) snapshotExpiry(_ context.Context, repo *sign.Repository) (time.Time, error) {
	snap := repo.Snapshot()
	if snap == nil {
		return time.Time{}, fmt.Errorf("repository has no snapshot yet")
	}
	return snap.Signed.Expires, nil
}
