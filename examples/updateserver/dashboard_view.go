package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

// dashPageSize is how many releases one page of the fleet page lists; the
// rollouts and fleet counts shown are those of the releases on the page,
// so a repository of thousands of releases renders in the time of one page.
const dashPageSize = 50

// waveCounts are the devices of one wave of a release, as the fleet
// reports tell them: eligible (in the wave's share and the hardware the
// release is for), attempted (reported an install of it), and the outcome
// of the attempts.
type waveCounts struct {
	Eligible, Attempted, Confirmed, Reverted, Failed int
}

// fleetStats is what the page reads of the fleet reports database. The
// page shows no device counts without one.
type fleetStats interface {
	// WaveCounts returns the counts of each wave of the release fw at
	// path, in wave order (one entry for a release without a schedule).
	WaveCounts(ctx context.Context, path string, fw *manifest.Firmware) ([]waveCounts, error)
	// Health says which database holds the reports and how many reports
	// per minute arrived lately.
	Health(ctx context.Context) (database string, perMinute float64, err error)
	// HealthRule describes the release's health rule ("" for none) and
	// whether it has tripped.
	HealthRule(ctx context.Context, path string) (rule string, tripped bool, err error)
}

// dashView is everything the page template shows.
type dashView struct {
	Now        time.Time
	Roles      []roleRow
	Hardware   []hardwareGroup
	Rollouts   []rolloutView
	Health     healthView
	Page       int
	Pages      int
	Releases   int // on all pages
	Operator   string
	CanAct     bool
	StatsError string
}

type roleRow struct {
	Role      string
	Version   int64
	Expires   time.Time
	Threshold int
	Keys      []string
	// State is "ok", "warn" (inside expiryWarnWindow) or "expired".
	State string
}

type hardwareGroup struct {
	ID       string
	Releases []releaseRow
}

type releaseRow struct {
	Path            string
	Version         string
	SecurityVersion uint64
	Severity        string
	Advisories      []string
	Notes           string
	Size            int64
	Deltas          int
	// DeltaSaving is the best saving of a delta over the full image, in
	// percent; 0 without deltas.
	DeltaSaving int
	Withdrawn   string
	semver      manifest.Version
}

type rolloutView struct {
	Path      string
	Version   string
	Schedule  string
	Start     time.Time
	Current   string
	Control   string
	Paused    bool
	Stopped   bool
	Waves     []waveView
	Chart     *chartView
	Rule      string
	Tripped   bool
	Withdrawn bool
}

type waveView struct {
	N       int
	Share   string
	From    time.Time
	Reached bool
	Counts  *waveCounts
}

type healthView struct {
	TimestampVersion int64
	TimestampAge     string
	LastResign       string
	Database         string
	ReportsPerMinute string
	Problems         []string
}

// repoModel is what the page reads of one published repository. It
// changes only when the repository does, so the page keeps it between
// requests (dashboard.model).
type repoModel struct {
	roles     []roleRow // State not set: it depends on the time
	releases  []release
	control   *manifest.Control // nil without a control role
	tsVersion int64
	signedAt  time.Time // zero when the timestamp records none
}

// loadModel reads repo for the page.
func loadModel(repo *sign.Repository) (*repoModel, error) {
	roles, err := roleRows(repo)
	if err != nil {
		return nil, err
	}
	releases, err := releaseRows(repo)
	if err != nil {
		return nil, err
	}
	m := &repoModel{roles: roles, releases: releases}
	m.control, _ = repo.RolloutControl()
	if ts := repo.Timestamp(); ts != nil {
		m.tsVersion = ts.Signed.Version
		if at, ok, err := manifest.SignedAt(&ts.Signed); err == nil && ok {
			m.signedAt = at
		}
	}
	return m, nil
}

// buildView lays out page (from 1) of m at now with the fleet counts of
// the releases on it; warn says how long before its expiry a role is
// shown as a warning.
func buildView(ctx context.Context, m *repoModel, stats fleetStats, now time.Time, page int, warn func(role string) time.Duration) *dashView {
	v := &dashView{Now: now, Page: page}
	for _, r := range m.roles {
		r.State = "ok"
		switch {
		case r.Expires.IsZero():
		case !now.Before(r.Expires):
			r.State = "expired"
		case r.Expires.Sub(now) < warn(r.Role):
			r.State = "warn"
		}
		v.Roles = append(v.Roles, r)
	}
	releases := m.releases
	v.Releases = len(releases)
	v.Pages = max(1, (len(releases)+dashPageSize-1)/dashPageSize)
	v.Page = min(max(page, 1), v.Pages)
	lo := (v.Page - 1) * dashPageSize
	onPage := releases[lo:min(lo+dashPageSize, len(releases))]

	control := m.control
	for _, rel := range onPage {
		if n := len(v.Hardware); n == 0 || v.Hardware[n-1].ID != rel.hw {
			v.Hardware = append(v.Hardware, hardwareGroup{ID: rel.hw})
		}
		g := &v.Hardware[len(v.Hardware)-1]
		g.Releases = append(g.Releases, rel.releaseRow)
		fw := rel.fw
		var rc *manifest.ReleaseControl
		if control != nil {
			if c, ok := control.Releases[rel.Path]; ok {
				rc = &c
			}
		}
		if fw.Rollout == nil && rc == nil {
			continue
		}
		rv := rolloutView{Path: rel.Path, Version: rel.Version, Schedule: scheduleText(fw.Rollout),
			Current: waveNow(fw.Rollout, now), Control: controlText(rc), Withdrawn: fw.Withdrawn != nil,
			Paused: rc != nil && rc.State == manifest.ControlPaused, Stopped: rc != nil && rc.State == manifest.ControlStopped}
		if fw.Rollout != nil {
			rv.Start = fw.Rollout.Start
			for i, w := range fw.Rollout.Waves {
				from := fw.Rollout.Start.Add(w.Offset)
				rv.Waves = append(rv.Waves, waveView{N: i + 1, Share: manifest.FormatShare(w.Share), From: from, Reached: !now.Before(from)})
			}
		}
		if stats != nil && v.StatsError == "" {
			if err := addCounts(ctx, stats, &rv, fw); err != nil {
				v.StatsError = err.Error()
			}
		}
		v.Rollouts = append(v.Rollouts, rv)
	}
	return v
}

// addCounts fills the wave counts, the chart and the health rule of rv.
func addCounts(ctx context.Context, stats fleetStats, rv *rolloutView, fw *manifest.Firmware) error {
	counts, err := stats.WaveCounts(ctx, rv.Path, fw)
	if err != nil {
		return fmt.Errorf("fleet reports: %w", err)
	}
	if len(rv.Waves) == 0 && len(counts) > 0 {
		rv.Waves = []waveView{{N: 1, Share: "100%", Reached: true}}
	}
	for i := range rv.Waves {
		if i < len(counts) {
			rv.Waves[i].Counts = &counts[i]
		}
	}
	rv.Chart = drawChart(rv.Waves)
	rv.Rule, rv.Tripped, err = stats.HealthRule(ctx, rv.Path)
	if err != nil {
		return fmt.Errorf("fleet reports: %w", err)
	}
	return nil
}

// release is one firmware target with what sorting needs.
type release struct {
	releaseRow
	hw string
	fw *manifest.Firmware
}

// eachTargetsRole calls f for the top-level targets role and every role
// it delegates to (hash bins included), in the order a client searches
// them, each once, until f returns false.
func eachTargetsRole(repo *sign.Repository, f func(role string, md *manifest.Metadata[manifest.Targets]) bool) {
	for _, role := range repo.TargetsRoles() {
		if md, ok := repo.Targets(role); ok && !f(role, md) {
			return
		}
	}
}

// targetsOf returns every target of the top-level role and its
// delegations, by path; the first role to list a path wins.
func targetsOf(repo *sign.Repository) map[string]*manifest.TargetFile {
	out := map[string]*manifest.TargetFile{}
	eachTargetsRole(repo, func(_ string, md *manifest.Metadata[manifest.Targets]) bool {
		for p, tf := range md.Signed.Targets {
			if _, dup := out[p]; !dup {
				out[p] = tf
			}
		}
		return true
	})
	return out
}

// releaseRows returns one row per firmware release and hardware ID,
// grouped by hardware ID (sorted) and newest version first.
func releaseRows(repo *sign.Repository) ([]release, error) {
	all := targetsOf(repo)
	best := map[string]int{}
	count := map[string]int{}
	for _, tf := range all {
		d, err := manifest.DeltaOf(tf)
		if err != nil {
			continue
		}
		count[d.To.Path]++
		if d.To.Length > 0 {
			saving := int(100 - tf.Length*100/d.To.Length)
			best[d.To.Path] = max(best[d.To.Path], saving)
		}
	}
	var out []release
	for p, tf := range all {
		fw, err := manifest.FirmwareOf(tf)
		if err != nil {
			continue
		}
		row := releaseRow{Path: p, Version: fw.Version.String(), SecurityVersion: fw.SecurityVersion,
			Severity: string(fw.Severity), Advisories: fw.Advisories, Notes: fw.Notes,
			Size: tf.Length, Deltas: count[p], DeltaSaving: best[p], semver: fw.Version}
		if fw.Withdrawn != nil {
			row.Withdrawn = fw.Withdrawn.Reason
		}
		for _, hw := range fw.HardwareIDs {
			out = append(out, release{releaseRow: row, hw: hw, fw: fw})
		}
	}
	slices.SortFunc(out, func(a, b release) int {
		return cmp.Or(strings.Compare(a.hw, b.hw), b.semver.Compare(a.semver), strings.Compare(a.Path, b.Path))
	})
	return out, nil
}

// roleRows lists every role of the repository with its keys and expiry.
func roleRows(repo *sign.Repository) ([]roleRow, error) {
	policy, err := repo.Policy()
	if err != nil {
		return nil, err
	}
	type doc struct {
		version int64
		expires time.Time
	}
	docs := map[string]doc{manifest.RoleRoot: {repo.Root().Signed.Version, repo.Root().Signed.Expires}}
	roles := []string{manifest.RoleRoot, manifest.RoleTargets}
	if t, ok := repo.Targets(manifest.RoleTargets); ok {
		docs[manifest.RoleTargets] = doc{t.Signed.Version, t.Signed.Expires}
		if d := t.Signed.Delegations; d != nil {
			for _, r := range d.Roles {
				roles = append(roles, r.Name)
				if dt, ok := repo.Targets(r.Name); ok {
					docs[r.Name] = doc{dt.Signed.Version, dt.Signed.Expires}
				}
			}
		}
	}
	roles = append(roles, manifest.RoleSnapshot, manifest.RoleTimestamp)
	if ts := repo.Timestamp(); ts != nil {
		docs[manifest.RoleTimestamp] = doc{ts.Signed.Version, ts.Signed.Expires}
		if snap := repo.Snapshot(); snap != nil {
			docs[manifest.RoleSnapshot] = doc{snap.Signed.Version, snap.Signed.Expires}
		}
	}
	var rows []roleRow
	for _, role := range roles {
		rp, err := policy.Role(role)
		if err != nil {
			return nil, err
		}
		d := docs[role]
		row := roleRow{Role: role, Version: d.version, Expires: d.expires, Threshold: rp.Threshold}
		for _, id := range rp.KeyIDs() {
			row.Keys = append(row.Keys, fmt.Sprintf("%s (%s)", id[:min(len(id), 12)], rp.Keys[id].Scheme))
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// scheduleText writes a rollout schedule for people: "1% at +0h, 100% at +7d".
func scheduleText(r *manifest.Rollout) string {
	if r == nil {
		return "every device at once"
	}
	waves := make([]string, len(r.Waves))
	for i, w := range r.Waves {
		waves[i] = manifest.FormatShare(w.Share) + " at +" + manifest.FormatOffset(w.Offset)
	}
	return strings.Join(waves, ", ")
}

// waveNow says how far the schedule has got at now.
func waveNow(r *manifest.Rollout, now time.Time) string {
	if r == nil {
		return "all devices"
	}
	cur := r.CurrentWave(now)
	switch {
	case cur < 0:
		return "not started"
	case cur == len(r.Waves)-1:
		return "complete"
	}
	return fmt.Sprintf("wave %d of %d (%s)", cur+1, len(r.Waves), manifest.FormatShare(r.Waves[cur].Share))
}

func controlText(rc *manifest.ReleaseControl) string {
	if rc == nil {
		return "none"
	}
	s := string(rc.State)
	if rc.State == manifest.ControlCapped {
		s += " at " + manifest.FormatShare(rc.CapShare)
	}
	if rc.Reason != "" {
		s += ": " + rc.Reason
	}
	return s
}

// ageText writes a duration for people: "3m", "2h5m", "-" for none.
func ageText(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	return d.Truncate(time.Second).String()
}
