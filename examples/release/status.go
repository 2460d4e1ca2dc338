package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

// Exit codes of status beyond 0, 1 and 2, for monitoring (a Nagios-style
// check maps 3 to WARNING and 4 to CRITICAL).
const (
	exitExpiresSoon = 3
	exitExpired     = 4
)

func cmdStatus(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "status", "--repo DIR [--warn-ROLE D]", `
Prints every role of the published repository with its version, expiry,
the time left and who renews it, for a person or a monitoring check.

Exit status: 0 when every role is outside its warning window, 3 when one
expires inside it, 4 when one has expired (devices refuse the repository
then), 1 when the repository cannot be read, 2 on a usage error.
Delegated targets roles use the targets window, the rollout control role
the timestamp window. Durations take Go syntax or whole days: 30d, 36h.`)
	repoDir := fs.String("repo", "", "repository directory")
	warn := map[string]*durationFlag{}
	for _, role := range topRoles {
		warn[role] = &durationFlag{d: sign.ExpiryWarning(role)}
		fs.Var(warn[role], "warn-"+role, "warning window of the "+role+" role")
	}
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected arguments %q", fs.Args())
	}
	s, err := openPublished(ctx, *repoDir)
	if err != nil {
		return err
	}
	defer s.close()
	window := func(role string) time.Duration {
		switch role {
		case manifest.RoleRoot, manifest.RoleTargets, manifest.RoleSnapshot, manifest.RoleTimestamp:
			return warn[role].d
		case manifest.RoleRolloutControl:
			return warn[manifest.RoleTimestamp].d
		}
		return warn[manifest.RoleTargets].d
	}

	now := e.now()
	worst := sign.ExpiryOK
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tVERSION\tEXPIRES\tLEFT\tSTATE\tRENEWED BY")
	for _, x := range s.repo.Expiries() {
		st := x.State(now, window(x.Role))
		worst = max(worst, st)
		left := "-"
		if st != sign.ExpiryExpired {
			left = roundLeft(x.Expires.Sub(now))
		}
		by := "offline keys (release tool)"
		if x.Online {
			by = "online keys (update server)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", x.Role, x.Version, formatTime(x.Expires), left, st, by)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	switch worst {
	case sign.ExpiryExpired:
		warnExpiries(e, s, window)
		return &exitError{exitExpired, fmt.Errorf("a role has expired: devices refuse the repository")}
	case sign.ExpirySoon:
		warnExpiries(e, s, window)
		return &exitError{exitExpiresSoon, fmt.Errorf("a role expires inside its warning window")}
	}
	return nil
}
