package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/otaseal/otaseal/manifest"
)

func cmdInspect(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "inspect", "--repo DIR", `
Prints the repository as tables: each role with its version, expiry,
threshold and keys; the releases for each hardware ID, oldest first; and
each release's rollout schedule, how far it has got now, its online
control (paused, capped, stopped) and whether it was withdrawn; the
recipients of encrypted releases; the deltas with their size and what they
save over the full image.
Targets staged for a ceremony but not yet published are marked "staged".`)
	repoDir := fs.String("repo", "", "repository directory")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected arguments %q", fs.Args())
	}
	s, err := openSession(ctx, *repoDir)
	if err != nil {
		return err
	}
	defer s.close()
	if err := printRoles(ctx, e.stdout, s); err != nil {
		return err
	}
	if err := printTargets(e.stdout, s); err != nil {
		return err
	}
	warnExpiries(e, s, nil)
	return nil
}

func formatTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") }

func printRoles(ctx context.Context, w io.Writer, s *session) error {
	root := s.repo.Root()
	policy, err := s.repo.Policy()
	if err != nil {
		return err
	}
	versions := map[string]string{manifest.RoleRoot: fmt.Sprint(root.Signed.Version)}
	expiries := map[string]string{manifest.RoleRoot: formatTime(root.Signed.Expires)}
	roles := []string{manifest.RoleRoot, manifest.RoleTargets}
	if t, ok := s.repo.Targets(manifest.RoleTargets); ok {
		versions[manifest.RoleTargets] = fmt.Sprint(t.Signed.Version)
		expiries[manifest.RoleTargets] = formatTime(t.Signed.Expires)
		if d := t.Signed.Delegations; d != nil {
			for _, r := range d.Roles {
				roles = append(roles, r.Name)
				if dt, ok := s.repo.Targets(r.Name); ok {
					versions[r.Name] = fmt.Sprint(dt.Signed.Version)
					expiries[r.Name] = formatTime(dt.Signed.Expires)
				}
			}
		}
	}
	roles = append(roles, manifest.RoleSnapshot, manifest.RoleTimestamp)
	if ts := s.repo.Timestamp(); ts != nil {
		versions[manifest.RoleTimestamp] = fmt.Sprint(ts.Signed.Version)
		expiries[manifest.RoleTimestamp] = formatTime(ts.Signed.Expires)
		if snap := s.repo.Snapshot(); snap != nil {
			versions[manifest.RoleSnapshot] = fmt.Sprint(snap.Signed.Version)
			expiries[manifest.RoleSnapshot] = formatTime(snap.Signed.Expires)
		}
	}

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tVERSION\tEXPIRES\tTHRESHOLD\tKEYS")
	for _, role := range roles {
		rp, err := policy.Role(role)
		if err != nil {
			return err
		}
		var keys []string
		for _, id := range rp.KeyIDs() {
			keys = append(keys, fmt.Sprintf("%s (%s)", shortID(id), rp.Keys[id].Scheme))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d of %d\t%s\n", role, or(versions[role], "-"), or(expiries[role], "-"),
			rp.Threshold, len(rp.Keys), strings.Join(keys, ", "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if c := s.repo.StagedChanges(); s.staged() {
		fmt.Fprintf(w, "\nstaged, not published: %d target(s)", len(c.Targets))
		if c.Root {
			fmt.Fprint(w, ", a new root")
		}
		if !c.PinnedAt.IsZero() {
			fmt.Fprintf(w, "; documents to sign dated %s", formatTime(c.PinnedAt))
		}
		fmt.Fprintln(w)
	}
	return nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// allTargets returns the targets of the top-level role and its delegations.
func allTargets(s *session) map[string]*manifest.TargetFile {
	out := map[string]*manifest.TargetFile{}
	for _, m := range allTargetsRoles(s) {
		for p, tf := range m.Signed.Targets {
			if _, dup := out[p]; !dup {
				out[p] = tf
			}
		}
	}
	return out
}

// release is one firmware target of the repository.
type release struct {
	path string
	tf   *manifest.TargetFile
	fw   *manifest.Firmware
}

func printTargets(w io.Writer, s *session) error {
	staged := map[string]bool{}
	for _, p := range s.repo.StagedChanges().Targets {
		staged[p] = true
	}
	state := func(path string) string {
		if staged[path] {
			return "staged"
		}
		return "published"
	}
	targets := allTargets(s)
	paths := make([]string, 0, len(targets))
	for p := range targets {
		paths = append(paths, p)
	}
	sort.Strings(paths)

	byHW := map[string][]release{}
	byPath := map[string]release{}
	type patch struct {
		path string
		tf   *manifest.TargetFile
		d    *manifest.Delta
	}
	var patches []patch
	for _, p := range paths {
		e, err := manifest.ReadEntry(targets[p])
		if err != nil {
			continue // a plain TUF target
		}
		switch {
		case e.Firmware != nil:
			r := release{p, targets[p], e.Firmware}
			byPath[p] = r
			for _, hw := range e.Firmware.HardwareIDs {
				byHW[hw] = append(byHW[hw], r)
			}
		case e.Delta != nil:
			patches = append(patches, patch{p, targets[p], e.Delta})
		}
	}

	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HARDWARE ID\tVERSION\tSECURITY\tSEVERITY\tSIZE\tADVISORIES\tSTATE\tNOTES")
	hws := make([]string, 0, len(byHW))
	for hw := range byHW {
		hws = append(hws, hw)
	}
	sort.Strings(hws)
	for _, hw := range hws {
		rels := byHW[hw]
		slices.SortStableFunc(rels, func(a, b release) int { return a.fw.Version.Compare(b.fw.Version) })
		for _, r := range rels {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", hw, r.fw.Version, r.fw.SecurityVersion, or(string(r.fw.Severity), "-"),
				size(r.tf.Length), or(strings.Join(r.fw.Advisories, ", "), "-"), state(r.path), oneLine(r.fw.Notes))
		}
	}
	if len(hws) == 0 {
		fmt.Fprintln(tw, "(no releases)")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(hws) > 0 {
		ctl, _ := s.repo.RolloutControl() // nil without a control role
		if err := printRollouts(w, hws, byHW, ctl, time.Now()); err != nil {
			return err
		}
		if err := printEncryption(w, hws, byHW); err != nil {
			return err
		}
	}

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DELTA\tFROM\tTO\tFORMAT\tSIZE\tIMAGE\tSAVES\tSTATE")
	for _, p := range patches {
		from, to := p.d.From.Path, p.d.To.Path
		if r, ok := byPath[from]; ok {
			from = r.fw.Version.String()
		}
		if r, ok := byPath[to]; ok {
			to = r.fw.Version.String()
		}
		saves := "-"
		if p.d.To.Length > 0 {
			saves = fmt.Sprintf("%.1f%%", 100*(1-float64(p.tf.Length)/float64(p.d.To.Length)))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.path, from, to, p.d.Format, size(p.tf.Length), size(p.d.To.Length), saves, state(p.path))
	}
	if len(patches) == 0 {
		fmt.Fprintln(tw, "(no deltas)")
	}
	return tw.Flush()
}

// oneLine shortens notes to one table cell.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return or(s, "-")
}

// printRollouts prints each release's rollout schedule, how far it has
// got at now, its online control (ctl, nil without a control role) and
// its withdrawal.
func printRollouts(w io.Writer, hws []string, byHW map[string][]release, ctl *manifest.Control, now time.Time) error {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HARDWARE ID\tVERSION\tROLLOUT START\tSCHEDULE\tNOW\tCONTROL\tWITHDRAWN")
	for _, hw := range hws {
		for _, r := range byHW[hw] {
			start, wave, control, withdrawn := "-", currentWave(r.fw.Rollout, now), "-", "-"
			if ro := r.fw.Rollout; ro != nil {
				start = formatTime(ro.Start)
			}
			if ctl != nil {
				if rc, ok := ctl.Releases[r.path]; ok {
					control = formatControl(&rc)
				}
			}
			if wd := r.fw.Withdrawn; wd != nil {
				wave = "withdrawn: no device installs it"
				withdrawn = oneLine(wd.Reason)
				if len(wd.Advisories) > 0 {
					withdrawn += " (" + strings.Join(wd.Advisories, ", ") + ")"
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", hw, r.fw.Version, start, formatSchedule(r.fw.Rollout), wave, control, withdrawn)
		}
	}
	return tw.Flush()
}
