package verify

import (
	"context"
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

// PausedError reports a newer release that the repository's online
// rollout control holds back from this device: paused, stopped, or capped
// below its place in the order. It unwraps to ErrPaused.
type PausedError struct {
	Path    string
	Version manifest.Version
	State   manifest.ControlState
	// CapShare is the cap, in basis points, when State is capped.
	CapShare int
	Reason   string // the control's reason, if it gave one
}

func (e *PausedError) Error() string {
	what := string(e.State)
	if e.State == manifest.ControlCapped {
		what = fmt.Sprintf("capped at %d basis points", e.CapShare)
	}
	msg := fmt.Sprintf("%v: %s (%s) %s", ErrPaused, e.Path, e.Version, what)
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	return msg
}

func (e *PausedError) Unwrap() error { return ErrPaused }

// gate is what decides, beside the policy, whether a device may take a
// release now: its rollout ID, the trusted time and the online control.
type gate struct {
	id  string
	now time.Time
	ctl *manifest.Control // nil: no control role
}

// rolloutNow is the time rollouts are judged by: the clock's proven time
// when it can tell one.
func (c *Client) rolloutNow() time.Time {
	if p, ok := c.cfg.Clock.(ProvenClock); ok {
		return p.ProvenNow()
	}
	return c.cfg.Clock.Now()
}

// holdBack says why the device may not take rel now: a *WithdrawnError,
// a *PausedError, a *NotEligibleError, or nil when it may. The control
// only ever adds a reason to hold back: the schedule's time is the
// earliest the device may take the release, whatever the control says.
func holdBack(rel manifest.Release, g gate) error {
	fw := rel.Firmware
	if w := fw.Withdrawn; w != nil {
		return &WithdrawnError{Path: rel.Path, Version: fw.Version, Withdrawal: *w}
	}
	from, held := g.ctl.Narrow(fw.Rollout, rel.Path, g.id)
	if held != nil {
		return &PausedError{Path: rel.Path, Version: fw.Version, State: held.State, CapShare: held.CapShare, Reason: held.Reason}
	}
	if g.now.Before(from) {
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
// errors.As finds the time an agent should wake at), then the ones the
// rollout control holds, newest first, then the withdrawn ones, newest
// first.
func skipped(rels []manifest.Release, g gate, above *manifest.Version, newest manifest.Version, floor uint64) []error {
	var notEligible []*NotEligibleError
	var withdrawn []*WithdrawnError
	var paused []*PausedError
	for _, r := range rels {
		fw := r.Firmware
		if above != nil && fw.Version.Compare(*above) <= 0 || fw.Version.Compare(newest) > 0 || fw.SecurityVersion < floor {
			continue
		}
		switch err := holdBack(r, g).(type) {
		case *NotEligibleError:
			notEligible = append(notEligible, err)
		case *PausedError:
			paused = append(paused, err)
		case *WithdrawnError:
			withdrawn = append(withdrawn, err)
		}
	}
	slices.SortStableFunc(notEligible, func(a, b *NotEligibleError) int { return a.Until.Compare(b.Until) })
	slices.SortStableFunc(withdrawn, func(a, b *WithdrawnError) int { return b.Version.Compare(a.Version) })
	slices.SortStableFunc(paused, func(a, b *PausedError) int { return b.Version.Compare(a.Version) })
	out := make([]error, 0, len(notEligible)+len(paused)+len(withdrawn))
	for _, e := range notEligible {
		out = append(out, e)
	}
	for _, e := range paused {
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

// rolloutControl returns the trusted rollout control, or nil when the
// top-level targets role delegates no manifest.RoleRolloutControl.
//
// Once the role is delegated its document must verify (threshold of the
// control keys, the version the snapshot lists, expiry) and be a pure
// control: otherwise Select fails rather than run without it. Skipping a
// control that does not load would let whoever can drop or spoil it (the
// snapshot key, a mirror) lift a pause; failing closed gives them no
// more than they already have, the power to delay updates.
func (c *Client) rolloutControl(ctx context.Context) (*manifest.Control, error) {
	top, ok := c.trusted.Targets[manifest.RoleTargets]
	if !ok || top.Signed.Delegations == nil {
		return nil, nil
	}
	var role *manifest.DelegatedRole
	for i := range top.Signed.Delegations.Roles {
		if top.Signed.Delegations.Roles[i].Name == manifest.RoleRolloutControl {
			role = &top.Signed.Delegations.Roles[i]
		}
	}
	if role == nil {
		return nil, nil
	}
	if len(role.Paths) > 0 || role.PathHashPrefixes != nil {
		// Trusted for paths, the online control key could serve images.
		return nil, &RoleError{Role: manifest.RoleRolloutControl, Err: fmt.Errorf("%w: delegated for target paths; the rollout control role must have \"paths\": []", manifest.ErrRepository)}
	}
	md, err := c.delegated(ctx, c.trusted, manifest.RoleRolloutControl, manifest.RoleTargets)
	if err != nil {
		return nil, err
	}
	ctl, err := manifest.ControlOf(&md.Signed)
	if err != nil {
		return nil, &RoleError{Role: manifest.RoleRolloutControl, Err: err}
	}
	return ctl, nil
}
