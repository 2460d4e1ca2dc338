package main

import (
	"log/slog"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// get fetches timestamp.json with hc on a fresh connection.
func get(hc *http.Client, url string) error {
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(url + "/metadata/timestamp.json")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &os.PathError{Op: "GET", Path: url, Err: os.ErrNotExist}
	}
	return nil
}

// A renewed server certificate and a new device CA take effect at a
// reload (SIGHUP), for new connections; unreadable files change nothing.
func TestTLSReload(t *testing.T) {
	repo := newRepo(t, 1<<10, time.Hour)
	oldDeviceCA := newCA(t, "device CA 2026")
	files := writeTLS(t, oldDeviceCA)
	m, err := newTLSMaterial(files.cert, files.key, files.clientCA)
	require.NoError(t, err)
	r := start(t, testConfig(t, repo, newClock(t0.Add(time.Minute))), m.config())

	oldDevice, _, _ := oldDeviceCA.issue(t, "gw-old", false)
	require.NoError(t, get(httpsClient(files.serverCA, &oldDevice), r.httpsURL))
	// HTTP/2 still negotiated through GetConfigForClient.
	hc := httpsClient(files.serverCA, &oldDevice)
	resp, err := hc.Get(r.httpsURL + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	hc.CloseIdleConnections()
	assert.Equal(t, 2, resp.ProtoMajor)

	// Renew: new server certificate from a new CA, new device CA.
	newDeviceCA := newCA(t, "device CA 2027")
	renewed := writeTLS(t, newDeviceCA)
	for _, f := range [][2]string{{renewed.cert, files.cert}, {renewed.key, files.key}, {renewed.clientCA, files.clientCA}} {
		b, err := os.ReadFile(f[0])
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(f[1], b, 0o600))
	}
	stop := reloadOnHangup(m, slog.New(slog.DiscardHandler))
	defer stop()
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	newDevice, _, _ := newDeviceCA.issue(t, "gw-new", false)
	deadline := time.Now().Add(10 * time.Second)
	for get(httpsClient(renewed.serverCA, &newDevice), r.httpsURL) != nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	require.NoError(t, get(httpsClient(renewed.serverCA, &newDevice), r.httpsURL), "not reloaded")
	assert.Error(t, get(httpsClient(renewed.serverCA, &oldDevice), r.httpsURL), "the old device CA is still trusted")
	assert.Error(t, get(httpsClient(files.serverCA, &newDevice), r.httpsURL), "the old server certificate is still served")

	// A broken file: the reload is refused and the server keeps serving.
	require.NoError(t, os.WriteFile(files.key, []byte("not a key"), 0o600))
	assert.Error(t, m.reload())
	assert.NoError(t, get(httpsClient(renewed.serverCA, &newDevice), r.httpsURL))
}
