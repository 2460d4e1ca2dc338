package main

import (
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

// durationFlag is a positive duration: Go's syntax ("36h", "90m") plus
// whole days ("365d"), since expiries are planned in days. Zero and
// negative values are usage errors: a document that is born expired
// makes every device refuse the repository.
type durationFlag struct {
	d   time.Duration
	set bool
}

func (f *durationFlag) String() string {
	if f == nil || f.d == 0 {
		return ""
	}
	if f.d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", f.d/(24*time.Hour))
	}
	return f.d.String()
}

func (f *durationFlag) Set(v string) error {
	d, err := parseDuration(v)
	if err != nil {
		return err
	}
	if d <= 0 {
		return fmt.Errorf("%s is not a positive duration", v)
	}
	f.d, f.set = d, true
	return nil
}

func parseDuration(v string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("%q: want a whole number of days such as 90d, or a Go duration such as 36h", v)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%q: want a duration such as 90d, 36h or 30m", v)
	}
	return d, nil
}

// defaultExpiry is the lifetime sign gives each top-level role.
var defaultExpiry = map[string]time.Duration{
	manifest.RoleRoot:      sign.DefaultRootExpiry,
	manifest.RoleTargets:   sign.DefaultTargetsExpiry,
	manifest.RoleSnapshot:  sign.DefaultSnapshotExpiry,
	manifest.RoleTimestamp: sign.DefaultTimestampExpiry,
}

// expiryFlags registers --ROLE-expiry for each of roles on fs.
func expiryFlags(fs *flag.FlagSet, roles ...string) map[string]*durationFlag {
	out := map[string]*durationFlag{}
	for _, role := range roles {
		f := &durationFlag{d: defaultExpiry[role]}
		fs.Var(f, role+"-expiry", fmt.Sprintf("lifetime of each new %s version, e.g. 90d or 36h", role))
		out[role] = f
	}
	return out
}

// applyExpiry sets the lifetimes of flags in opts.
func applyExpiry(opts *sign.RepositoryOptions, flags map[string]*durationFlag) {
	for role, f := range flags {
		switch role {
		case manifest.RoleRoot:
			opts.RootExpiry = f.d
		case manifest.RoleTargets:
			opts.TargetsExpiry = f.d
		case manifest.RoleSnapshot:
			opts.SnapshotExpiry = f.d
		case manifest.RoleTimestamp:
			opts.TimestampExpiry = f.d
		}
	}
}

// expiryAdvice says who renews a role and how.
func expiryAdvice(e sign.RoleExpiry) string {
	switch {
	case e.Role == manifest.RoleRoot:
		return "sign a new root: release rotate --repo DIR --root-expiry 365d --key ROOT-KEY... --key SNAPSHOT-KEY,TIMESTAMP-KEY"
	case e.Online:
		return "the update server re-signs it: is it running with the " + e.Role + " key?"
	}
	return "re-sign it: release publish --repo DIR --renew " + e.Role + " --key KEY..."
}

// warnExpiries prints a warning for every role of s that has expired or
// expires inside its warning window (window(role); nil: sign's default),
// and returns the worst state.
func warnExpiries(e *env, s *session, window func(role string) time.Duration) sign.ExpiryState {
	if window == nil {
		window = sign.ExpiryWarning
	}
	worst := sign.ExpiryOK
	now := e.now()
	for _, x := range s.repo.Expiries() {
		st := x.State(now, window(x.Role))
		worst = max(worst, st)
		switch st {
		case sign.ExpiryExpired:
			fmt.Fprintf(e.stderr, "warning: %s version %d EXPIRED %s ago (%s): devices refuse it; %s\n",
				x.Role, x.Version, now.Sub(x.Expires).Round(time.Minute), formatTime(x.Expires), expiryAdvice(x))
		case sign.ExpirySoon:
			fmt.Fprintf(e.stderr, "warning: %s version %d expires in %s (%s); %s\n",
				x.Role, x.Version, roundLeft(x.Expires.Sub(now)), formatTime(x.Expires), expiryAdvice(x))
		}
	}
	return worst
}

// roundLeft formats a remaining time for people: days when it is days.
func roundLeft(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
	}
	return d.Round(time.Minute).String()
}

// refuseExpiredRoot fails before any work when the root in force has
// expired: nothing published under it reaches a device. Only a rotation
// (which signs a new root with a new expiry) may proceed.
func refuseExpiredRoot(e *env, s *session) error {
	root := s.repo.Root()
	if now := e.now(); !root.Signed.Expires.After(now) {
		return &sign.ExpiredError{Role: manifest.RoleRoot, Version: root.Signed.Version, Expires: root.Signed.Expires, Now: now}
	}
	return nil
}

// renewExpiredTargets stages a new version of the top-level targets role
// when it has expired: a root renewed on its own would still be refused
// by sign (and by devices) under an expired targets, and a targets
// renewal alone under an expired root; one publish renews both. The
// publish then needs the targets keys, and says so.
func renewExpiredTargets(e *env, s *session) error {
	t, ok := s.repo.Targets(manifest.RoleTargets)
	if !ok || t.Signed.Expires.After(e.now()) || slices.Contains(s.repo.StagedChanges().Roles, manifest.RoleTargets) {
		return nil
	}
	fmt.Fprintf(e.stderr, "targets version %d expired %s: renewing it in the same publish (give the targets keys too)\n", t.Signed.Version, formatTime(t.Signed.Expires))
	return s.repo.RenewTargets(manifest.RoleTargets)
}
