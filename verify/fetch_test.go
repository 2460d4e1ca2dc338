package verify

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// serve starts a real HTTP server on 127.0.0.1 and counts its requests.
func serve(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func fetchAll(t *testing.T, f Fetcher, url string, max int64) ([]byte, error) {
	t.Helper()
	rc, err := f.Fetch(context.Background(), url, max)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func TestHTTPFetcherLimits(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 1000)
	srv, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
		w.Write(body)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	})
	f := &HTTPFetcher{}
	for _, q := range []string{"", "?chunked=1"} {
		got, err := fetchAll(t, f, srv.URL+"/a"+q, 1000)
		require.NoError(t, err, q)
		assert.Equal(t, body, got, q)

		_, err = fetchAll(t, f, srv.URL+"/a"+q, 999)
		assert.ErrorIs(t, err, ErrTooLong, q)
	}
	_, err := f.Fetch(context.Background(), srv.URL, -1)
	assert.Error(t, err)
}

// An endless response stops at the limit: the endless-data attack.
func TestHTTPFetcherEndlessData(t *testing.T) {
	var sent atomic.Int64
	srv, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte("e"), 4096)
		for r.Context().Err() == nil {
			n, err := w.Write(chunk)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	got, err := fetchAll(t, &HTTPFetcher{}, srv.URL, 10000)
	assert.ErrorIs(t, err, ErrTooLong)
	assert.Len(t, got, 10000, "exactly the limit reaches the caller")
}

func TestHTTPFetcherStatus(t *testing.T) {
	for _, tc := range []struct {
		status int
		want   error
	}{{404, ErrNotFound}, {403, ErrNotFound}, {400, ErrHTTPStatus}, {410, ErrHTTPStatus}} {
		srv, n := serve(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(tc.status) })
		_, err := fetchAll(t, &HTTPFetcher{Backoff: time.Millisecond}, srv.URL, 10)
		assert.ErrorIs(t, err, tc.want, "%d", tc.status)
		var he *HTTPError
		require.ErrorAs(t, err, &he)
		assert.Equal(t, tc.status, he.StatusCode)
		assert.Equal(t, int64(1), n.Load(), "no retry for %d", tc.status)
	}
}

func TestHTTPFetcherRetries(t *testing.T) {
	var fails atomic.Int64
	fails.Store(2)
	srv, n := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if fails.Add(-1) >= 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	})
	got, err := fetchAll(t, &HTTPFetcher{Backoff: time.Millisecond}, srv.URL, 10)
	require.NoError(t, err)
	assert.Equal(t, "ok", string(got))
	assert.Equal(t, int64(3), n.Load())

	always, n2 := serve(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTooManyRequests) })
	_, err = fetchAll(t, &HTTPFetcher{Backoff: time.Millisecond, Retries: 2}, always.URL, 10)
	assert.ErrorIs(t, err, ErrFetchTransient)
	assert.ErrorIs(t, err, ErrHTTPStatus)
	assert.Equal(t, int64(3), n2.Load())

	n2.Store(0)
	_, err = fetchAll(t, &HTTPFetcher{Retries: -1}, always.URL, 10)
	assert.Error(t, err)
	assert.Equal(t, int64(1), n2.Load())

	// A refused connection is transient too.
	closed := httptest.NewServer(http.NotFoundHandler())
	url := closed.URL
	closed.Close()
	_, err = fetchAll(t, &HTTPFetcher{Backoff: time.Millisecond, Retries: 1}, url, 10)
	assert.ErrorIs(t, err, ErrFetchTransient)
}

func TestHTTPFetcherContextCancelsBackoff(t *testing.T) {
	srv, _ := serve(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := (&HTTPFetcher{Backoff: time.Hour}).Fetch(ctx, srv.URL, 10)
	assert.ErrorIs(t, err, context.Canceled)
}

// A server that trickles bytes is cut off: the slow-retrieval attack.
func TestHTTPFetcherSlowRetrieval(t *testing.T) {
	srv, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		for r.Context().Err() == nil {
			w.Write([]byte("s"))
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	f := &HTTPFetcher{MinSpeed: 10000, SpeedWindow: 100 * time.Millisecond}
	_, err := fetchAll(t, f, srv.URL, 100000)
	assert.ErrorIs(t, err, ErrSlowRetrieval)

	// A server that sends headers and then nothing at all.
	stall, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	_, err = fetchAll(t, f, stall.URL, 10)
	assert.ErrorIs(t, err, ErrSlowRetrieval)
}

func TestHTTPFetcherUsesGivenClientOnly(t *testing.T) {
	before := http.DefaultClient.Transport
	srv, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("User-Agent"))
	})
	var used atomic.Bool
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		used.Store(true)
		return http.DefaultTransport.RoundTrip(r)
	})}
	got, err := fetchAll(t, &HTTPFetcher{Client: client, UserAgent: "otaseal-test/1"}, srv.URL, 100)
	require.NoError(t, err)
	assert.Equal(t, "otaseal-test/1", string(got))
	assert.True(t, used.Load())
	assert.Equal(t, before, http.DefaultClient.Transport, "process-global client untouched")
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestFetcherFunc(t *testing.T) {
	var f Fetcher = FetcherFunc(func(ctx context.Context, url string, max int64) (io.ReadCloser, error) {
		if url == "missing" {
			return nil, ErrNotFound
		}
		return io.NopCloser(bytes.NewReader([]byte(url))), nil
	})
	got, err := fetchAll(t, f, "usb://stick/timestamp.json", 100)
	require.NoError(t, err)
	assert.Equal(t, "usb://stick/timestamp.json", string(got))
	_, err = f.Fetch(context.Background(), "missing", 1)
	assert.True(t, errors.Is(err, ErrNotFound))
}

func TestGuardedBodyReadAfterClose(t *testing.T) {
	srv, _ := serve(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "abc") })
	rc, err := (&HTTPFetcher{}).Fetch(context.Background(), srv.URL, 10)
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	_, err = rc.Read(make([]byte, 1))
	assert.Error(t, err)
}
