package sign

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/otaseal/otaseal/manifest"
)

// ErrExpired reports that a document has expired. Publish returns it (as
// an *ExpiredError) rather than write a repository that every device
// would refuse.
var ErrExpired = errors.New("sign: metadata has expired")

// ExpiredError names the expired role and when it expired.
type ExpiredError struct {
	Role    string
	Version int64
	Expires time.Time
	Now     time.Time
}

func (e *ExpiredError) Error() string {
	return fmt.Sprintf("%v: %s version %d expired %s (%s ago)%s", ErrExpired, e.Role, e.Version,
		e.Expires.UTC().Format(time.RFC3339), e.Now.Sub(e.Expires).Round(time.Second), renewHint(e.Role))
}

func (e *ExpiredError) Unwrap() error { return ErrExpired }

// renewHint says who can renew a role: only the holders of its keys.
func renewHint(role string) string {
	switch role {
	case manifest.RoleRoot:
		return "; devices refuse every update until the root key holders sign a new root version"
	case manifest.RoleTargets:
		return "; devices refuse every update until the targets key holders sign a new targets version"
	}
	return ""
}

// RoleExpiry is when one role's current document expires.
type RoleExpiry struct {
	Role    string
	Version int64
	Expires time.Time
	// Online: snapshot, timestamp and the rollout control are renewed by
	// the update server with its online keys; every other role only by
	// the holders of its offline keys.
	Online bool
}

// ExpiryState is how close a role is to its expiry.
type ExpiryState int

const (
	ExpiryOK      ExpiryState = iota // outside the warning window
	ExpirySoon                       // within the warning window
	ExpiryExpired                    // at or past its expiry: devices refuse it
)

func (s ExpiryState) String() string {
	switch s {
	case ExpirySoon:
		return "expires soon"
	case ExpiryExpired:
		return "EXPIRED"
	}
	return "ok"
}

// State returns the expiry state at now with warning window warn. A
// document is expired at its expiry instant, as TUF clients judge it.
func (e RoleExpiry) State(now time.Time, warn time.Duration) ExpiryState {
	switch {
	case !e.Expires.After(now):
		return ExpiryExpired
	case !e.Expires.After(now.Add(warn)):
		return ExpirySoon
	}
	return ExpiryOK
}

// ExpiryWarning is the default warning window of a role: long enough for
// the people who renew it to act. An offline root needs its key holders
// together (30 days); targets and delegations need a release or a
// re-signing ceremony (14 days); the online roles are renewed by the
// update server well before this window, so a warning means the server is
// not doing its job (1 day for snapshot, 6 hours for timestamp and the
// rollout control).
func ExpiryWarning(role string) time.Duration {
	switch role {
	case manifest.RoleRoot:
		return 30 * 24 * time.Hour
	case manifest.RoleSnapshot:
		return 24 * time.Hour
	case manifest.RoleTimestamp, manifest.RoleRolloutControl:
		return 6 * time.Hour
	}
	return 14 * 24 * time.Hour
}

// Expiries returns the expiry of every document the repository holds:
// root, targets, each delegated targets role (by name), snapshot and
// timestamp, in that order. A staged root or targets change counts only
// once it is published.
func (r *Repository) Expiries() []RoleExpiry {
	out := []RoleExpiry{{Role: manifest.RoleRoot, Version: r.root.Signed.Version, Expires: r.root.Signed.Expires}}
	if r.rootPending && r.prevRoot != nil {
		out[0] = RoleExpiry{Role: manifest.RoleRoot, Version: r.prevRoot.Signed.Version, Expires: r.prevRoot.Signed.Expires}
	}
	var delegated []string
	for role := range r.targets {
		if role != manifest.RoleTargets {
			delegated = append(delegated, role)
		}
	}
	sort.Strings(delegated)
	for _, role := range append([]string{manifest.RoleTargets}, delegated...) {
		md, ok := r.targets[role]
		if !ok || r.published[role] == 0 {
			continue
		}
		out = append(out, RoleExpiry{Role: role, Version: md.Signed.Version, Expires: md.Signed.Expires, Online: role == manifest.RoleRolloutControl})
	}
	if r.snapshot != nil {
		out = append(out, RoleExpiry{Role: manifest.RoleSnapshot, Version: r.snapshot.Signed.Version, Expires: r.snapshot.Signed.Expires, Online: true})
	}
	if r.timestamp != nil {
		out = append(out, RoleExpiry{Role: manifest.RoleTimestamp, Version: r.timestamp.Signed.Version, Expires: r.timestamp.Signed.Expires, Online: true})
	}
	return out
}

// checkOfflineExpiry refuses a publication whose root or top-level
// targets document, as clients will hold them after it, has expired at
// now: devices refuse every update then, so publishing would only hide
// the problem behind fresh timestamps. A root rotation or a new targets
// version in the same publication counts with its new expiry, which is
// how an expired root or targets is renewed.
func (p *publisher) checkOfflineExpiry() error {
	r := p.r
	if !r.root.Signed.Expires.After(p.now) {
		return &ExpiredError{Role: manifest.RoleRoot, Version: r.root.Signed.Version, Expires: r.root.Signed.Expires, Now: p.now}
	}
	t, ok := p.next.targets[manifest.RoleTargets]
	if !ok {
		t, ok = r.targets[manifest.RoleTargets]
	}
	if ok && !t.Signed.Expires.After(p.now) {
		return &ExpiredError{Role: manifest.RoleTargets, Version: t.Signed.Version, Expires: t.Signed.Expires, Now: p.now}
	}
	return nil
}

// RenewTargets stages the targets role named role (top-level or
// delegated) unchanged, so that the next Publish signs a new version with
// a new expiry: how a targets role is kept alive, or revived after it
// expired, when no release is due. Like any change to an offline role it
// needs the role's keys at Publish, or an offline ceremony (ExportRole).
func (r *Repository) RenewTargets(role string) error {
	if _, ok := r.targets[role]; !ok || role == manifest.RoleRolloutControl {
		return fmt.Errorf("%w: %q is not a targets role of this repository", ErrUnknownRole, role)
	}
	r.markDirty(role)
	return nil
}
