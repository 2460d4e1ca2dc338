package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/fleet"
)

// reportCollector stands in for the update server's report endpoint in
// front of a test repository: it opens each report with the device's
// public key (read from the agent's key file once it exists) and answers
// with status.
type reportCollector struct {
	url     string
	mu      sync.Mutex
	status  int
	got     []*fleet.Report
	refused []string
	keyFile string
}

func newReportCollector(t *testing.T, s *testServer, keyFile string) *reportCollector {
	c := &reportCollector{status: http.StatusOK, keyFile: keyFile}
	upstream, err := url.Parse(s.url)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(upstream)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/reports" {
			proxy.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(io.LimitReader(r.Body, fleet.MaxEnvelopeSize+1))
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.status != http.StatusOK {
			w.WriteHeader(c.status)
			return
		}
		pemBytes, err := os.ReadFile(c.keyFile + ".pub")
		require.NoError(t, err)
		pub, err := fleet.ParsePublicKeyPEM(pemBytes)
		require.NoError(t, err)
		env, err := fleet.ParseEnvelope(body)
		if err == nil {
			var rep *fleet.Report
			if rep, err = env.Open(pub); err == nil {
				c.got = append(c.got, rep)
				w.Write([]byte(`{"status":"stored"}`))
				return
			}
		}
		c.refused = append(c.refused, err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
	}))
	t.Cleanup(srv.Close)
	c.url = srv.URL
	return c
}

func (c *reportCollector) setStatus(code int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.status = code
}

func (c *reportCollector) reports() []*fleet.Report {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*fleet.Report(nil), c.got...)
}

func queued(t *testing.T, d *device) int {
	ents, err := os.ReadDir(filepath.Join(d.stateDir, "reports"))
	require.NoError(t, err)
	n := 0
	for _, e := range ents {
		if filepath.Ext(e.Name()) == ".report" {
			n++
		}
	}
	return n
}

// TestReportsQueuedThenSent: a server that does not take reports does
// not hold the update back; the report waits in the state directory and
// goes out, signed, at the next cycle.
func TestReportsQueuedThenSent(t *testing.T) {
	s := newServer(t, 64<<10)
	d := newDevice(t, s)
	keyFile := filepath.Join(d.dir, "report-key.pem")
	c := newReportCollector(t, s, keyFile)
	c.setStatus(http.StatusServiceUnavailable)
	args := append(d.args(s, "-reports", "-report-key", keyFile, "-device-id", "gw-7", "-rollout-id", "serial-7"), "-server", c.url)

	code, log := agentRun(t, args)
	require.Equal(t, exitOK, code, log)
	assert.Equal(t, "1.1.0", d.status(t).Installed.Version.String(), "the update went ahead")
	assert.Contains(t, log, "kept for the next cycle")
	assert.Equal(t, 1, queued(t, d))
	assert.Empty(t, c.reports())

	c.setStatus(http.StatusOK)
	code, log = agentRun(t, args)
	require.Equal(t, exitOK, code, log)
	assert.Equal(t, 0, queued(t, d), log)
	got := c.reports()
	require.Len(t, got, 1)
	r := got[0]
	assert.Equal(t, fleet.Confirmed, r.Result)
	assert.Equal(t, "gw-7", r.DeviceID)
	assert.Equal(t, "serial-7", r.RolloutID)
	assert.Equal(t, hw, r.HardwareID)
	assert.Equal(t, uint64(r.Time.Unix()), r.Seq, "numbered by the trusted time at first")
	assert.Equal(t, fleet.Release{Target: hw + "/1.1.0/firmware.bin", Version: "1.1.0"}, r.Tried)
	assert.Equal(t, r.Tried, r.Running)
	assert.Positive(t, r.Metadata.Timestamp)
	assert.Positive(t, r.Metadata.Root)
	assert.False(t, r.Time.IsZero())
}

// TestRevertReported: a failed health check is reported as reverted, with
// the release tried and the one the device went back to.
func TestRevertReported(t *testing.T) {
	s := newServer(t, 64<<10)
	d := newDevice(t, s)
	keyFile := filepath.Join(d.dir, "report-key.pem")
	c := newReportCollector(t, s, keyFile)
	args := append(d.args(s, "-reports", "-report-key", keyFile, "-health-check", "echo disk full; exit 1"), "-server", c.url)
	code, log := agentRun(t, args)
	require.Equal(t, exitRefused, code, log)
	got := c.reports()
	require.Len(t, got, 1, log)
	r := got[0]
	assert.Equal(t, fleet.Reverted, r.Result)
	assert.Equal(t, "1.1.0", r.Tried.Version)
	assert.Equal(t, "1.0.0", r.Running.Version)
	assert.Contains(t, r.Detail, "disk full")
	assert.NotEmpty(t, r.DeviceID, "defaults to the rollout ID")

	// The next cycle does not try that release again (it failed here),
	// so it has no attempt to report.
	code, log = agentRun(t, args)
	require.Equal(t, exitOK, code, log)
	assert.Contains(t, log, "not installing a release that failed on this device before")
	assert.Len(t, c.reports(), 1)
}

// TestNoReportsByDefault: without -reports nothing is queued or sent.
func TestNoReportsByDefault(t *testing.T) {
	s := newServer(t, 64<<10)
	d := newDevice(t, s)
	code, log := agentRun(t, d.args(s))
	require.Equal(t, exitOK, code, log)
	_, err := os.Stat(filepath.Join(d.stateDir, "reports"))
	assert.True(t, os.IsNotExist(err))
}
