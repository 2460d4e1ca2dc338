package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	neturl "net/url"
	"sync"
	"time"
)

// Errors of fetching.
var (
	ErrNotFound       = errors.New("verify: not found")
	ErrHTTPStatus     = errors.New("verify: unexpected HTTP status")
	ErrTooLong        = errors.New("verify: download longer than its limit")
	ErrSlowRetrieval  = errors.New("verify: download slower than the minimum speed")
	ErrFetchTransient = errors.New("verify: fetch failed after retries")
)

// Fetcher retrieves one resource (a metadata document or a target) as a
// stream. Transports other than HTTP (USB stick, serial link, a peer on the
// local network) implement it too.
//
// Fetch returns ErrNotFound (wrapped) when the resource does not exist: the
// root rotation walk ends on it. The stream it returns yields at most
// maxLength bytes; if the resource is longer, a Read fails with ErrTooLong
// after maxLength bytes, so an endless response costs a bounded amount of
// work. The caller closes the stream. ctx bounds the whole transfer,
// including reads from the stream.
type Fetcher interface {
	Fetch(ctx context.Context, url string, maxLength int64) (io.ReadCloser, error)
}

// FetcherFunc adapts a function to Fetcher.
type FetcherFunc func(ctx context.Context, url string, maxLength int64) (io.ReadCloser, error)

// Fetch calls f.
func (f FetcherFunc) Fetch(ctx context.Context, url string, maxLength int64) (io.ReadCloser, error) {
	return f(ctx, url, maxLength)
}

// HTTPFetcher fetches over HTTP(S). Its zero value is ready to use with safe
// defaults; it never touches http.DefaultClient or other process-wide state.
//
// Every try is bounded in time by HTTPFetcher itself, whatever Client's
// Transport does: HeaderTimeout from sending the request to the response
// headers (connect and TLS included), then the MinSpeed guard while the
// body streams, and TotalTimeout over the whole try. A try that runs out of
// any of these fails with ErrSlowRetrieval (wrapped). Retries happen only
// before a body is returned, so a Fetch takes at most Retries+1 header
// waits plus the backoffs, then one TotalTimeout for the body.
type HTTPFetcher struct {
	// Client sends the requests; set it for mTLS device identity, proxies
	// or a pinned CA. Nil means a private client. Its own timeouts, if
	// any, apply as well; none are needed.
	Client *http.Client
	// UserAgent, if set, is sent with every request.
	UserAgent string
	// Retries is how many times a transient failure (network error, 5xx,
	// 429) is retried before the body starts; 0 means DefaultRetries,
	// negative means none.
	Retries int
	// Backoff is the first wait between tries, doubled each time; 0 means
	// DefaultBackoff.
	Backoff time.Duration
	// MinSpeed and SpeedWindow guard against slow retrieval: a transfer
	// that receives fewer than MinSpeed bytes per second over any
	// SpeedWindow fails with ErrSlowRetrieval. 0 means the defaults;
	// negative MinSpeed disables the guard.
	MinSpeed    int64
	SpeedWindow time.Duration
	// HeaderTimeout bounds each try from sending the request until the
	// response headers arrive: a server that accepts the connection and
	// never answers (or a dial that hangs) is given up on after it. 0 means
	// DefaultHeaderTimeout; it cannot be disabled.
	HeaderTimeout time.Duration
	// TotalTimeout bounds each try as a whole, headers and body, including
	// the time the caller spends between reads. 0 means a cap derived from
	// the length limit: HeaderTimeout + 2*SpeedWindow + maxLength/MinSpeed
	// seconds (DefaultMinSpeed when the guard is disabled), which a
	// transfer at the minimum speed always meets. Set it when the guard is
	// disabled for a link slower than DefaultMinSpeed.
	TotalTimeout time.Duration
	// Logger receives retries at debug level; nil means no logging.
	Logger *slog.Logger
}

// Defaults of HTTPFetcher.
const (
	DefaultRetries     = 3
	DefaultBackoff     = 500 * time.Millisecond
	DefaultMinSpeed    = 1024 // bytes per second: a slow cellular link still does far better
	DefaultSpeedWindow = 30 * time.Second
	// DefaultHeaderTimeout is generous for a cellular link's connect, TLS
	// handshake and a busy server, and short enough that a device stuck
	// on a silent server retries or gives up within minutes.
	DefaultHeaderTimeout = 30 * time.Second
)

var (
	defaultClientOnce sync.Once
	defaultClient     *http.Client
)

// privateClient has connection-level timeouts only; the time of a try is
// bounded by HTTPFetcher's own deadlines, the same for every client.
func privateClient() *http.Client {
	defaultClientOnce.Do(func() {
		dialer := &net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}
		defaultClient = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         dialer.DialContext,
			TLSHandshakeTimeout: 15 * time.Second,
			IdleConnTimeout:     90 * time.Second,
			MaxIdleConnsPerHost: 4,
			ForceAttemptHTTP2:   true,
		}}
	})
	return defaultClient
}

// HTTPError carries the status of a refused request.
type HTTPError struct {
	URL        string
	StatusCode int
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("verify: GET %s: HTTP %d", e.URL, e.StatusCode)
}

func (e *HTTPError) Unwrap() error {
	if e.StatusCode == http.StatusNotFound || e.StatusCode == http.StatusForbidden {
		// Static hosting (S3 and friends) answers 403 for a missing key.
		return ErrNotFound
	}
	return ErrHTTPStatus
}

// Fetch implements Fetcher.
func (f *HTTPFetcher) Fetch(ctx context.Context, url string, maxLength int64) (io.ReadCloser, error) {
	if maxLength < 0 {
		return nil, fmt.Errorf("verify: negative length limit %d for %s", maxLength, url)
	}
	retries := f.Retries
	if retries == 0 {
		retries = DefaultRetries
	}
	if retries < 0 {
		retries = 0
	}
	backoff := f.Backoff
	if backoff <= 0 {
		backoff = DefaultBackoff
	}
	var lastErr error
	for attempt := 0; attempt <= retries; attempt++ {
		if attempt > 0 {
			if f.Logger != nil {
				f.Logger.Debug("retrying fetch", "url", url, "attempt", attempt, "err", lastErr)
			}
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
			}
			backoff *= 2
		}
		body, err, transient := f.try(ctx, url, maxLength)
		if err == nil {
			return body, nil
		}
		if !transient || ctx.Err() != nil {
			return nil, err
		}
		lastErr = err
	}
	// lastErr names the URL; one mention is enough for a log line.
	return nil, fmt.Errorf("%w (%d tries): %w", ErrFetchTransient, retries+1, lastErr)
}

// fetchOnce is Fetch without retries (see onceFetcher).
func (f *HTTPFetcher) fetchOnce(ctx context.Context, url string, maxLength int64) (io.ReadCloser, error) {
	once := *f
	once.Retries = -1
	return once.Fetch(ctx, url, maxLength)
}

// try sends one request. Its deadlines are timers that cancel the request's
// context with an ErrSlowRetrieval cause, because only cancelling unblocks a
// Read or a Do that waits on a silent server, and the caller's Transport may
// have no timeouts at all.
func (f *HTTPFetcher) try(ctx context.Context, url string, maxLength int64) (io.ReadCloser, error, bool) {
	reqCtx, cancel := context.WithCancelCause(ctx)
	total := f.totalTimeout(maxLength)
	deadline := time.AfterFunc(total, func() {
		cancel(fmt.Errorf("%w: %s: not complete within %v", ErrSlowRetrieval, url, total))
	})
	abort := func() {
		deadline.Stop()
		cancel(nil)
	}
	req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, url, nil)
	if err != nil {
		abort()
		return nil, fmt.Errorf("verify: %w", err), false
	}
	if f.UserAgent != "" {
		req.Header.Set("User-Agent", f.UserAgent)
	}
	client := f.Client
	if client == nil {
		client = privateClient()
	}
	wait := f.headerTimeout()
	headers := time.AfterFunc(wait, func() {
		cancel(fmt.Errorf("%w: %s: no response headers within %v", ErrSlowRetrieval, url, wait))
	})
	resp, err := client.Do(req)
	headers.Stop()
	// A deadline may fire just after Do returned: the body is then dead.
	if cause := context.Cause(reqCtx); errors.Is(cause, ErrSlowRetrieval) {
		if err == nil {
			resp.Body.Close()
		}
		abort()
		return nil, cause, true
	}
	if err != nil {
		abort()
		return nil, &getError{url: url, err: err}, true
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		abort()
		transient := resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests
		return nil, &HTTPError{URL: url, StatusCode: resp.StatusCode}, transient
	}
	// Refuse up front what announces itself as too long.
	if resp.ContentLength > maxLength {
		resp.Body.Close()
		abort()
		return nil, fmt.Errorf("%w: %s announces %d bytes, limit %d", ErrTooLong, url, resp.ContentLength, maxLength), false
	}
	g := newGuardedBody(resp.Body, cancel, url, maxLength, f.minSpeed(), f.window())
	g.ctx, g.deadline = reqCtx, deadline
	return g, nil, false
}

func (f *HTTPFetcher) minSpeed() int64 {
	if f.MinSpeed == 0 {
		return DefaultMinSpeed
	}
	return f.MinSpeed
}

func (f *HTTPFetcher) window() time.Duration {
	if f.SpeedWindow <= 0 {
		return DefaultSpeedWindow
	}
	return f.SpeedWindow
}

func (f *HTTPFetcher) headerTimeout() time.Duration {
	if f.HeaderTimeout <= 0 {
		return DefaultHeaderTimeout
	}
	return f.HeaderTimeout
}

// totalTimeout is TotalTimeout, or the time a transfer of maxLength bytes
// at the minimum speed needs, with a header wait and two windows to spare.
func (f *HTTPFetcher) totalTimeout(maxLength int64) time.Duration {
	if f.TotalTimeout > 0 {
		return f.TotalTimeout
	}
	speed := f.minSpeed()
	if speed < 0 {
		speed = DefaultMinSpeed
	}
	// Saturate rather than overflow for a limit of petabytes: the cap is
	// then a century, which is no cap, but neither is it negative.
	const maxSeconds = int64(math.MaxInt64/time.Second) / 4
	body := min(maxLength/speed+1, maxSeconds)
	return min(f.headerTimeout(), maxDuration/4) + 2*min(f.window(), maxDuration/8) + time.Duration(body)*time.Second
}

const maxDuration = time.Duration(math.MaxInt64)

// getError is a request that got no response. It keeps net/http's error in
// the chain for errors.As (net.Error, TLS certificate errors) but prints its
// cause alone: the *url.Error would name the method and URL a second time.
type getError struct {
	url string
	err error
}

func (e *getError) Error() string {
	cause := e.err
	var ue *neturl.Error
	if errors.As(cause, &ue) {
		cause = ue.Err
	}
	return fmt.Sprintf("verify: GET %s: %v", e.url, cause)
}

func (e *getError) Unwrap() error { return e.err }
