package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/otaseal/otaseal/manifest"
)

// rolloutPresets are the named schedules of add --rollout. Each starts
// small, waits a day before widening, and reaches the whole fleet; the
// share of a wave is of the devices, the offset from --rollout-start.
var rolloutPresets = map[string]string{
	// canary: the usual release.
	"canary": "1%@0h,10%@24h,50%@72h,100%@7d",
	// cautious: a large fleet or a risky change (bootloader, partition
	// layout): a thousandth of the fleet first, two weeks to all.
	"cautious": "0.1%@0h,1%@24h,10%@72h,50%@7d,100%@14d",
	// fast: a security fix that must be out within a day, still with a
	// first wave to catch a bricking image.
	"fast": "10%@0h,50%@6h,100%@24h",
}

// rolloutHelp is the --rollout flag's help.
func rolloutHelp() string {
	names := make([]string, 0, len(rolloutPresets))
	for n := range rolloutPresets {
		names = append(names, fmt.Sprintf("%s (%s)", n, rolloutPresets[n]))
	}
	sort.Strings(names)
	return "staged rollout: waves SHARE%@OFFSET, comma-separated, e.g. \"1%@0h,10%@24h,100%@7d\" " +
		"(share with up to two decimals; offset from --rollout-start in h or d; the last wave 100%), or a preset: " +
		strings.Join(names, ", ") + ". Default: every device at once"
}

// parseRollout reads a --rollout value (a preset name or a wave list)
// into a schedule starting at start. Errors are usage errors.
func parseRollout(spec string, start time.Time) (*manifest.Rollout, error) {
	if p, ok := rolloutPresets[spec]; ok {
		spec = p
	}
	r := &manifest.Rollout{Start: start}
	for i, w := range strings.Split(spec, ",") {
		shareText, offsetText, ok := strings.Cut(strings.TrimSpace(w), "@")
		if !ok {
			return nil, usageErr("--rollout wave %d %q: want SHARE%%@OFFSET, e.g. 10%%@24h (or a preset: canary, cautious, fast)", i+1, w)
		}
		share, err := parseShare(shareText)
		if err != nil {
			return nil, usageErr("--rollout wave %d %q: %v", i+1, w, err)
		}
		offset, err := parseOffset(offsetText)
		if err != nil {
			return nil, usageErr("--rollout wave %d %q: %v", i+1, w, err)
		}
		r.Waves = append(r.Waves, manifest.Wave{Offset: offset, Share: share})
	}
	if err := r.Validate(); err != nil {
		return nil, usageErr("--rollout %q: %v (waves must rise in time, never fall in share, and end at 100%%)", spec, err)
	}
	return r, nil
}

// parseShare reads "12.5%" into basis points (1250).
func parseShare(s string) (int, error) {
	num, ok := strings.CutSuffix(s, "%")
	if !ok {
		return 0, fmt.Errorf("share %q: want a percentage such as 10%% or 0.5%%", s)
	}
	whole, frac, _ := strings.Cut(num, ".")
	if whole == "" || len(whole) > 3 || len(frac) > 2 || !digits(whole) || !digits(frac) || strings.HasSuffix(num, ".") {
		return 0, fmt.Errorf("share %q: want 0%% to 100%% with at most two decimals", s)
	}
	w, _ := strconv.Atoi(whole)
	f, _ := strconv.Atoi((frac + "00")[:2])
	bp := w*100 + f
	if bp > manifest.FullShare {
		return 0, fmt.Errorf("share %q: above 100%%", s)
	}
	return bp, nil
}

// parseOffset reads "36h" or "7d".
func parseOffset(s string) (time.Duration, error) {
	unit := time.Hour
	num, ok := strings.CutSuffix(s, "h")
	if !ok {
		if num, ok = strings.CutSuffix(s, "d"); !ok {
			return 0, fmt.Errorf("offset %q: want whole hours or days, such as 0h, 36h or 7d", s)
		}
		unit = 24 * time.Hour
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || !digits(num) || n > int64(manifest.MaxWaveOffset/unit) {
		return 0, fmt.Errorf("offset %q: want whole hours or days from 0 to %dd", s, manifest.MaxWaveOffset/(24*time.Hour))
	}
	return time.Duration(n) * unit, nil
}

func digits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// parseRolloutStart reads --rollout-start; empty means now, in UTC to the
// second (the schema's one spelling of a start).
func parseRolloutStart(s string) (time.Time, error) {
	if s == "" {
		return time.Now().UTC().Truncate(time.Second), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, usageErr("--rollout-start %q: want an RFC 3339 time such as 2026-05-01T08:00:00Z", s)
	}
	return t.UTC().Truncate(time.Second), nil
}

// formatSchedule writes a rollout the way --rollout reads it, "-" for an
// immediate release.
func formatSchedule(r *manifest.Rollout) string {
	if r == nil {
		return "-"
	}
	waves := make([]string, len(r.Waves))
	for i, w := range r.Waves {
		waves[i] = manifest.FormatShare(w.Share) + "@" + manifest.FormatOffset(w.Offset)
	}
	return strings.Join(waves, ",")
}

// currentWave says how far the rollout has got at now: "not started",
// "wave 2/4 (10%) until 2026-05-02 08:00 UTC" or "complete".
func currentWave(r *manifest.Rollout, now time.Time) string {
	if r == nil {
		return "all devices"
	}
	cur := r.CurrentWave(now)
	switch {
	case cur < 0:
		return "not started, wave 1 at " + formatTime(r.Start.Add(r.Waves[0].Offset))
	case cur == len(r.Waves)-1:
		return "complete (100%)"
	}
	return fmt.Sprintf("wave %d/%d (%s) until %s", cur+1, len(r.Waves), manifest.FormatShare(r.Waves[cur].Share),
		formatTime(r.Start.Add(r.Waves[cur+1].Offset)))
}
