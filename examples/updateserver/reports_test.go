package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/fleet"
	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

// testDevice is a simulated device that reports with its enrolled key.
type testDevice struct {
	id, rolloutID string
	key           ed25519.PrivateKey
	seq           atomic.Uint64
}

func newTestDevices(t testing.TB, n int) []*testDevice {
	ds := make([]*testDevice, n)
	for i := range ds {
		ds[i] = &testDevice{id: fmt.Sprintf("gw-%05d", i), rolloutID: fmt.Sprintf("serial-%05d", i), key: testDeviceKey(t)}
	}
	return ds
}

// writeEnrolment writes the enrolment file of ds and returns its path.
func writeEnrolment(t testing.TB, dir string, ds []*testDevice) string {
	e := fleet.NewEnrolment()
	for _, d := range ds {
		require.NoError(t, e.Add(fleet.Device{ID: d.id, HardwareID: hardwareID, RolloutID: d.rolloutID, PublicKey: d.key.Public().(ed25519.PublicKey)}))
	}
	b, err := e.Marshal()
	require.NoError(t, err)
	p := filepath.Join(dir, "devices.json")
	require.NoError(t, os.WriteFile(p, b, 0o644))
	return p
}

// report builds d's report number seq on the test release.
func (d *testDevice) report(seq uint64, res fleet.Result) *fleet.Report {
	r := &fleet.Report{DeviceID: d.id, RolloutID: d.rolloutID, HardwareID: hardwareID, Seq: seq,
		Running: fleet.Release{Target: "factory", Version: "2.4.0"}, Tried: fleet.Release{Target: firmwarePath, Version: "2.4.1"},
		Result: res, Metadata: fleet.MetadataVersions{Root: 1, Timestamp: 1, Snapshot: 1, Targets: 1}}
	switch res {
	case fleet.Confirmed:
		r.Running = r.Tried
	case fleet.Failed:
		r.ErrorClass = fleet.ErrorInstall
	case fleet.Skipped:
		r.SkipReason = fleet.SkipPaused
	}
	return r
}

func (d *testDevice) seal(t testing.TB, r *fleet.Report) []byte {
	b, err := fleet.Seal(r, d.key)
	require.NoError(t, err)
	return b
}

// post sends body to the server's report endpoint; it returns the status
// and the answer.
func post(hc *http.Client, base string, body []byte) (int, string, error) {
	resp, err := hc.Post(base+reportsPath, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b), nil
}

// reportServer starts a server taking reports into a store of kind from
// ds; with control, the repository delegates rollout control and the
// server holds its key.
func reportServer(t *testing.T, kind string, ds []*testDevice, control bool) (*running, *testRepo, reportStore) {
	repo := newRepo(t, 1024, time.Hour)
	if control {
		withControl(t, repo)
	}
	st, _ := openTestStore(t, kind)
	cfg := testConfig(t, repo, newClock(t0))
	cfg.Reports, cfg.Enrolment = st, writeEnrolment(t, t.TempDir(), ds)
	if control {
		cfg.ControlKey = loadKey(t, controlKeyFile)
	}
	return start(t, cfg, nil), repo, st
}

// dbState is everything the store holds, for "nothing changed" checks.
func dbState(t testing.TB, st reportStore) string {
	s := st.(*sqlStore)
	var b strings.Builder
	for _, q := range []string{
		`SELECT device_id, hardware_id, rollout_id, last_seq, last_digest FROM devices ORDER BY device_id`,
		`SELECT id, device_id, seq, result, digest FROM reports ORDER BY id`,
		`SELECT device_id, target, result, report_id FROM outcomes ORDER BY device_id, target`,
		`SELECT COUNT(*) FROM pauses`,
	} {
		rows, err := s.db.Query(q)
		require.NoError(t, err)
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			require.NoError(t, rows.Scan(ptrs...))
			fmt.Fprintln(&b, vals...)
		}
		require.NoError(t, rows.Err())
		rows.Close()
	}
	return b.String()
}

// TestReportRefusals: every refusal is a 4xx with a reason and leaves the
// stored state as it was; a resent report is a duplicate, stored once.
func TestReportRefusals(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			ds := newTestDevices(t, 2)
			srv, _, st := reportServer(t, kind, ds, false)
			hc := http.DefaultClient
			a, b := ds[0], ds[1]
			first := a.seal(t, a.report(5, fleet.Confirmed))
			code, body, err := post(hc, srv.httpURL, first)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, code, body)
			assert.Contains(t, body, `"stored"`)
			before := dbState(t, st)

			// The same bytes again (an answer lost on the way): a
			// duplicate, acknowledged, stored once.
			code, body, err = post(hc, srv.httpURL, first)
			require.NoError(t, err)
			assert.Equal(t, http.StatusOK, code)
			assert.Contains(t, body, `"duplicate"`)
			assert.Equal(t, before, dbState(t, st))

			stranger := &testDevice{id: "gw-stranger", rolloutID: "x", key: testDeviceKey(t)}
			withOtherKey := a.report(6, fleet.Confirmed)
			unknownRelease := a.report(6, fleet.Confirmed)
			unknownRelease.Tried.Target = "acme-gw-r2/9.9.9/firmware.bin"
			wrongWave := a.report(6, fleet.Confirmed)
			wrongWave.RolloutID = "serial-of-another-wave"
			unsigned, err := fleet.SealUnsigned(a.report(6, fleet.Confirmed))
			require.NoError(t, err)
			for _, c := range []struct {
				name string
				body []byte
				code int
				why  string
			}{
				{"another device's key", func() []byte { env, _ := fleet.Seal(withOtherKey, b.key); return env }(), http.StatusForbidden, "does not verify"},
				{"not enrolled", stranger.seal(t, stranger.report(1, fleet.Confirmed)), http.StatusForbidden, "not enrolled"},
				{"unsigned without a certificate", unsigned, http.StatusForbidden, "unsigned"},
				{"replayed number, other content", a.seal(t, a.report(5, fleet.Reverted)), http.StatusConflict, "used once"},
				{"older number", a.seal(t, a.report(4, fleet.Reverted)), http.StatusConflict, "not newer"},
				{"oversized", bytes.Repeat([]byte("x"), fleet.MaxEnvelopeSize+1), http.StatusRequestEntityTooLarge, "limit"},
				{"malformed", []byte(`{"device_id":"gw-00000","payload":"!!"}`), http.StatusBadRequest, "base64"},
				{"not JSON", []byte("\x00\x01"), http.StatusBadRequest, "malformed"},
				{"unknown release", a.seal(t, unknownRelease), http.StatusUnprocessableEntity, "unknown release"},
				{"moved to another wave", a.seal(t, wrongWave), http.StatusUnprocessableEntity, "enrolment"},
			} {
				code, body, err := post(hc, srv.httpURL, c.body)
				require.NoError(t, err, c.name)
				assert.Equal(t, c.code, code, "%s: %s", c.name, body)
				assert.Contains(t, body, c.why, c.name)
				assert.Equal(t, before, dbState(t, st), "%s changed the stored state", c.name)
			}

			// GET is not how reports come.
			resp, err := hc.Get(srv.httpURL + reportsPath)
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)

			// The next number is taken.
			code, body, err = post(hc, srv.httpURL, a.seal(t, a.report(6, fleet.Confirmed)))
			require.NoError(t, err)
			assert.Equal(t, http.StatusOK, code, body)
		})
	}
}

func TestReportRateLimit(t *testing.T) {
	ds := newTestDevices(t, 2)
	repo := newRepo(t, 1024, time.Hour)
	st, _ := openTestStore(t, "sqlite")
	cfg := testConfig(t, repo, newClock(t0))
	cfg.Reports, cfg.Enrolment = st, writeEnrolment(t, t.TempDir(), ds)
	cfg.ReportLimits = ReportLimits{Rate: 0.001, Burst: 3}
	srv := start(t, cfg, nil)
	for seq := uint64(1); seq <= 3; seq++ {
		code, body, err := post(http.DefaultClient, srv.httpURL, ds[0].seal(t, ds[0].report(seq, fleet.Confirmed)))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code, body)
	}
	before := dbState(t, st)
	code, body, err := post(http.DefaultClient, srv.httpURL, ds[0].seal(t, ds[0].report(4, fleet.Confirmed)))
	require.NoError(t, err)
	assert.Equal(t, http.StatusTooManyRequests, code, body)
	assert.Equal(t, before, dbState(t, st))
	// Another device is not held back by the first.
	code, _, err = post(http.DefaultClient, srv.httpURL, ds[1].seal(t, ds[1].report(1, fleet.Confirmed)))
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code)
}

// TestReportMutualTLS: the client certificate is the identity; a report
// for another device on it is refused.
func TestReportMutualTLS(t *testing.T) {
	deviceCA, serverCA := newCA(t, "device CA"), newCA(t, "server CA")
	serverCert, _, _ := serverCA.issue(t, "127.0.0.1", true)
	devCert, _, _ := deviceCA.issue(t, "gw-tls-1", false)
	pool := x509.NewCertPool()
	pool.AddCert(deviceCA.cert)
	repo := newRepo(t, 1024, time.Hour)
	st, _ := openTestStore(t, "sqlite")
	cfg := testConfig(t, repo, newClock(t0))
	cfg.Reports = st
	srv := start(t, cfg, &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert})
	roots := x509.NewCertPool()
	roots.AddCert(serverCA.cert)
	hc := httpsClient(roots, &devCert)

	me := &testDevice{id: "gw-tls-1", rolloutID: "serial-tls-1"}
	env, err := fleet.SealUnsigned(me.report(1, fleet.Confirmed))
	require.NoError(t, err)
	code, body, err := post(hc, srv.httpsURL, env)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code, body)

	before := dbState(t, st)
	other := &testDevice{id: "gw-tls-2", rolloutID: "serial-tls-2"}
	env, err = fleet.SealUnsigned(other.report(1, fleet.Confirmed))
	require.NoError(t, err)
	code, body, err = post(hc, srv.httpsURL, env)
	require.NoError(t, err)
	assert.Equal(t, http.StatusForbidden, code, body)
	assert.Contains(t, body, "on the connection of device gw-tls-1")
	assert.Equal(t, before, dbState(t, st))
}

// writeHealthRule stores a health rule for the test release, as release
// add --pause-failures does.
func writeHealthRule(t testing.TB, repo *testRepo, rule fleet.HealthRule) {
	b, err := (&fleet.HealthRules{Releases: map[string]fleet.HealthRule{firmwarePath: rule}}).Marshal()
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(repo.dir, fleet.HealthRulesFile), b, 0o644))
}

func releaseControl(t testing.TB, repo *testRepo) *manifest.ReleaseControl {
	store, err := sign.NewDirStorage(repo.dir)
	require.NoError(t, err)
	r, err := sign.OpenRepository(context.Background(), store, sign.RepositoryOptions{Now: func() time.Time { return t0 }})
	require.NoError(t, err)
	defer r.Close()
	ctl, err := r.RolloutControl()
	require.NoError(t, err)
	rc, ok := ctl.Releases[firmwarePath]
	if !ok {
		return nil
	}
	return &rc
}

func getStatus(t testing.TB, srv *running) fleet.ReleaseStatus {
	return getStatusOf(t, srv, firmwarePath)
}

func getStatusOf(t testing.TB, srv *running, target string) fleet.ReleaseStatus {
	base := strings.TrimSuffix(srv.healthURL, "/healthz")
	resp, err := http.Get(base + fleet.StatusPath + "?release=" + target)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var st fleet.ReleaseStatus
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	return st
}

// TestHealthRulePauses: the server pauses a release through the rollout
// control role once its rule trips, not before; after a resume the rule
// counts only newer attempts.
func TestHealthRulePauses(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			ds := newTestDevices(t, 12)
			srv, repo, _ := reportServer(t, kind, ds, true)
			writeHealthRule(t, repo, fleet.HealthRule{FailureShare: 2000, MinAttempts: 5}) // 20% of at least 5
			send := func(d *testDevice, res fleet.Result) {
				code, body, err := post(http.DefaultClient, srv.httpURL, d.seal(t, d.report(d.seq.Add(1), res)))
				require.NoError(t, err)
				require.Equal(t, http.StatusOK, code, body)
			}
			// 2 failures of 4 attempts: too few attempts to judge.
			send(ds[0], fleet.Reverted)
			send(ds[1], fleet.Failed)
			send(ds[2], fleet.Confirmed)
			send(ds[3], fleet.Confirmed)
			send(ds[4], fleet.Skipped) // no attempt
			assert.Nil(t, releaseControl(t, repo))
			send(ds[5], fleet.Confirmed) // 2 of 5 = 40%
			rc := releaseControl(t, repo)
			require.NotNil(t, rc, "paused")
			assert.Equal(t, manifest.ControlPaused, rc.State)
			assert.Contains(t, rc.Reason, "2 of 5 attempts")

			st := getStatus(t, srv)
			require.Len(t, st.Waves, 1)
			w := st.Waves[0]
			assert.Equal(t, []int{12, 12, 5, 3, 1, 1}, []int{w.Devices, w.Eligible, w.Attempted, w.Confirmed, w.Reverted, w.Failed})
			require.NotNil(t, st.Control)
			assert.Equal(t, "paused", st.Control.State)
			require.NotNil(t, st.LastPause)
			assert.True(t, st.LastPause.Published)
			assert.Equal(t, int64(2), st.LastPause.Failures)

			// Resume (the operator, with the control key); old evidence
			// does not pause again, new confirmations neither.
			resume(t, repo)
			for _, d := range ds[6:11] {
				send(d, fleet.Confirmed)
			}
			assert.Nil(t, releaseControl(t, repo), "resumed release stays resumed on good reports")
			// New failures in the new window pause it again.
			send(ds[11], fleet.Reverted) // 1 of 6 new = 16.7%: below 20%
			assert.Nil(t, releaseControl(t, repo))
			send(ds[0], fleet.Reverted) // 2 of 7 = 28.6%
			require.NotNil(t, releaseControl(t, repo))
		})
	}
}

func resume(t testing.TB, repo *testRepo) {
	ctx := context.Background()
	store, err := sign.NewDirStorage(repo.dir)
	require.NoError(t, err)
	r, err := sign.OpenRepository(ctx, store, sign.RepositoryOptions{Now: time.Now, TimestampExpiry: time.Hour, TempDir: t.TempDir()})
	require.NoError(t, err)
	defer r.Close()
	require.NoError(t, r.ClearRolloutControl(firmwarePath))
	require.NoError(t, r.Publish(ctx, []*sign.Signer{loadKey(t, snapshotKeyFile), loadKey(t, timestampKeyFile), loadKey(t, controlKeyFile)}))
}

// loadDevices is the size of the concurrent report load: 1,000 devices in
// CI (whose .ci/run runs these tests without the race detector too),
// fewer otherwise (the machine is shared), fewest under -race.
func loadDevices() int {
	switch {
	case raceEnabled:
		return 50
	case os.Getenv("CI") == "true":
		return 1000
	}
	return 200
}

// TestReportLoad: devices report concurrently, each three reports and one
// resend of its last; every acknowledged report is stored, duplicates
// once. It prints reports/s per driver.
func TestReportLoad(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			n := loadDevices()
			ds := newTestDevices(t, n)
			srv, _, st := reportServer(t, kind, ds, false)
			tr := &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}
			defer tr.CloseIdleConnections()
			hc := &http.Client{Transport: tr, Timeout: time.Minute}
			var acked, dups atomic.Int64
			var failures sync.Map
			var wg sync.WaitGroup
			begin := time.Now()
			for _, d := range ds {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var last []byte
					for seq := uint64(1); seq <= 3; seq++ {
						last = d.seal(t, d.report(seq, fleet.Confirmed))
						code, body, err := post(hc, srv.httpURL, last)
						if err != nil || code != http.StatusOK {
							failures.Store(d.id, fmt.Sprintf("%d %s %v", code, body, err))
							return
						}
						acked.Add(1)
					}
					code, body, err := post(hc, srv.httpURL, last)
					if err != nil || code != http.StatusOK || !strings.Contains(body, "duplicate") {
						failures.Store(d.id, fmt.Sprintf("resend: %d %s %v", code, body, err))
						return
					}
					dups.Add(1)
				}()
			}
			wg.Wait()
			elapsed := time.Since(begin)
			failures.Range(func(k, v any) bool { t.Errorf("%s: %s", k, v); return true })
			total := acked.Load() + dups.Load()
			t.Logf("%s: %d devices, %d reports stored + %d duplicates in %v: %.0f reports/s", kind, n, acked.Load(), dups.Load(), elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds())
			var stored int64
			require.NoError(t, st.(*sqlStore).db.QueryRow(`SELECT COUNT(*) FROM reports`).Scan(&stored))
			assert.Equal(t, int64(3*n), acked.Load())
			assert.Equal(t, acked.Load(), stored, "every acknowledged report stored, duplicates once")
		})
	}
}

// TestNoReports: a server without a report store answers the report and
// status paths as absent, and run refuses a database it cannot open.
func TestNoReports(t *testing.T) {
	repo := newRepo(t, 1024, time.Hour)
	srv := start(t, testConfig(t, repo, newClock(t0)), nil)
	code, _, err := post(http.DefaultClient, srv.httpURL, []byte(`{}`))
	require.NoError(t, err)
	assert.Equal(t, http.StatusMethodNotAllowed, code, "the repository is read-only without reports")
	resp, err := http.Get(strings.TrimSuffix(srv.healthURL, "/healthz") + fleet.StatusPath + "?release=" + firmwarePath)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)

	var stderr syncBuffer
	got := run(context.Background(), []string{"--repo", repo.dir, "--snapshot-key", snapshotKeyFile, "--timestamp-key", timestampKeyFile,
		"--http", "127.0.0.1:0", "--db", filepath.Join(t.TempDir(), "no-such-dir", "reports.db")}, io.Discard, &stderr)
	assert.Equal(t, exitSetup, got)
	assert.Contains(t, stderr.String(), "report database refused")
}

// TestDefaultDatabaseBesideRepository: without --db, reports go to a
// SQLite file beside the repository directory, never inside it (where a
// copy of the repository to a bucket would publish it).
func TestDefaultDatabaseBesideRepository(t *testing.T) {
	repo := newRepo(t, 1024, time.Hour)
	startRun(t, 1, "--repo", repo.dir, "--snapshot-key", snapshotKeyFile, "--timestamp-key", timestampKeyFile, "--http", "127.0.0.1:0")
	_, err := os.Stat(repo.dir + ".reports.db")
	assert.NoError(t, err)
	ents, err := os.ReadDir(repo.dir)
	require.NoError(t, err)
	for _, e := range ents {
		assert.NotContains(t, e.Name(), "reports", "nothing of the reports inside the repository")
	}
}
