package main

import (
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// What an operator sees, from the built program: each way a cycle can end
// has its own words and exit status.
func TestExitStatuses(t *testing.T) {
	s := newServer(t, 1024)
	expired := newServerAt(t, 1024, func() time.Time { return time.Now().Add(-48 * time.Hour) })
	tests := []struct {
		name    string
		server  *testServer
		extra   []string
		code    int
		want    []string
		notWant []string
	}{
		{"update", s, nil, exitOK, []string{"update confirmed"}, nil},
		{"no releases for the hardware ID", s, []string{"-hardware-id", "acme-lock"}, exitNoReleases,
			[]string{"the repository has no releases for this hardware ID", "hardware_id=acme-lock"}, []string{"up to date"}},
		{"server down", s, []string{"-server", deadServer(t), "-retries", "0"}, exitNetwork,
			[]string{"network failure (retryable)", "fetching metadata", "connection refused"}, []string{"metadata refused"}},
		{"server down, after retries", s, []string{"-server", deadServer(t), "-retries", "1"}, exitNetwork,
			[]string{"network failure (retryable)", "fetch failed after retries"}, []string{"metadata refused"}},
		{"security refusal", expired, nil, exitRefused,
			[]string{"update refused or failed", "metadata refused", "metadata expired"}, []string{"network failure"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newDevice(t, tc.server)
			code, out := runBinary(t, d.args(tc.server, tc.extra...)...)
			assert.Equal(t, tc.code, code, out)
			for _, w := range tc.want {
				assert.Contains(t, out, w)
			}
			for _, w := range tc.notWant {
				assert.NotContains(t, out, w)
			}
		})
	}
}

// Usage errors are found at start, before the device state is touched.
func TestStartupChecks(t *testing.T) {
	s := newServer(t, 1024)
	u, err := url.Parse(s.url)
	require.NoError(t, err)
	port := u.Host
	for _, tc := range []struct {
		name   string
		server string
		extra  []string
		want   string
	}{
		{"server without scheme", port, nil, `-server "` + port + `": want an http:// or https:// URL`},
		{"server with another scheme", "ftp://" + port, nil, "want an http:// or https:// URL"},
		{"server without host", "http://", nil, "want an http:// or https:// URL"},
		{"zero timeout", s.url, []string{"-timeout", "0s"}, "-timeout 0s: want a positive duration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDevice(t, s)
			code, out := runBinary(t, append(d.args(s, "-server", tc.server), tc.extra...)...)
			assert.Equal(t, exitUsage, code, out)
			assert.Contains(t, out, tc.want)
			_, err := os.Stat(d.stateDir)
			assert.True(t, os.IsNotExist(err), "no state written for a usage error")
		})
	}
}

// A slot file that is not there is named, with its flag, as not found.
func TestMissingSlotFile(t *testing.T) {
	s := newServer(t, 1024)
	d := newDevice(t, s)
	missing := d.slotA + ".missing"
	code, out := runBinary(t, d.args(s, "-slot-a", missing)...)
	assert.Equal(t, exitUsage, code, out)
	assert.Contains(t, out, "-slot-a "+missing+": file not found")

	// Installed on slot b, then slot b vanishes: the agent refuses to run
	// and says which file is missing.
	code, out = runBinary(t, d.args(s)...)
	require.Equal(t, exitOK, code, out)
	require.NoError(t, os.Remove(d.slotB))
	code, out = runBinary(t, d.args(s)...)
	assert.Equal(t, exitUsage, code, out)
	assert.Contains(t, out, "-slot-b "+d.slotB+": file not found")
	assert.Contains(t, out, "refusing to run")
}

func TestHelpListsExitStatuses(t *testing.T) {
	code, out := runBinary(t, "-help")
	assert.Equal(t, exitOK, code)
	for _, want := range []string{"-timeout", "Exit status", "0  the device runs the newest release", "1  update refused or failed",
		"2  usage error", "3  network failure, retryable", "4  the repository has no release for this hardware ID"} {
		assert.Contains(t, out, want)
	}
}
