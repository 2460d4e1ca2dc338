package verify

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/otaseal/otaseal/manifest"
)

// TargetError names the target (and the patch it came through, if any)
// whose download or check failed.
type TargetError struct {
	Path string
	Via  string // the patch's path, when the image was built from one
	Err  error
}

func (e *TargetError) Error() string {
	// The cause usually carries the package prefix already.
	cause := strings.TrimPrefix(e.Err.Error(), "verify: ")
	if e.Via != "" {
		return fmt.Sprintf("verify: target %q from patch %q: %s", e.Path, e.Via, cause)
	}
	return fmt.Sprintf("verify: target %q: %s", e.Path, cause)
}

func (e *TargetError) Unwrap() error { return e.Err }

// targetURL is where the target at path lives below a mirror's
// TargetsURL: each path segment escaped, and with consistent snapshots the
// file name prefixed by its hash (TUF 5.7.3).
func (c *Client) targetURL(path string, tf *manifest.TargetFile) (string, error) {
	if c.cfg.TargetsURL == "" {
		return "", fmt.Errorf("%w: no TargetsURL", ErrConfig)
	}
	segs := strings.Split(path, "/")
	if c.trusted.Root.Signed.ConsistentSnapshot {
		h, ok := tf.Hashes["sha256"]
		if !ok {
			h = tf.Hashes["sha512"]
		}
		last := len(segs) - 1
		segs[last] = hex.EncodeToString(h) + "." + segs[last]
	}
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/"), nil
}

// Download streams the target at path, as the trusted entry tf describes
// it, into dst while checking its length and every hash. It returns nil only
// when all of them matched; otherwise the bytes written to dst must not be
// used. It never writes more than the signed length to dst.
func (c *Client) Download(ctx context.Context, path string, tf *manifest.TargetFile, dst io.Writer) error {
	return c.download(ctx, path, tf, dst, nil)
}

// download is Download, adding the bytes received to *count when count is
// not nil.
func (c *Client) download(ctx context.Context, path string, tf *manifest.TargetFile, dst io.Writer, count *int64) error {
	if c.trusted == nil {
		return ErrNotRefreshed
	}
	u, err := c.targetURL(path, tf)
	if err != nil {
		return err
	}
	cw, err := NewCheckedWriter(dst, tf.Length, tf.Hashes)
	if err != nil {
		return &TargetError{Path: path, Err: err}
	}
	// A body cut short by a fault of the mirror (it died, the network
	// broke) is fetched again, from the next mirror that answers, and
	// continued where it stopped: the bytes already written are read and
	// dropped. Every byte written still goes through cw, whose length and
	// hashes decide, so a mirror serving other bytes is caught as before.
	var written int64
	for attempt := 0; ; attempt++ {
		rc, err := c.fetch(ctx, u, tf.Length, count)
		if err != nil {
			return &TargetError{Path: path, Err: err}
		}
		body := &faultReader{r: rc}
		if _, err = io.CopyN(io.Discard, body, written); err == nil {
			var n int64
			n, err = io.Copy(cw, body)
			written += n
		}
		rc.Close()
		if err == nil {
			break
		}
		if body.err == nil || !failover(ctx, body.err) || attempt+1 >= len(c.mirrors.all) {
			return &TargetError{Path: path, Err: err}
		}
		c.log.Warn("target download cut short, continuing from another mirror", "path", path, "at", written, "err", err)
		c.mirrors.demote()
	}
	if err := cw.Finish(); err != nil {
		return &TargetError{Path: path, Err: err}
	}
	return nil
}

// faultReader keeps the error its reader returned, so that a failed copy
// tells a fault of the body (worth another mirror) from a refusal by the
// checking writer (final).
type faultReader struct {
	r   io.Reader
	err error
}

func (f *faultReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err != nil && err != io.EOF {
		f.err = err
	}
	return n, err
}

// fetch opens the target file rel (targetURL) at a mirror with the
// Client's Fetcher and, when count is not nil, adds to *count every byte
// read from it. The count belongs to the caller's call alone: the Fetcher
// is shared by every call of the Client.
func (c *Client) fetch(ctx context.Context, rel string, maxLength int64, count *int64) (io.ReadCloser, error) {
	rc, err := c.fetchFrom(ctx, targetsBase, rel, maxLength)
	if err != nil || count == nil {
		return rc, err
	}
	return &countingBody{rc, count}, nil
}

// countingBody counts the bytes read through it.
type countingBody struct {
	io.ReadCloser
	n *int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	*b.n += int64(n)
	return n, err
}
