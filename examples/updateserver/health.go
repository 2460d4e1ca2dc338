package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/otaseal/otaseal/fleet"
	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

// releaseIndex caches the repository's firmware releases for the report
// intake and status: a report naming a release the repository does not
// hold is refused. It is rebuilt at most once a second, when a report
// names a release it does not know (one just published).
type releaseIndex struct {
	mu       sync.Mutex
	releases map[string]*manifest.Firmware
	built    time.Time
}

// firmwareReleases returns the firmware entries of the top-level targets
// role and the roles it delegates to, the first of each path.
func firmwareReleases(repo *sign.Repository) map[string]*manifest.Firmware {
	out := map[string]*manifest.Firmware{}
	for p, tf := range targetsOf(repo) {
		if fw, err := manifest.FirmwareOf(tf); err == nil {
			out[p] = fw
		}
	}
	return out
}

// release returns the firmware release at target, rebuilding the index
// from the repository when it does not know target and was built over a
// second ago.
func (s *server) release(ctx context.Context, target string) (*manifest.Firmware, bool) {
	ix := &s.releases
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if fw, ok := ix.releases[target]; ok {
		return fw, true
	}
	if now := time.Now(); ix.releases == nil || now.Sub(ix.built) >= time.Second {
		repo, err := sign.OpenRepository(ctx, s.store, s.signOptions())
		if err != nil {
			s.log.Error("reading the releases failed", "err", err)
			return nil, false
		}
		ix.releases, ix.built = firmwareReleases(repo), now
		repo.Close()
	}
	fw, ok := ix.releases[target]
	return fw, ok
}

func (s *server) knownRelease(ctx context.Context, target string) bool {
	_, ok := s.release(ctx, target)
	return ok
}

// healthRules reads the repository's health rules (fleet.HealthRulesFile);
// none when the file does not exist.
func (s *server) healthRules() (*fleet.HealthRules, error) {
	b, err := readCapped(filepath.Join(s.cfg.Dir, fleet.HealthRulesFile), 64<<20)
	if errors.Is(err, os.ErrNotExist) {
		return &fleet.HealthRules{}, nil
	}
	if err != nil {
		return nil, err
	}
	return fleet.ParseHealthRules(b)
}

// evaluateHealth applies target's health rule to the attempts stored
// since its last pause, and pauses the release when the rule trips. One
// evaluation runs at a time; reports arriving meanwhile skip theirs (the
// running one sees them, or the next report does).
func (s *server) evaluateHealth(ctx context.Context, target string) {
	rules, err := s.healthRules()
	if err != nil {
		s.log.Error("health rules unreadable", "file", fleet.HealthRulesFile, "err", err)
		return
	}
	rule, ok := rules.Releases[target]
	if !ok {
		return
	}
	if !s.healthMu.TryLock() {
		return
	}
	defer s.healthMu.Unlock()
	st := s.reports.store
	last, _, err := st.lastPause(ctx, target)
	if err != nil {
		s.log.Error("reading pauses failed", "release", target, "err", err)
		return
	}
	attempts, failures, err := st.attempts(ctx, target, last.AfterReportID)
	if err != nil {
		s.log.Error("counting attempts failed", "release", target, "err", err)
		return
	}
	if !rule.Tripped(attempts, failures) {
		return
	}
	upTo, err := st.maxReportID(ctx, target)
	if err != nil {
		s.log.Error("counting attempts failed", "release", target, "err", err)
		return
	}
	reason := fmt.Sprintf("health rule: %d of %d attempts reverted or failed (%s)", failures, attempts, rule)
	p := fleet.HealthPause{Release: target, AfterReportID: upTo, Attempts: attempts, Failures: failures, At: s.now().UTC()}
	err = s.publishPause(ctx, target, reason)
	switch {
	case err == nil:
		p.Published = true
		s.log.Warn("release paused by its health rule", "release", target, "attempts", attempts, "failures", failures, "rule", rule.String())
	case errors.Is(err, errNoControlKey):
		s.log.Error("release's health rule tripped, but this server holds no rollout control key: pause it by hand (release rollout pause)",
			"release", target, "attempts", attempts, "failures", failures, "rule", rule.String())
	default:
		s.log.Error("release's health rule tripped, but publishing the pause failed; the next report tries again", "release", target, "err", err)
		return
	}
	if err := st.recordPause(ctx, p); err != nil {
		s.log.Error("recording the pause failed", "release", target, "err", err)
	}
}

var errNoControlKey = errors.New("no rollout control key")

// publishPause signs and publishes a pause of target with the rollout
// control key (and the snapshot and timestamp keys), unless the release
// is already paused or stopped. A control is online authority: it can
// only hold devices back, never widen the signed schedule.
func (s *server) publishPause(ctx context.Context, target, reason string) error {
	if s.cfg.ControlKey == nil {
		return errNoControlKey
	}
	s.checkMu.Lock()
	defer s.checkMu.Unlock()
	var err error
	for range 2 {
		if err = s.publishPauseLocked(ctx, target, reason); !errors.Is(err, sign.ErrConflict) {
			return err
		}
	}
	return err
}

func (s *server) publishPauseLocked(ctx context.Context, target, reason string) error {
	repo, err := sign.OpenRepository(ctx, s.store, s.signOptions())
	if err != nil {
		return err
	}
	defer repo.Close()
	ctl, err := repo.RolloutControl()
	if err != nil {
		return fmt.Errorf("the repository has no rollout control role: %w", err)
	}
	if cur, ok := ctl.Releases[target]; ok && (cur.State == manifest.ControlPaused || cur.State == manifest.ControlStopped) {
		return nil
	}
	if err := repo.SetRolloutControl(target, manifest.ReleaseControl{State: manifest.ControlPaused, Reason: reason}); err != nil {
		return err
	}
	return repo.Publish(ctx, s.signers)
}

// fleetStatus serves GET /fleet/status?release=TARGET.
func (s *server) fleetStatus(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if s.reports == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "this server takes no reports"})
		return
	}
	target := r.URL.Query().Get("release")
	if target == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "want ?release=TARGET"})
		return
	}
	st, err := s.releaseStatus(r.Context(), target)
	if errors.Is(err, errUnknownRelease) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
		return
	}
	if err != nil {
		s.log.Error("fleet status failed", "release", target, "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "status unavailable"})
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// controlStatus is the rollout control of a release in the read endpoint.
var errUnknownRelease = errors.New("unknown release")

// releaseStatus counts, per wave of target's schedule, the devices the
// server knows for its hardware, those whose wave has opened (eligible),
// and their latest attempts (countWaves).
func (s *server) releaseStatus(ctx context.Context, target string) (*fleet.ReleaseStatus, error) {
	fw, ok := s.release(ctx, target)
	if !ok {
		return nil, fmt.Errorf("%w %q", errUnknownRelease, target)
	}
	if _, err := s.reports.loadEnrolment(ctx); err != nil {
		return nil, err
	}
	devs, err := s.reports.store.devices(ctx)
	if err != nil {
		return nil, err
	}
	outs, err := s.reports.store.outcomes(ctx, target)
	if err != nil {
		return nil, err
	}
	out := &fleet.ReleaseStatus{Release: target, Version: fw.Version.String(), HardwareIDs: fw.HardwareIDs,
		Waves: countWaves(target, fw, s.now(), devs, outs)}
	if rules, err := s.healthRules(); err == nil {
		if rule, ok := rules.Releases[target]; ok {
			out.Rule = &rule
		}
	}
	if p, ok, err := s.reports.store.lastPause(ctx, target); err == nil && ok {
		out.LastPause = &p
	}
	repo, err := sign.OpenRepository(ctx, s.store, s.signOptions())
	if err != nil {
		return nil, err
	}
	defer repo.Close()
	if ctl, err := repo.RolloutControl(); err == nil {
		if rc, ok := ctl.Releases[target]; ok {
			out.Control = &fleet.ControlStatus{State: string(rc.State), CapShare: rc.CapShare, Reason: rc.Reason}
		}
	}
	return out, nil
}

// countWaves files the devices the server knows for fw's hardware, and
// their latest attempts on target (outs), by the wave of target's
// schedule their rollout bucket falls in; a wave's devices are eligible
// once it has opened at now. An immediate release is one wave of every
// device, open from the start.
func countWaves(target string, fw *manifest.Firmware, now time.Time, devs []knownDevice, outs []outcome) []fleet.WaveStatus {
	ro := fw.Rollout
	if ro == nil {
		ro = &manifest.Rollout{Waves: []manifest.Wave{{Share: manifest.FullShare}}}
	}
	waves := make([]fleet.WaveStatus, len(ro.Waves))
	for i, wv := range ro.Waves {
		opens := ro.Start.Add(wv.Offset)
		waves[i] = fleet.WaveStatus{Wave: i + 1, Share: wv.Share, Opens: opens, Open: !now.Before(opens)}
	}
	waveOf := func(rolloutID string) *fleet.WaveStatus {
		b := manifest.RolloutBucket(target, rolloutID)
		for i, wv := range ro.Waves {
			if b < wv.Share {
				return &waves[i]
			}
		}
		return &waves[len(waves)-1]
	}
	for _, d := range devs {
		if !fw.Supports(d.HardwareID) {
			continue
		}
		ws := waveOf(d.RolloutID)
		ws.Devices++
		if ws.Open {
			ws.Eligible++
		}
	}
	for _, o := range outs {
		ws := waveOf(o.RolloutID)
		ws.Attempted++
		switch o.Result {
		case fleet.Confirmed:
			ws.Confirmed++
		case fleet.Reverted:
			ws.Reverted++
		case fleet.Failed:
			ws.Failed++
		}
	}
	return waves
}
