package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/otaseal/otaseal/manifest"
)

// reportStats is the fleet page's view of the report database: the
// per-wave counts of release status (countWaves), the health rules and
// the pauses they caused, and the ingest rate of this server.
type reportStats struct {
	s  *server
	db string // "sqlite" or "postgres"

	mu     sync.Mutex
	devs   map[string][]knownDevice // by hardware ID
	devsAt time.Time
	// perWave is, by release, how many of devs fall in each wave of its
	// schedule: a keyed hash per device and release, worth keeping while
	// devs is (a published release's schedule never changes).
	perWave map[string][]int
}

// devicesTTL is how long the page reuses its list of known devices: a
// fleet of 100,000 devices is one query per page view at most this often.
const devicesTTL = 15 * time.Second

func newReportStats(s *server, db string) *reportStats { return &reportStats{s: s, db: db} }

// devices returns the devices the server knows (enrolled or reported), by
// hardware ID.
func (r *reportStats) devices(ctx context.Context) (map[string][]knownDevice, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.devs != nil && time.Since(r.devsAt) < devicesTTL {
		return r.devs, nil
	}
	if _, err := r.s.reports.loadEnrolment(ctx); err != nil {
		return nil, err
	}
	devs, err := r.s.reports.store.devices(ctx)
	if err != nil {
		return nil, err
	}
	byHW := map[string][]knownDevice{}
	for _, d := range devs {
		byHW[d.HardwareID] = append(byHW[d.HardwareID], d)
	}
	r.devs, r.devsAt, r.perWave = byHW, time.Now(), map[string][]int{}
	return byHW, nil
}

func (r *reportStats) WaveCounts(ctx context.Context, path string, fw *manifest.Firmware) ([]waveCounts, error) {
	perWave, err := r.devicesPerWave(ctx, path, fw)
	if err != nil {
		return nil, err
	}
	outs, err := r.s.reports.store.outcomes(ctx, path)
	if err != nil {
		return nil, err
	}
	var out []waveCounts
	for i, w := range countWaves(path, fw, r.s.now(), nil, outs) {
		c := waveCounts{Attempted: w.Attempted, Confirmed: w.Confirmed, Reverted: w.Reverted, Failed: w.Failed}
		if w.Open {
			c.Eligible = perWave[i]
		}
		out = append(out, c)
	}
	return out, nil
}

// devicesPerWave counts the known devices of fw's hardware in each wave
// of the release at path.
func (r *reportStats) devicesPerWave(ctx context.Context, path string, fw *manifest.Firmware) ([]int, error) {
	byHW, err := r.devices(ctx)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	perWave, ok := r.perWave[path]
	r.mu.Unlock()
	if ok {
		return perWave, nil
	}
	var devs []knownDevice
	for _, hw := range fw.HardwareIDs {
		devs = append(devs, byHW[hw]...)
	}
	for _, w := range countWaves(path, fw, r.s.now(), devs, nil) {
		perWave = append(perWave, w.Devices)
	}
	r.mu.Lock()
	r.perWave[path] = perWave
	r.mu.Unlock()
	return perWave, nil
}

func (r *reportStats) Health(context.Context) (string, float64, error) {
	return r.db, r.s.reports.ingest.perMinute(r.s.now()), nil
}

func (r *reportStats) HealthRule(ctx context.Context, path string) (string, bool, error) {
	rules, err := r.s.healthRules()
	if err != nil {
		return "", false, err
	}
	rule, ok := rules.Releases[path]
	if !ok {
		return "", false, nil
	}
	text := "pause when " + rule.String()
	p, tripped, err := r.s.reports.store.lastPause(ctx, path)
	if err != nil {
		return "", false, err
	}
	if tripped {
		text += fmt.Sprintf("; tripped %s (%d of %d attempts failed)", p.At.UTC().Format("2006-01-02 15:04 MST"), p.Failures, p.Attempts)
	}
	return text, tripped, nil
}

// ingestRate counts the reports this server stored per minute, over the
// last ingestMinutes whole minutes, for the fleet page.
type ingestRate struct {
	mu      sync.Mutex
	minutes [ingestMinutes + 1]struct{ minute, n int64 }
}

const ingestMinutes = 5

func (r *ingestRate) add(now time.Time) {
	m := now.Unix() / 60
	r.mu.Lock()
	defer r.mu.Unlock()
	b := &r.minutes[m%int64(len(r.minutes))]
	if b.minute != m {
		b.minute, b.n = m, 0
	}
	b.n++
}

// perMinute is the mean over the last ingestMinutes minutes, the current
// one included.
func (r *ingestRate) perMinute(now time.Time) float64 {
	m := now.Unix() / 60
	r.mu.Lock()
	defer r.mu.Unlock()
	var n int64
	for _, b := range r.minutes {
		if b.minute > m-ingestMinutes && b.minute <= m {
			n += b.n
		}
	}
	return float64(n) / ingestMinutes
}
