package verify

import (
	"bufio"
	"context"
	"io"
	"math"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rawServer listens on 127.0.0.1 and hands each connection to h. It is no
// HTTP server, so it can misbehave as hostile or broken ones do. done is
// closed when the test ends; every connection is closed then too.
func rawServer(t *testing.T, h func(c net.Conn, done <-chan struct{})) (url string, conns *atomic.Int64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	conns = new(atomic.Int64)
	done := make(chan struct{})
	var (
		mu   sync.Mutex
		open []net.Conn
		wg   sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				h(c, done)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		close(done)
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return "http://" + ln.Addr().String() + "/timestamp.json", conns
}

// silent accepts and never answers.
func silent(c net.Conn, _ <-chan struct{}) { io.Copy(io.Discard, c) }

// headersThen reads the request, sends headers announcing 1000 bytes, then
// calls body.
func headersThen(body func(c net.Conn, done <-chan struct{})) func(net.Conn, <-chan struct{}) {
	return func(c net.Conn, done <-chan struct{}) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"); err != nil {
			return
		}
		body(c, done)
	}
}

// trickle sends one byte every interval until the client goes away.
func trickle(interval time.Duration) func(net.Conn, <-chan struct{}) {
	return func(c net.Conn, done <-chan struct{}) {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			if _, err := c.Write([]byte("t")); err != nil {
				return
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}
}

// noTimeouts is a caller's client with no deadline of its own anywhere, as
// http.DefaultTransport.Clone() is for response headers.
func noTimeouts(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// fetchWithin fetches url and reads the whole body under a safety context,
// so a fetcher that does not bound itself fails the test instead of
// hanging it.
func fetchWithin(t *testing.T, f *HTTPFetcher, url string, max int64) (time.Duration, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	rc, err := f.Fetch(ctx, url, max)
	if err == nil {
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
	}
	return time.Since(start), err
}

// Silent and slow servers: every try ends with ErrSlowRetrieval within its
// configured bounds, though the caller's client has no timeout at all.
func TestHTTPFetcherBoundsSilentServers(t *testing.T) {
	const wait, window = 200 * time.Millisecond, 200 * time.Millisecond
	for _, tc := range []struct {
		name   string
		server func(net.Conn, <-chan struct{})
		bound  time.Duration
	}{
		{"no headers", silent, wait},
		{"headers then nothing", headersThen(silent), wait + window},
		{"one byte a second", headersThen(trickle(time.Second)), wait + window},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, _ := rawServer(t, tc.server)
			f := &HTTPFetcher{Client: noTimeouts(t), Retries: -1,
				HeaderTimeout: wait, MinSpeed: 100, SpeedWindow: window}
			took, err := fetchWithin(t, f, url, 1000)
			assert.ErrorIs(t, err, ErrSlowRetrieval)
			// Timers are not exact on a loaded machine: allow slack, but
			// far less than the safety context.
			assert.Less(t, took, tc.bound+2*time.Second)
		})
	}
}

// A server that never answers is retried, each try bounded, and the final
// error still says slow retrieval.
func TestHTTPFetcherRetriesSilentServer(t *testing.T) {
	url, conns := rawServer(t, silent)
	f := &HTTPFetcher{Client: noTimeouts(t), Retries: 2, Backoff: time.Millisecond, HeaderTimeout: 100 * time.Millisecond}
	_, err := fetchWithin(t, f, url, 1000)
	assert.ErrorIs(t, err, ErrSlowRetrieval)
	assert.ErrorIs(t, err, ErrFetchTransient)
	assert.Equal(t, int64(3), conns.Load(), "one connection per try")
}

// TotalTimeout cuts a transfer that keeps the minimum speed but would take
// longer than the caller allows.
func TestHTTPFetcherTotalTimeout(t *testing.T) {
	url, _ := rawServer(t, headersThen(trickle(10*time.Millisecond)))
	f := &HTTPFetcher{Client: noTimeouts(t), Retries: -1,
		MinSpeed: 1, SpeedWindow: 100 * time.Millisecond, TotalTimeout: 300 * time.Millisecond}
	_, err := fetchWithin(t, f, url, 1000)
	assert.ErrorIs(t, err, ErrSlowRetrieval)
	assert.ErrorContains(t, err, "not complete within")
}

func TestHTTPFetcherTotalTimeoutDerived(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    HTTPFetcher
		max  int64
		want time.Duration
	}{
		{"defaults", HTTPFetcher{}, 1 << 20,
			DefaultHeaderTimeout + 2*DefaultSpeedWindow + (1<<20/DefaultMinSpeed+1)*time.Second},
		{"configured", HTTPFetcher{TotalTimeout: time.Minute}, 1 << 40, time.Minute},
		{"own speed", HTTPFetcher{MinSpeed: 100, SpeedWindow: time.Second, HeaderTimeout: time.Second}, 1000,
			time.Second + 2*time.Second + 11*time.Second},
		{"guard disabled", HTTPFetcher{MinSpeed: -1}, 0,
			DefaultHeaderTimeout + 2*DefaultSpeedWindow + time.Second},
	} {
		assert.Equal(t, tc.want, tc.f.totalTimeout(tc.max), tc.name)
	}
	// Extreme settings saturate: the cap stays positive.
	huge := HTTPFetcher{MinSpeed: 1, SpeedWindow: math.MaxInt64, HeaderTimeout: math.MaxInt64}
	assert.Positive(t, huge.totalTimeout(math.MaxInt64))
}
