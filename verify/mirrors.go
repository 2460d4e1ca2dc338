package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
)

// Mirror is one more place a repository is served from (TUF's mirrors):
// an update server replica, a CDN, the bucket's own endpoint. Every mirror
// serves the same repository; what a device trusts still comes only from
// signatures, so a mirror is trusted for availability, never for content.
type Mirror struct {
	// MetadataURL and TargetsURL are base URLs ending in "/", as in
	// Config. TargetsURL may be empty for a mirror of metadata only, or
	// in a MetadataOnly client.
	MetadataURL, TargetsURL string
}

// mirrorList is the Client's mirrors, Config's own URLs first, and the
// one that served last, tried first next time.
type mirrorList struct {
	all  []Mirror
	pref atomic.Int32
}

func newMirrorList(cfg Config) (*mirrorList, error) {
	ml := &mirrorList{all: append([]Mirror{{MetadataURL: cfg.MetadataURL, TargetsURL: cfg.TargetsURL}}, cfg.Mirrors...)}
	for i, m := range ml.all[1:] {
		if !strings.HasSuffix(m.MetadataURL, "/") {
			return nil, fmt.Errorf("%w: Mirrors[%d].MetadataURL %q must end in /", ErrConfig, i, m.MetadataURL)
		}
		if m.TargetsURL != "" && !strings.HasSuffix(m.TargetsURL, "/") {
			return nil, fmt.Errorf("%w: Mirrors[%d].TargetsURL %q must end in /", ErrConfig, i, m.TargetsURL)
		}
	}
	return ml, nil
}

// order returns the mirror indexes to try, the preferred one first.
func (ml *mirrorList) order() []int {
	n := len(ml.all)
	start := int(ml.pref.Load()) % n
	out := make([]int, n)
	for i := range out {
		out[i] = (start + i) % n
	}
	return out
}

// demote makes the mirror after the preferred one preferred: the
// preferred one just served a body that broke off.
func (ml *mirrorList) demote() {
	n := int32(len(ml.all))
	for {
		cur := ml.pref.Load()
		if ml.pref.CompareAndSwap(cur, (cur+1)%n) {
			return
		}
	}
}

// failover reports whether err, from one mirror, is worth asking another
// mirror: the mirror is unreachable, slow, overloaded or broken (network
// errors, 5xx, 429, a body cut short). A 404 is an answer, not a fault:
// every mirror serves the same repository, and "no newer root" must not
// become a probe of every mirror. A cancelled context ends the fetch.
func failover(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrTooLong) {
		return false
	}
	var he *HTTPError
	if errors.As(err, &he) {
		return he.StatusCode >= 500 || he.StatusCode == 429
	}
	return true
}

// onceFetcher is a Fetcher that can also make a single attempt. With
// several mirrors the client asks each mirror once before it lets the
// fetcher retry any: a dead mirror then costs one attempt, not the
// fetcher's whole retry schedule, before the next one is asked.
type onceFetcher interface {
	fetchOnce(ctx context.Context, url string, maxLength int64) (io.ReadCloser, error)
}

// fetchFrom opens rel (below a mirror's base URL, chosen by base) at the
// preferred mirror and fails over to the next on a fault: first one
// attempt at each mirror, then, if all failed, the fetcher's retries at
// each. The mirror that answered, even with a 404, becomes the preferred
// one. When every
// mirror fails, the error is the preferred mirror's.
func (c *Client) fetchFrom(ctx context.Context, base func(Mirror) string, rel string, maxLength int64) (io.ReadCloser, error) {
	passes := []func(context.Context, string, int64) (io.ReadCloser, error){c.fetcher.Fetch}
	if of, ok := c.fetcher.(onceFetcher); ok && len(c.mirrors.all) > 1 {
		passes = append([]func(context.Context, string, int64) (io.ReadCloser, error){of.fetchOnce}, passes...)
	}
	var first error
	for _, fetch := range passes {
		for _, i := range c.mirrors.order() {
			b := base(c.mirrors.all[i])
			if b == "" {
				continue
			}
			rc, err := fetch(ctx, b+rel, maxLength)
			if err == nil {
				c.mirrors.pref.Store(int32(i))
				return rc, nil
			}
			if first == nil {
				first = err
			}
			if !failover(ctx, err) {
				if ctx.Err() == nil {
					// An answer (a 404 on the next root): this mirror is up.
					c.mirrors.pref.Store(int32(i))
				}
				return nil, err
			}
			if len(c.mirrors.all) > 1 {
				c.log.Warn("mirror failed, trying the next", "url", b+rel, "err", err)
			}
		}
		if first == nil {
			return nil, fmt.Errorf("%w: no mirror has a targets URL", ErrConfig)
		}
	}
	return nil, first
}

func metadataBase(m Mirror) string { return m.MetadataURL }
func targetsBase(m Mirror) string  { return m.TargetsURL }
