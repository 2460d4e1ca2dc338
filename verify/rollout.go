package verify

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/rollback"
)

// ProvenClock is implemented by clocks that tell, beside Now, the latest
// time proven by verified data (rollback.TrustedClock). Staged rollouts
// are judged by ProvenNow, so a device whose clock runs ahead does not
// join a wave early; expiry is judged by Now, so a clock set back does not
// revive expired metadata. A Clock without ProvenNow (SystemClock, on a
// device whose real-time clock is trusted) is used for both.
type ProvenClock interface {
	ProvenNow() time.Time
}

// NotEligibleError reports a newer release whose staged rollout has not
// reached this device yet. It unwraps to ErrNotEligible.
type NotEligibleError struct {
	Path    string
	Version manifest.Version
	// Until is when the device may take the release, by its trusted
	// clock: an agent can sleep until then instead of polling.
	Until time.Time
}

func (e *NotEligibleError) Error() string {
	return fmt.Sprintf("%v: %s (%s) until %s", ErrNotEligible, e.Path, e.Version, e.Until.UTC().Format(time.RFC3339))
}

func (e *NotEligibleError) Unwrap() error { return ErrNotEligible }

// WithdrawnError reports a release its publisher withdrew: one that
// Select skipped, or the one the device runs (Installed). It unwraps to
// ErrWithdrawn. Its message is the security notice an agent logs.
type WithdrawnError struct {
	Path       string
	Version    manifest.Version
	Withdrawal manifest.Withdrawal
	// Installed is set when the device runs the withdrawn release; Select
	// then offers the next newer release it may take, if there is one.
	Installed bool
}

func (e *WithdrawnError) Error() string {
	what := "skipped"
	if e.Installed {
		what = "installed"
	}
	msg := fmt.Sprintf("%v: %s %s (%s): %s", ErrWithdrawn, what, e.Path, e.Version, e.Withdrawal.Reason)
	if len(e.Withdrawal.Advisories) > 0 {
		msg += " [" + strings.Join(e.Withdrawal.Advisories, " ") + "]"
	}
	return msg
}

func (e *WithdrawnError) Unwrap() error { return ErrWithdrawn }

// rolloutNow is the time rollouts are judged by: the clock's proven time
// when it can tell one.
func (c *Client) rolloutNow() time.Time {
	if p, ok := c.cfg.Clock.(ProvenClock); ok {
		return p.ProvenNow()
	}
	return c.cfg.Clock.Now()
}

// holdBack says why the device may not take rel at now: a *WithdrawnError,
// a *NotEligibleError, or nil when it may.
func holdBack(rel manifest.Release, rolloutID string, now time.Time) error {
	fw := rel.Firmware
	if w := fw.Withdrawn; w != nil {
		return &WithdrawnError{Path: rel.Path, Version: fw.Version, Withdrawal: *w}
	}
	if from := fw.Rollout.EligibleFrom(rel.Path, rolloutID); now.Before(from) {
		return &NotEligibleError{Path: rel.Path, Version: fw.Version, Until: from}
	}
	return nil
}

// installedNotice returns a *WithdrawnError if the installed image is a
// release in rels that its publisher withdrew, else nil.
func installedNotice(rels []manifest.Release, installed *rollback.Image) error {
	if installed == nil {
		return nil
	}
	for _, r := range rels {
		if r.Path == installed.TargetPath && r.Firmware.Withdrawn != nil {
			return &WithdrawnError{Path: r.Path, Version: r.Firmware.Version, Withdrawal: *r.Firmware.Withdrawn, Installed: true}
		}
	}
	return nil
}

// skipped returns why the releases in rels that the policy would take
// (newer than above, at most newest, at or over floor) were held back:
// the ones not yet eligible first, the one that opens first leading (so
// errors.As finds the time an agent should wake at), then the withdrawn
// ones, newest first.
func skipped(rels []manifest.Release, rolloutID string, now time.Time, above *manifest.Version, newest manifest.Version, floor uint64) []error {
	var notEligible []*NotEligibleError
	var withdrawn []*WithdrawnError
	for _, r := range rels {
		fw := r.Firmware
		if above != nil && fw.Version.Compare(*above) <= 0 || fw.Version.Compare(newest) > 0 || fw.SecurityVersion < floor {
			continue
		}
		switch err := holdBack(r, rolloutID, now).(type) {
		case *NotEligibleError:
			notEligible = append(notEligible, err)
		case *WithdrawnError:
			withdrawn = append(withdrawn, err)
		}
	}
	slices.SortStableFunc(notEligible, func(a, b *NotEligibleError) int { return a.Until.Compare(b.Until) })
	slices.SortStableFunc(withdrawn, func(a, b *WithdrawnError) int { return b.Version.Compare(a.Version) })
	out := make([]error, 0, len(notEligible)+len(withdrawn))
	for _, e := range notEligible {
		out = append(out, e)
	}
	for _, e := range withdrawn {
		out = append(out, e)
	}
	return out
}

// withNotice joins the installed release's withdrawal notice, if any, to
// err.
func withNotice(err, notice error) error {
	if notice == nil {
		return err
	}
	return errors.Join(err, notice)
}
