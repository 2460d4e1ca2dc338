package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The built server under a descriptor limit, with more clients that stop
// reading a firmware image than it has descriptors for (a socket and an
// open file each), from many addresses so that the per-address cap does
// not stop them: the stalled responses are dropped within the stall
// timeout, an honest device asking for timestamp.json meanwhile gets 200
// or a 5xx but never 404, and is served again once they are gone.
func TestStalledDownloadsUnderFDLimit(t *testing.T) {
	// util-linux's prlimit: a missing one skips the test on a developer
	// machine and fails it in CI (CI=true).
	prlimit, err := exec.LookPath("prlimit")
	if err != nil && os.Getenv("CI") != "" {
		t.Fatal("prlimit not on PATH: CI must install it (Debian package util-linux)")
	} else if err != nil {
		t.Skip("prlimit not on PATH; install util-linux to run the descriptor limit test")
	}
	const (
		nofile  = 64 // the server needs about a dozen of its own
		stalled = 60 // 120 descriptors
		stall   = 500 * time.Millisecond
	)
	repo := newRepoAt(t, time.Now(), 16<<20, time.Hour)
	c := startChildUnder(t, []string{prlimit, fmt.Sprintf("--nofile=%d", nofile), "--"},
		"--repo", repo.dir, "--http", "127.0.0.1:0",
		"--snapshot-key", snapshotKeyFile, "--timestamp-key", timestampKeyFile,
		"--timestamp-expiry", "1h", "--stall-timeout", stall.String())
	baseURL := "http://" + c.addr

	// The honest device holds a kept-alive connection from before the
	// stalled clients come, so its requests reach the handler while the
	// server has no descriptor left to open a file with.
	hc := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}, Timeout: 2 * time.Second}
	defer hc.CloseIdleConnections()
	statuses := map[int]int{} // status code (0: no answer) -> how often
	get := func() int {
		resp, err := hc.Get(baseURL + "/metadata/timestamp.json")
		if err != nil {
			statuses[0]++
			return 0
		}
		// Read to the end, or the transport would not keep the
		// connection alive.
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		statuses[resp.StatusCode]++
		return resp.StatusCode
	}
	require.Equal(t, http.StatusOK, get())

	image := imagePath(repo)
	conns := make([]*stalledConn, stalled)
	for i := range conns {
		conns[i] = stallGet(t, c.addr, net.IPv4(127, 0, 1, byte(1+i)), image)
	}
	// Every stalled request ends in the log: dropped, or refused with 503
	// when its file could not be opened.
	answered := func() int {
		n := 0
		for _, line := range strings.Split(c.log(), "\n") {
			if strings.Contains(line, `"path":"`+image+`"`) &&
				(logCount(line, "dropped a stalled response") == 1 || logCount(line, "out of resources: answering 503") == 1) {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(20 * stall)
	for answered() < stalled && time.Now().Before(deadline) {
		get()
		time.Sleep(20 * time.Millisecond)
	}
	logs := c.log()
	require.Equal(t, stalled, answered(), "stalled requests not dropped within %v; honest statuses %v; log:\n%s", 20*stall, statuses, logs)
	require.Contains(t, logs, "too many open files", "the server never ran out of descriptors: the test proves nothing")
	assert.Zero(t, statuses[http.StatusNotFound], "honest requests answered 404: %v", statuses)

	// With the stalled clients gone, the device is served again.
	require.Eventually(t, func() bool { return get() == http.StatusOK }, 5*time.Second, 20*time.Millisecond)
	for code := range statuses {
		assert.True(t, code == 0 || code == http.StatusOK || code >= 500, "honest request answered %d: %v", code, statuses)
	}

	outcomes := map[stalledOutcome]int{}
	for _, sc := range conns {
		got, code := sc.finish(t, int64(len(repo.image)))
		outcomes[got]++
		assert.NotEqual(t, http.StatusNotFound, code)
	}
	assert.Zero(t, outcomes[outcomeFull], "stalled downloads never dropped")
	assert.Zero(t, outcomes[outcomeOther])
	assert.Equal(t, logCount(logs, "dropped a stalled response"), outcomes[outcomeDropped])
	assert.Positive(t, outcomes[outcomeDropped])
	t.Logf("honest statuses %v; stalled clients: %d dropped, %d refused with 503", statuses, outcomes[outcomeDropped], outcomes[outcomeRefused])

	code, _ := c.stop(t)
	assert.Equal(t, exitOK, code, "log:\n%s", strings.TrimSpace(c.log()))
}
