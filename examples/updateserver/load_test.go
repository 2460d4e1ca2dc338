package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/verify"
)

// child is the program built and run as its own process, so that its
// peak RSS is its own.
type child struct {
	cmd  *exec.Cmd
	addr string
	logs *strings.Builder
	mu   *sync.Mutex
	eof  chan struct{}
}

// startChild builds the program and starts it with args plus a JSON log,
// and waits until it listens.
func startChild(t *testing.T, args ...string) *child {
	t.Helper()
	return startChildUnder(t, nil, args...)
}

// startChildUnder is startChild with the program run by a wrapper command
// (wrap followed by the program and its arguments), such as prlimit.
func startChildUnder(t *testing.T, wrap []string, args ...string) *child {
	t.Helper()
	bin := buildServer(t)

	c := &child{logs: &strings.Builder{}, mu: &sync.Mutex{}, eof: make(chan struct{})}
	argv := append(append(append([]string{}, wrap...), bin, "--log-format", "json"), args...)
	c.cmd = exec.Command(argv[0], argv[1:]...)
	stderr, err := c.cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, c.cmd.Start())
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			c.cmd.Process.Kill()
			c.cmd.Wait()
		}
	})
	addrc := make(chan string, 1)
	go func() {
		defer close(c.eof)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			c.mu.Lock()
			c.logs.WriteString(line + "\n")
			c.mu.Unlock()
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
				select {
				case addrc <- rec.Addr:
				default:
				}
			}
		}
	}()
	select {
	case c.addr = <-addrc:
	case <-c.eof:
		t.Fatalf("server exited before listening:\n%s", c.log())
	case <-time.After(20 * time.Second):
		t.Fatalf("server did not listen:\n%s", c.log())
	}
	return c
}

func (c *child) log() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.logs.String()
}

// stop sends SIGTERM and returns the exit status and peak RSS in KiB.
func (c *child) stop(t *testing.T) (int, int64) {
	t.Helper()
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGTERM))
	<-c.eof
	err := c.cmd.Wait()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	ru, ok := c.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	require.True(t, ok)
	return c.cmd.ProcessState.ExitCode(), ru.Maxrss // KiB on Linux
}

// loadConnCap is --max-conns-per-addr for the load tests, whose 500
// devices all come from 127.0.0.1: well above 500, since a connection the
// client has closed still counts until the server has seen it close.
const loadConnCap = "2000"

// TestLoad: 500 device agents, each with its own verify client and trust
// store, refresh concurrently against one server process; none may fail.
// It reports the requests per second and the server's peak RSS.
func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test skipped with -short")
	}
	// Under the race detector (which also instruments the server process)
	// the 500 concurrent connections come from the raw phase, and fewer
	// verify agents keep the test's time bounded on two cores.
	const agents = 500
	verifyAgents, rounds, rawFor := agents, 3, 3*time.Second
	if raceEnabled {
		verifyAgents, rounds, rawFor = 50, 1, time.Second
	}
	repo := newRepoAt(t, time.Now(), 256<<10, time.Hour)
	c := startChild(t, "--repo", repo.dir, "--http", "127.0.0.1:0",
		"--snapshot-key", snapshotKeyFile, "--timestamp-key", timestampKeyFile,
		"--timestamp-expiry", "1h", "--check-every", "1s", "--max-conns-per-addr", loadConnCap)
	baseURL := "http://" + c.addr

	// One connection per agent, as 500 devices would have.
	transport := &http.Transport{MaxIdleConnsPerHost: agents, MaxConnsPerHost: agents, IdleConnTimeout: time.Minute}
	defer transport.CloseIdleConnections()
	hc := &http.Client{Transport: transport, Timeout: 60 * time.Second}
	var requests atomic.Int64
	fetcher := &verify.HTTPFetcher{Client: hc, Retries: -1}
	counting := verify.FetcherFunc(func(ctx context.Context, url string, max int64) (io.ReadCloser, error) {
		requests.Add(1)
		return fetcher.Fetch(ctx, url, max)
	})

	ctx := context.Background()
	setup := time.Now()
	clients := make([]*verify.Client, verifyAgents)
	var setupWG sync.WaitGroup
	for i := range clients {
		setupWG.Add(1)
		go func() {
			defer setupWG.Done()
			store := &verify.MemTrustStore{} // the load is on the server, not on flash
			if err := verify.Bootstrap(ctx, store, repo.rootJSON, manifest.Limits{}); err != nil {
				t.Error(err)
				return
			}
			client, err := verify.New(ctx, verify.Config{
				MetadataURL: baseURL + "/metadata/", TargetsURL: baseURL + "/targets/",
				Fetcher: counting, Store: store, Clock: verify.SystemClock{},
			})
			if err != nil {
				t.Error(err)
				return
			}
			clients[i] = client
		}()
	}
	setupWG.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d agents bootstrapped in %v", verifyAgents, time.Since(setup).Round(time.Millisecond))

	var (
		wg     sync.WaitGroup
		failed atomic.Int64
		first  sync.Once
		gate   = make(chan struct{})
	)
	for _, client := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			for range rounds {
				if err := client.Refresh(ctx); err != nil {
					failed.Add(1)
					first.Do(func() { t.Errorf("refresh: %v", err) })
					return
				}
			}
			if _, _, err := client.FindTarget(ctx, firmwarePath); err != nil {
				failed.Add(1)
				first.Do(func() { t.Errorf("find target: %v", err) })
			}
		}()
	}
	begin := time.Now()
	close(gate)
	wg.Wait()
	elapsed := time.Since(begin)
	n := requests.Load()
	t.Logf("%d verify agents x %d refreshes: %d requests in %v = %.0f requests/s (clients verify every document; race detector: %v)",
		verifyAgents, rounds, n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), raceEnabled)

	// The server's own pace: the same refresh requests without the
	// clients' verification and fsyncs, 500 at a time for a fixed while.
	raw, rawElapsed := rawRefreshes(t, func(int) *http.Client { return hc }, baseURL, agents, rawFor)
	transport.CloseIdleConnections()

	code, maxRSS := c.stop(t)
	assert.Zero(t, failed.Load(), "agents failed")
	assert.Equal(t, exitOK, code, "exit status after SIGTERM; log:\n%s", c.log())
	assert.Contains(t, c.log(), `"msg":"shut down"`)
	t.Logf("%d concurrent raw refreshes: %d requests in %v = %.0f requests/s; server peak RSS %.1f MiB (race detector: %v)",
		agents, raw, rawElapsed.Round(time.Millisecond), float64(raw)/rawElapsed.Seconds(), float64(maxRSS)/1024, raceEnabled)
}

// rawRefreshes has workers fetch what a fresh refresh fetches (the next
// root, which is not there, then timestamp, snapshot and targets) until d
// has passed, checking every status and length. It returns the number of
// requests and the time taken.
func rawRefreshes(t *testing.T, clientOf func(worker int) *http.Client, baseURL string, workers int, d time.Duration) (int64, time.Duration) {
	t.Helper()
	paths := []struct {
		path string
		code int
	}{
		{"/metadata/2.root.json", http.StatusNotFound},
		{"/metadata/timestamp.json", http.StatusOK},
		{"/metadata/1.snapshot.json", http.StatusOK},
		{"/metadata/1.targets.json", http.StatusOK},
	}
	var (
		n      atomic.Int64
		wg     sync.WaitGroup
		first  sync.Once
		failed atomic.Int64
	)
	begin := time.Now()
	stop := begin.Add(d)
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := clientOf(i)
			for time.Now().Before(stop) {
				for _, p := range paths {
					err := func() error {
						resp, err := hc.Get(baseURL + p.path)
						if err != nil {
							return err
						}
						defer resp.Body.Close()
						got, err := io.Copy(io.Discard, resp.Body)
						if err != nil {
							return err
						}
						if resp.StatusCode != p.code || (p.code == http.StatusOK && got != resp.ContentLength) {
							return fmt.Errorf("%s: HTTP %d, %d bytes of %d", p.path, resp.StatusCode, got, resp.ContentLength)
						}
						return nil
					}()
					n.Add(1)
					if err != nil {
						failed.Add(1)
						first.Do(func() { t.Errorf("raw refresh: %v", err) })
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	assert.Zero(t, failed.Load(), "raw refreshes failed")
	return n.Load(), time.Since(begin)
}

// TestLoadMutualTLS: 500 devices, each with its own certificate and its
// own TLS connection, refresh concurrently against a server that requires
// client certificates.
func TestLoadMutualTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("load test skipped with -short")
	}
	if raceEnabled {
		// 500 handshakes on both sides under the race detector can take
		// longer than the server's handshake timeout on a busy machine;
		// TestLoad runs the race-built server under load, TestMutualTLS
		// checks the refusals.
		t.Skip("mutual-TLS load test skipped under the race detector")
	}
	const devices = 500
	const rawFor = 2 * time.Second
	repo := newRepoAt(t, time.Now(), 1<<10, time.Hour)
	deviceCA := newCA(t, "acme device CA")
	files := writeTLS(t, deviceCA)
	c := startChild(t, "--repo", repo.dir, "--https", "127.0.0.1:0",
		"--tls-cert", files.cert, "--tls-key", files.key, "--client-ca", files.clientCA,
		"--snapshot-key", snapshotKeyFile, "--timestamp-key", timestampKeyFile,
		"--timestamp-expiry", "1h", "--check-every", "1s", "--max-conns-per-addr", loadConnCap)

	clients := make([]*http.Client, devices)
	for i := range clients {
		cert, _, _ := deviceCA.issue(t, fmt.Sprintf("gw-%04d", i), false)
		clients[i] = httpsClient(files.serverCA, &cert)
	}
	raw, elapsed := rawRefreshes(t, func(i int) *http.Client { return clients[i] }, "https://"+c.addr, devices, rawFor)
	for _, hc := range clients {
		hc.CloseIdleConnections()
	}
	code, maxRSS := c.stop(t)
	assert.Equal(t, exitOK, code, "exit status after SIGTERM; log:\n%s", c.log())
	t.Logf("%d mTLS devices, raw refreshes: %d requests in %v = %.0f requests/s; server peak RSS %.1f MiB (race detector: %v)",
		devices, raw, elapsed.Round(time.Millisecond), float64(raw)/elapsed.Seconds(), float64(maxRSS)/1024, raceEnabled)
}
