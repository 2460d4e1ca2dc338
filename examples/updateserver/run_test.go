package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// syncBuffer collects the logs of a run in progress.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// listening returns the addresses run logged, by scheme and health_only.
func (b *syncBuffer) listening() map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader([]byte(b.String())))
	for sc.Scan() {
		var rec struct {
			Msg, Scheme, Addr string
			HealthOnly        bool `json:"health_only"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "listening" {
			key := rec.Scheme
			if rec.HealthOnly {
				key = "health"
			}
			out[key] = rec.Addr
		}
	}
	return out
}

// inProcess is run() going on in a goroutine.
type inProcess struct {
	stderr *syncBuffer
	addrs  map[string]string // "http", "https", "health" -> host:port
}

// startRun runs the program with args (plus a JSON log) until the test
// ends, when it must exit 0; it returns once want listeners are up.
func startRun(t *testing.T, want int, args ...string) *inProcess {
	t.Helper()
	p := &inProcess{stderr: &syncBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(ctx, append([]string{"--log-format", "json"}, args...), io.Discard, p.stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			assert.Equal(t, exitOK, code, "log:\n%s", p.stderr.String())
		case <-time.After(10 * time.Second):
			t.Error("run did not return")
		}
	})
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if p.addrs = p.stderr.listening(); len(p.addrs) == want {
			return p
		}
		select {
		case code := <-done:
			done <- code
			t.Fatalf("run exited with %d:\n%s", code, p.stderr.String())
		default:
		}
	}
	t.Fatalf("run did not listen:\n%s", p.stderr.String())
	return nil
}

// The whole program in-process, configured by flags: HTTPS with mutual
// TLS and a health listener, stopped as by SIGTERM.
func TestRunMutualTLS(t *testing.T) {
	repo := newRepoAt(t, time.Now(), 8<<10, time.Hour)
	deviceCA := newCA(t, "acme device CA")
	files := writeTLS(t, deviceCA)
	p := startRun(t, 2,
		"--repo", repo.dir, "--https", "127.0.0.1:0", "--health", "127.0.0.1:0",
		"--tls-cert", files.cert, "--tls-key", files.key, "--client-ca", files.clientCA,
		"--snapshot-key", snapshotKeyFile, "--timestamp-key", timestampKeyFile,
		"--timestamp-expiry", "1h", "--log-level", "debug")
	addrs, stderr := p.addrs, p.stderr

	code, h := getHealth(t, fmt.Sprintf("http://%s/healthz", addrs["health"]))
	assert.Equal(t, http.StatusOK, code)
	assert.EqualValues(t, 1, h.TimestampVersion)

	noCert := httpsClient(files.serverCA, nil)
	defer noCert.CloseIdleConnections()
	if resp, err := noCert.Get("https://" + addrs["https"] + "/metadata/timestamp.json"); err == nil {
		resp.Body.Close()
		t.Fatal("a device without a certificate was served")
	}

	device, _, _ := deviceCA.issue(t, "gw-0042", false)
	hc := httpsClient(files.serverCA, &device)
	defer hc.CloseIdleConnections()
	c := newClock(time.Now())
	refreshAndDownload(t, "https://"+addrs["https"], hc, repo, c)
	// The debug access log names the device by its certificate.
	assert.Contains(t, stderr.String(), `"device":"gw-0042"`)
}
