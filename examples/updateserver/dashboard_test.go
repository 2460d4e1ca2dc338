package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/fleet"
	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

// markup is text from metadata that a page must show as text.
const markup = `<img src=x onerror=alert(1)>`

// fleetFixture is a seeded repository for the page: acme-gw-r2 with 2.4.1
// (immediate), 2.5.0 rolling out in waves (wave 2 of 3 at t0), 2.6.0
// paused by the control role, 2.3.0 withdrawn; and acme-cam-1 with one
// release; hostile puts markup in its notes and advisory and in the
// reason of the pause.
type fleetFixture struct {
	repo  *testRepo
	stats *seededStats
}

const (
	rolloutPath = "acme-gw-r2/2.5.0/firmware.bin"
	pausedPath  = "acme-gw-r2/2.6.0/firmware.bin"
)

func seedFleet(t *testing.T, hostile bool) *fleetFixture {
	t.Helper()
	repo := newRepo(t, 4<<10, time.Hour)
	withControl(t, repo)
	ctx := context.Background()
	store, err := sign.NewDirStorage(repo.dir)
	require.NoError(t, err)
	r, err := sign.OpenRepository(ctx, store, sign.RepositoryOptions{Now: func() time.Time { return t0 }, TimestampExpiry: time.Hour, TargetsExpiry: controlExpiry, TempDir: t.TempDir()})
	require.NoError(t, err)
	defer r.Close()
	add := func(path, version string, secver uint64, hw string, mod func(*manifest.Firmware)) {
		fw := manifest.Firmware{Version: manifest.MustParseVersion(version), SecurityVersion: secver, HardwareIDs: []string{hw}}
		if mod != nil {
			mod(&fw)
		}
		require.NoError(t, r.AddFirmware(ctx, path, strings.NewReader(strings.Repeat(version, 700)), fw))
	}
	waves := &manifest.Rollout{Start: t0.Add(-36 * time.Hour), Waves: []manifest.Wave{
		{Offset: 0, Share: 100}, {Offset: 24 * time.Hour, Share: 1000}, {Offset: 72 * time.Hour, Share: manifest.FullShare}}}
	add(rolloutPath, "2.5.0", 8, hardwareID, func(fw *manifest.Firmware) {
		fw.Severity, fw.Advisories, fw.Rollout = manifest.SeveritySecurity, []string{"CVE-2026-0001"}, waves
	})
	add(pausedPath, "2.6.0", 8, hardwareID, func(fw *manifest.Firmware) {
		fw.Rollout = &manifest.Rollout{Start: t0, Waves: []manifest.Wave{{Offset: 0, Share: manifest.FullShare}}}
	})
	add("acme-gw-r2/2.3.0/firmware.bin", "2.3.0", 6, hardwareID, func(fw *manifest.Firmware) {
		fw.Withdrawn = &manifest.Withdrawal{Reason: "bricks units with flash rev B"}
	})
	add("acme-cam-1/1.0.0/firmware.bin", "1.0.0", 1, "acme-cam-1", func(fw *manifest.Firmware) {
		fw.Severity, fw.Advisories = manifest.SeverityCritical, []string{"CVE-2026-0042"}
		if hostile {
			fw.Notes, fw.Advisories = "fixes "+markup, []string{markup}
		}
	})
	reason := "reverted+failed 33% of 30 attempts"
	if hostile {
		reason += " " + markup
	}
	require.NoError(t, r.SetRolloutControl(pausedPath, manifest.ReleaseControl{State: manifest.ControlPaused, Reason: reason}))
	require.NoError(t, r.Publish(ctx, []*sign.Signer{loadKey(t, targetsKeyFile), loadKey(t, snapshotKeyFile), loadKey(t, timestampKeyFile), loadKey(t, controlKeyFile)}))
	return &fleetFixture{repo: repo, stats: &seededStats{waves: map[string][]waveCounts{
		rolloutPath: {{Eligible: 12, Attempted: 12, Confirmed: 11, Reverted: 1}, {Eligible: 108, Attempted: 40, Confirmed: 37, Reverted: 1, Failed: 2}, {}},
		pausedPath:  {{Eligible: 1200, Attempted: 30, Confirmed: 20, Reverted: 4, Failed: 6}},
	}, rules: map[string]bool{pausedPath: true}}}
}

// seededStats are fixed fleet counts, standing in for the reports
// database in the page's own tests.
type seededStats struct {
	waves map[string][]waveCounts
	rules map[string]bool // path -> tripped
}

func (s *seededStats) WaveCounts(_ context.Context, path string, _ *manifest.Firmware) ([]waveCounts, error) {
	return s.waves[path], nil
}

func (s *seededStats) Health(context.Context) (string, float64, error) { return "sqlite", 42.5, nil }

func (s *seededStats) HealthRule(_ context.Context, path string) (string, bool, error) {
	tripped, ok := s.rules[path]
	if !ok {
		return "", false, nil
	}
	return "pause when reverted+failed >= 5% of at least 20 attempts", tripped, nil
}

// dashServer runs a server for f with its fleet page on its own listener,
// over TLS with operator certificates from opCA when it is not nil.
type dashServer struct {
	*running
	dashURL string
	client  *http.Client
	log     *syncBuffer
	// serverCA verifies the page's TLS certificate.
	serverCA *x509.CertPool
}

func startDashboard(t *testing.T, f *fleetFixture, opCA *pki, withControlKey bool) *dashServer {
	t.Helper()
	c := newClock(t0)
	cfg := testConfig(t, f.repo, c)
	if withControlKey {
		cfg.ControlKey = loadKey(t, controlKeyFile)
	}
	logs := &syncBuffer{}
	cfg.Log = slog.New(slog.NewJSONHandler(logs, nil))
	srv, err := newServer(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(srv.close)
	var pool *x509.CertPool
	if opCA != nil {
		pool = x509.NewCertPool()
		pool.AddCert(opCA.cert)
	}
	srv.dash = newDashboard(srv, f.stats, pool)
	dev, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dl, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ds := &dashServer{running: &running{srv: srv, httpURL: "http://" + dev.Addr().String(), done: make(chan error, 1)}, log: logs, client: http.DefaultClient}
	dep := endpoint{ln: dl, kind: serveDashboard}
	ds.dashURL = "http://" + dl.Addr().String()
	if opCA != nil {
		files := writeTLS(t, nil)
		cert, err := tls.LoadX509KeyPair(files.cert, files.key)
		require.NoError(t, err)
		dep.tls = srv.dash.tlsConfig(cert)
		ds.dashURL = "https://" + dl.Addr().String()
		ds.client = httpsClient(files.serverCA, nil)
		ds.serverCA = files.serverCA
	}
	ctx, cancel := context.WithCancel(context.Background())
	ds.cancel = cancel
	go func() { ds.done <- srv.serve(ctx, []endpoint{{ln: dev, kind: serveAll}, dep}, 5*time.Second) }()
	t.Cleanup(func() { cancel(); <-ds.done })
	return ds
}

func getPage(t *testing.T, hc *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := hc.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func TestDashboardShowsFleet(t *testing.T) {
	f := seedFleet(t, false)
	ds := startDashboard(t, f, nil, false)
	code, page := getPage(t, ds.client, ds.dashURL+"/")
	require.Equal(t, http.StatusOK, code, page)

	// Releases per hardware ID, newest first, withdrawn marked.
	rows := regexp.MustCompile(`data-path="([^"]+)" data-version="([^"]+)"`).FindAllStringSubmatch(page, -1)
	var versions []string
	for _, r := range rows {
		versions = append(versions, r[2])
	}
	assert.Equal(t, []string{"1.0.0", "2.6.0", "2.5.0", "2.4.1", "2.3.0"}, versions)
	assert.Contains(t, page, `<tr class="release withdrawn" data-path="acme-gw-r2/2.3.0/firmware.bin"`)
	assert.Contains(t, page, "bricks units with flash rev B")
	assert.Contains(t, page, "CVE-2026-0001")

	// Rollouts: the current wave, the control, the health rule.
	assert.Regexp(t, `data-path="`+regexp.QuoteMeta(rolloutPath)+`">\s*<h3>[^<]*</h3>\s*<p>Schedule: 1% at &#43;0h, 10% at &#43;1d, 100% at &#43;3d`, page)
	assert.Contains(t, page, `<b class="current">wave 2 of 3 (10%)</b>`)
	assert.Contains(t, page, `<div class="rollout paused tripped" data-path="`+pausedPath+`">`)
	assert.Contains(t, page, "(tripped)")

	// The chart's bars carry the seeded counts, per rollout.
	assert.Equal(t, map[string]string{
		"eligible": "12 108 0", "attempted": "12 40 0", "confirmed": "11 37 0", "reverted": "1 1 0", "failed": "0 2 0",
	}, chartValues(t, page, rolloutPath))
	assert.Equal(t, map[string]string{
		"eligible": "1200", "attempted": "30", "confirmed": "20", "reverted": "4", "failed": "6",
	}, chartValues(t, page, pausedPath))

	// Keys and expiry: the control document expires within the warning
	// window (controlExpiry after t0).
	assert.Regexp(t, `<tr class="warn" data-role="rollout-control">`, page)
	assert.Regexp(t, `<tr class="ok" data-role="root">`, page)
	assert.Contains(t, page, "<td>sqlite</td>")
	// Read-only without an operator certificate: no form.
	assert.NotContains(t, page, "<form")
}

// chartValues returns the values of the chart bars of the rollout at
// path, by series, in wave order.
func chartValues(t *testing.T, page, path string) map[string]string {
	t.Helper()
	at := strings.Index(page, `data-path="`+path+`">`)
	require.GreaterOrEqual(t, at, 0, "no rollout %s", path)
	section := page[at:]
	if end := strings.Index(section, "</div>"); end >= 0 {
		section = section[:end]
	}
	out := map[string]string{}
	for _, b := range regexp.MustCompile(`<rect class="bar (\w+)" data-series="\w+" data-wave="\d+" data-value="(\d+)"`).FindAllStringSubmatch(section, -1) {
		out[b[1]] = strings.TrimSpace(out[b[1]] + " " + b[2])
	}
	return out
}

func TestDashboardEscapesMetadata(t *testing.T) {
	f := seedFleet(t, true)
	ds := startDashboard(t, f, nil, false)
	_, page := getPage(t, ds.client, ds.dashURL+"/")
	assert.NotContains(t, page, markup)
	assert.Contains(t, page, "&lt;img src=x onerror=alert(1)&gt;")
	assert.NotContains(t, page, "<script")
}

// The page is never served on the devices' address, and the dashboard
// address serves nothing of the repository.
func TestDashboardOnlyOnItsAddress(t *testing.T) {
	f := seedFleet(t, false)
	ds := startDashboard(t, f, nil, false)
	code, body := getPage(t, http.DefaultClient, ds.httpURL+"/")
	assert.Equal(t, http.StatusNotFound, code)
	assert.NotContains(t, body, "otaseal fleet")
	code, _ = postForm(t, http.DefaultClient, ds.httpURL+"/rollout", url.Values{"target": {rolloutPath}, "action": {"pause"}})
	assert.Equal(t, http.StatusMethodNotAllowed, code) // the device handler's answer: GET and HEAD only
	code, _ = getPage(t, ds.client, ds.dashURL+"/metadata/timestamp.json")
	assert.Equal(t, http.StatusNotFound, code)
	code, _ = getPage(t, ds.client, ds.dashURL+"/?page=x")
	assert.Equal(t, http.StatusBadRequest, code)

	_, err := parseFlags([]string{"--repo", "r", "--http", "127.0.0.1:8080", "--snapshot-key", "s", "--timestamp-key", "t", "--dashboard", "127.0.0.1:8080"}, io.Discard)
	assert.ErrorContains(t, err, "must not share an address")
	_, err = parseFlags([]string{"--repo", "r", "--http", "127.0.0.1:8080", "--snapshot-key", "s", "--timestamp-key", "t", "--dashboard", "127.0.0.1:8081", "--operator-ca", "ca.pem"}, io.Discard)
	assert.ErrorContains(t, err, "--operator-ca needs --dashboard-cert")
}

func postForm(t *testing.T, hc *http.Client, u string, form url.Values) (int, string) {
	t.Helper()
	hc2 := *hc
	hc2.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc2.PostForm(u, form)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func controlState(t *testing.T, dir, path string) *manifest.ReleaseControl {
	t.Helper()
	store, err := sign.NewDirStorage(dir)
	require.NoError(t, err)
	r, err := sign.OpenRepository(context.Background(), store, sign.RepositoryOptions{Now: func() time.Time { return t0 }})
	require.NoError(t, err)
	defer r.Close()
	ctl, err := r.RolloutControl()
	require.NoError(t, err)
	if rc, ok := ctl.Releases[path]; ok {
		return &rc
	}
	return nil
}

// treeHash is every file of dir with its contents, for "nothing changed".
func treeHash(t *testing.T, dir string) string {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		fmt.Fprintf(&b, "%s %x\n", p, data)
		return err
	}))
	return b.String()
}

func TestDashboardOperatorActions(t *testing.T) {
	f := seedFleet(t, false)
	opCA := newCA(t, "acme operators CA")
	ds := startDashboard(t, f, opCA, true)
	before := treeHash(t, f.repo.dir)

	// Without a certificate: read-only, and a POST is refused.
	_, page := getPage(t, ds.client, ds.dashURL+"/")
	assert.NotContains(t, page, "<form")
	code, body := postForm(t, ds.client, ds.dashURL+"/rollout", url.Values{"target": {rolloutPath}, "action": {"pause"}})
	assert.Equal(t, http.StatusForbidden, code, body)

	// A certificate from another CA does not make an operator.
	other, _, _ := newCA(t, "someone else").issue(t, "mallory", false)
	mallory := httpsClient(ds.serverCA, &other)
	_, page = getPage(t, mallory, ds.dashURL+"/")
	assert.NotContains(t, page, "<form")
	assert.Contains(t, page, "Read-only")
	code, _ = postForm(t, mallory, ds.dashURL+"/rollout", url.Values{"target": {rolloutPath}, "action": {"pause"}})
	assert.Equal(t, http.StatusForbidden, code)

	// An operator: the page has forms; a post without the page's token
	// (a cross-site form) is refused.
	cert, _, _ := opCA.issue(t, "alice", false)
	op := httpsClient(ds.serverCA, &cert)
	_, page = getPage(t, op, ds.dashURL+"/")
	require.Contains(t, page, `<form method="post" action="/rollout">`)
	token := regexp.MustCompile(`name="token" value="([0-9a-f]+)"`).FindStringSubmatch(page)
	require.NotNil(t, token)
	code, _ = postForm(t, op, ds.dashURL+"/rollout", url.Values{"target": {rolloutPath}, "action": {"pause"}, "token": {"00"}})
	assert.Equal(t, http.StatusForbidden, code)
	code, _ = postForm(t, op, ds.dashURL+"/rollout", url.Values{"target": {rolloutPath}, "action": {"widen"}, "token": {token[1]}})
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Equal(t, before, treeHash(t, f.repo.dir), "a refused action changed the repository")

	// Pause, then resume: published through the control role, logged
	// with the operator's subject.
	code, body = postForm(t, op, ds.dashURL+"/rollout", url.Values{"target": {rolloutPath}, "action": {"pause"}, "reason": {"watching reverts"}, "token": {token[1]}})
	require.Equal(t, http.StatusSeeOther, code, body)
	rc := controlState(t, f.repo.dir, rolloutPath)
	require.NotNil(t, rc)
	assert.Equal(t, manifest.ControlPaused, rc.State)
	assert.Equal(t, "watching reverts", rc.Reason)
	assert.Regexp(t, `"msg":"fleet page action","operator":"CN=alice","action":"pause"`, ds.log.String())
	code, body = postForm(t, op, ds.dashURL+"/rollout", url.Values{"target": {rolloutPath}, "action": {"resume"}, "token": {token[1]}})
	require.Equal(t, http.StatusSeeOther, code, body)
	assert.Nil(t, controlState(t, f.repo.dir, rolloutPath))
	code, _ = postForm(t, op, ds.dashURL+"/rollout", url.Values{"target": {rolloutPath}, "action": {"resume"}, "token": {token[1]}})
	assert.Equal(t, http.StatusConflict, code)
}

func TestDashboardPages(t *testing.T) {
	f := seedFleet(t, false)
	ctx := context.Background()
	store, err := sign.NewDirStorage(f.repo.dir)
	require.NoError(t, err)
	r, err := sign.OpenRepository(ctx, store, sign.RepositoryOptions{Now: func() time.Time { return t0 }, TimestampExpiry: time.Hour, TargetsExpiry: controlExpiry, TempDir: t.TempDir()})
	require.NoError(t, err)
	for i := range 2 * dashPageSize {
		fw := manifest.Firmware{Version: manifest.MustParseVersion(fmt.Sprintf("3.0.%d", i)), SecurityVersion: 9, HardwareIDs: []string{hardwareID}}
		require.NoError(t, r.AddFirmware(ctx, fmt.Sprintf("acme-gw-r2/3.0.%d/firmware.bin", i), strings.NewReader(fmt.Sprint(i)), fw))
	}
	require.NoError(t, r.Publish(ctx, []*sign.Signer{loadKey(t, targetsKeyFile), loadKey(t, snapshotKeyFile), loadKey(t, timestampKeyFile)}))
	require.NoError(t, r.Close())
	ds := startDashboard(t, f, nil, false)
	count := func(page string) int { return strings.Count(page, `<tr class="release`) }
	_, p1 := getPage(t, ds.client, ds.dashURL+"/")
	assert.Equal(t, dashPageSize, count(p1))
	assert.Contains(t, p1, "Page 1 of 3")
	assert.Contains(t, p1, `data-version="1.0.0"`) // acme-cam-1 sorts first
	_, p3 := getPage(t, ds.client, ds.dashURL+"/?page=3")
	assert.Equal(t, 2*dashPageSize+5-2*dashPageSize, count(p3))
	assert.Contains(t, p3, `data-version="2.3.0"`) // the oldest, last
}

// BenchmarkDashboardPage renders one page of a repository of 1,000
// releases for 20 hardware IDs, each with a three-wave rollout, and a
// SQLite report database of 100,000 enrolled devices (5,000 per hardware
// ID) with 1,000 install reports on the releases of the page.
func BenchmarkDashboardPage(b *testing.B) {
	repo := newRepo(b, 1<<10, time.Hour)
	ctx := context.Background()
	store, err := sign.NewDirStorage(repo.dir)
	require.NoError(b, err)
	r, err := sign.OpenRepository(ctx, store, sign.RepositoryOptions{Now: func() time.Time { return t0 }, TimestampExpiry: time.Hour, TempDir: b.TempDir()})
	require.NoError(b, err)
	for i := range 1000 {
		path := fmt.Sprintf("hw-%02d/1.0.%d/firmware.bin", i%20, i)
		fw := manifest.Firmware{Version: manifest.MustParseVersion(fmt.Sprintf("1.0.%d", i)), SecurityVersion: 1, HardwareIDs: []string{fmt.Sprintf("hw-%02d", i%20)},
			Rollout: &manifest.Rollout{Start: t0, Waves: []manifest.Wave{{Offset: 0, Share: 100}, {Offset: time.Hour, Share: 1000}, {Offset: 2 * time.Hour, Share: manifest.FullShare}}}}
		require.NoError(b, r.AddFirmware(ctx, path, strings.NewReader(path), fw))
	}
	require.NoError(b, r.Publish(ctx, []*sign.Signer{loadKey(b, targetsKeyFile), loadKey(b, snapshotKeyFile), loadKey(b, timestampKeyFile)}))
	model, err := loadModel(r)
	require.NoError(b, err)
	require.NoError(b, r.Close())

	reports, err := openReportStore(ctx, filepath.Join(b.TempDir(), "reports.db"))
	require.NoError(b, err)
	defer reports.close()
	devs := make([]knownDevice, 100_000)
	for i := range devs {
		devs[i] = knownDevice{DeviceID: fmt.Sprintf("dev-%06d", i), HardwareID: fmt.Sprintf("hw-%02d", i%20), RolloutID: fmt.Sprintf("r-%06d", i)}
	}
	require.NoError(b, reports.enrol(ctx, devs))
	results := []fleet.Result{fleet.Confirmed, fleet.Confirmed, fleet.Confirmed, fleet.Reverted, fleet.Failed}
	for i, rel := range model.releases[6*dashPageSize : 7*dashPageSize] {
		for j := range 20 {
			d := devs[(i*20+j)*20+i%20] // a device of the release's hardware
			rep := newStoredReport(d.DeviceID, 1, results[j%len(results)], rel.Path)
			rep.HardwareID, rep.RolloutID, rep.Tried.Version = d.HardwareID, d.RolloutID, rel.Version
			_, err := reports.add(ctx, rep)
			require.NoError(b, err)
		}
	}
	c := newClock(t0.Add(90 * time.Minute))
	cfg := testConfig(b, repo, c)
	cfg.Reports = reports
	srv, err := newServer(ctx, cfg)
	require.NoError(b, err)
	defer srv.close()
	d := newDashboard(srv, newReportStats(srv, "sqlite"), nil)
	req := httptest.NewRequest(http.MethodGet, "/?page=7", nil)
	render := func(b *testing.B) {
		w := httptest.NewRecorder()
		d.ServeHTTP(w, req)
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "Page 7 of 21") {
			b.Fatalf("status %d", w.Code)
		}
		b.SetBytes(int64(w.Body.Len()))
	}
	// warm: the repository unchanged since the last request, the usual
	// case; cold: the first request after a publish reads it again, and
	// the list of devices.
	b.Run("warm", func(b *testing.B) {
		render(b)
		for b.Loop() {
			render(b)
		}
	})
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			d.mu.Lock()
			d.cached = nil
			d.mu.Unlock()
			d.stats.(*reportStats).devs = nil
			render(b)
		}
	})
}

// The fleet page reads the real report database: after a health rule
// paused a release, the page shows its wave counts, the rule as tripped,
// the pause, and the ingest rate.
func TestDashboardReadsReports(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			ds := newTestDevices(t, 12)
			srv, repo, _ := reportServer(t, kind, ds, true)
			writeHealthRule(t, repo, fleet.HealthRule{FailureShare: 2000, MinAttempts: 5})
			for i, res := range []fleet.Result{fleet.Reverted, fleet.Failed, fleet.Confirmed, fleet.Confirmed, fleet.Confirmed} {
				d := ds[i]
				code, body, err := post(http.DefaultClient, srv.httpURL, d.seal(t, d.report(d.seq.Add(1), res)))
				require.NoError(t, err)
				require.Equal(t, http.StatusOK, code, body)
			}
			require.NotNil(t, releaseControl(t, repo), "the rule paused the release")

			d := newDashboard(srv.srv, newReportStats(srv.srv, kind), nil)
			w := httptest.NewRecorder()
			d.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
			require.Equal(t, http.StatusOK, w.Code, w.Body.String())
			page := w.Body.String()
			assert.Contains(t, page, `<div class="rollout paused tripped" data-path="`+firmwarePath+`">`)
			assert.Equal(t, map[string]string{"eligible": "12", "attempted": "5", "confirmed": "3", "reverted": "1", "failed": "1"},
				chartValues(t, page, firmwarePath))
			assert.Regexp(t, `Health rule: pause when [^<]*; tripped [^<]*\(2 of 5 attempts failed\)`, page)
			assert.Contains(t, page, "<td>"+kind+"</td>")
			assert.Contains(t, page, `<td class="num">1.0</td>`) // 5 reports in the last 5 minutes
		})
	}
}
