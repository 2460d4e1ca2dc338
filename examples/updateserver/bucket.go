package main

import (
	"bytes"
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	// The drivers --repo URLs may name: s3://, gs://, azblob://, file://.
	_ "github.com/otaseal/otaseal/internal/blobdrivers"
	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

// isBucketURL reports whether --repo names a bucket (s3://..., file://...)
// rather than a directory.
func isBucketURL(repo string) bool { return strings.Contains(repo, "://") }

// redactURL is a bucket URL fit for logs and /healthz: scheme and bucket,
// no query (which may carry an endpoint, never credentials, but need not
// be shown to anyone who can reach /healthz).
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable bucket URL)"
	}
	return u.Scheme + "://" + u.Host + u.Path
}

// metaCache keeps recently served metadata of a bucket in memory: every
// device asks for the same few documents, and a bucket round trip per
// request would make the bucket the bottleneck (and the bill). Versioned
// documents never change under their name and stay until evicted (least
// recently used first, within maxBytes); timestamp.json and root.json
// stay ttl, so that a re-signed timestamp reaches devices within ttl.
// Misses are cached for ttl too: a fleet asking for N+1.root.json costs
// the bucket one request per ttl, not one per device.
type metaCache struct {
	ttl      time.Duration
	maxBytes int
	now      func() time.Time

	mu    sync.Mutex
	lru   *list.List // of *cacheEntry, most recent first
	byKey map[string]*list.Element
	bytes int
}

type cacheEntry struct {
	key     string
	data    []byte // nil for a cached miss
	expires time.Time
}

func newMetaCache(ttl time.Duration, maxBytes int, now func() time.Time) *metaCache {
	return &metaCache{ttl: ttl, maxBytes: maxBytes, now: now, lru: list.New(), byKey: map[string]*list.Element{}}
}

// get returns the cached entry for key; ok is false when there is none
// or it expired.
func (c *metaCache) get(key string) (data []byte, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, found := c.byKey[key]
	if !found {
		return nil, false
	}
	e := el.Value.(*cacheEntry)
	if !e.expires.IsZero() && !c.now().Before(e.expires) {
		c.remove(el)
		return nil, false
	}
	c.lru.MoveToFront(el)
	return e.data, true
}

func (c *metaCache) put(key string, data []byte, immutable bool) {
	if len(data) > c.maxBytes/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, found := c.byKey[key]; found {
		c.remove(el)
	}
	e := &cacheEntry{key: key, data: data}
	if !immutable || data == nil {
		e.expires = c.now().Add(c.ttl)
	}
	c.byKey[key] = c.lru.PushFront(e)
	c.bytes += len(data) + len(key)
	for c.bytes > c.maxBytes && c.lru.Len() > 0 {
		c.remove(c.lru.Back())
	}
}

func (c *metaCache) remove(el *list.Element) {
	e := el.Value.(*cacheEntry)
	c.lru.Remove(el)
	delete(c.byKey, e.key)
	c.bytes -= len(e.data) + len(e.key)
}

// bucketFiles serves a repository from a bucket.
type bucketFiles struct {
	b     *blob.Bucket
	cache *metaCache
	// cdnBase, when set, is where target files are redirected to
	// (CDN_BASE/targets/...) instead of streamed through this server.
	cdnBase string
	// maxAge is timestamp.json's Cache-Control max-age.
	maxAge time.Duration
	// healthy reports whether the last repository check could read the
	// bucket: only then is a 403 from the bucket a miss.
	healthy func() bool

	// The newest timestamp this replica has answered (see
	// freshestTimestamp).
	tsMu      sync.Mutex
	tsVersion int64
	tsData    []byte
}

// maxClaimProbes bounds the claims freshestTimestamp looks for past
// timestamp.json in one read: each is a bucket request.
const maxClaimProbes = 8

// freshestTimestamp returns what to answer for timestamp.json, given the
// bytes read from the bucket: the newest committed timestamp. A newer
// claim metadata/N.timestamp.json (package sign's commit point) wins over
// timestamp.json, which lags it while a publisher copies and can even go
// back for a moment when a slow copy of an older claim lands after a newer
// one (a bucket cannot refuse that write). And a replica never answers a
// version older than one it answered before: a device that saw version N
// from this replica must not be shown N-1 and refuse it as a rollback.
func (s *server) freshestTimestamp(ctx context.Context, data []byte) ([]byte, error) {
	bf := s.bucket
	v := int64(-1)
	if md, err := manifest.ParseUnverified[manifest.Timestamp](manifest.RoleTimestamp, data, timestampLimits); err == nil {
		v = md.Signed.Version
	}
	for i := 0; v >= 0 && i < maxClaimProbes; i++ {
		key := fmt.Sprintf("%s/%d.timestamp.json", sign.MetadataDir, v+1)
		claim, err := s.readBucketDocument(ctx, key)
		if code := gcerrors.Code(err); code == gcerrors.NotFound || code == gcerrors.PermissionDenied {
			break
		}
		if err != nil {
			return nil, err
		}
		md, err := manifest.ParseUnverified[manifest.Timestamp](manifest.RoleTimestamp, claim, timestampLimits)
		if err != nil || md.Signed.Version != v+1 {
			s.log.Warn("ignoring a malformed timestamp claim", "key", key, "err", err)
			break
		}
		data, v = claim, v+1
	}
	bf.tsMu.Lock()
	defer bf.tsMu.Unlock()
	if v < bf.tsVersion {
		s.log.Warn("timestamp.json in the bucket is older than one already served: serving the newer", "bucket", v, "served", bf.tsVersion)
		return bf.tsData, nil
	}
	bf.tsVersion, bf.tsData = v, data
	return data, nil
}

// timestampLimits bounds a timestamp read from the bucket, as package sign
// bounds the documents it reads.
var timestampLimits = manifest.Limits{Timestamp: maxCachedDocument}

// maxCachedDocument bounds one metadata document read into the cache, as
// package sign bounds what it reads.
const maxCachedDocument = sign.MaxDocumentSize

// serveBucket answers for key ("metadata/..." or "targets/...").
func (s *server) serveBucket(w http.ResponseWriter, r *http.Request, rel string, metadata bool) {
	if !servable(rel) {
		http.NotFound(w, r)
		return
	}
	bf := s.bucket
	key := sign.TargetsDir + "/" + rel
	if metadata {
		key = sign.MetadataDir + "/" + rel
	}
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	// The same Cache-Control the object carries in the bucket: a CDN in
	// front of this server caches what it may and no more.
	h.Set("Cache-Control", sign.CacheControl(key, bf.maxAge))
	if !metadata {
		if bf.cdnBase != "" {
			http.Redirect(w, r, bf.cdnBase+"/"+key, http.StatusFound)
			return
		}
		rd, err := bf.b.NewReader(r.Context(), key, nil)
		if err != nil {
			s.bucketFailed(w, r, key, err)
			return
		}
		defer rd.Close()
		h.Set("Content-Type", "application/octet-stream")
		// blob.Reader seeks, so Range requests (a device resuming an
		// image) are served from the bucket without reading the rest.
		http.ServeContent(w, r, "", rd.ModTime(), rd)
		return
	}
	data, ok := bf.cache.get(key)
	if !ok {
		var err error
		data, err = s.readBucketDocument(r.Context(), key)
		if err == nil && rel == "timestamp.json" {
			data, err = s.freshestTimestamp(r.Context(), data)
		}
		switch {
		case err == nil:
			bf.cache.put(key, data, !unversioned(rel))
		case gcerrors.Code(err) == gcerrors.NotFound:
			bf.cache.put(key, nil, false)
		default:
			s.bucketFailed(w, r, key, err)
			return
		}
	}
	if data == nil {
		h.Del("Cache-Control")
		http.NotFound(w, r)
		return
	}
	h.Set("Content-Type", "application/json")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
}

func (s *server) readBucketDocument(ctx context.Context, key string) ([]byte, error) {
	rd, err := s.bucket.b.NewReader(ctx, key, nil)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	data, err := io.ReadAll(io.LimitReader(rd, maxCachedDocument+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxCachedDocument {
		return nil, fmt.Errorf("%s is larger than %d bytes", key, maxCachedDocument)
	}
	return data, nil
}

// bucketFailed answers for an object the bucket did not give. A missing
// object is 404 whatever the bucket said: S3 answers 403 for a missing
// key to a reader without s3:ListBucket, and a device must read a miss on
// N+1.root.json as "no newer root", never as an error it cannot get past
// (go-tuf since v2.2.0 fails on a 403 there). A 403 counts as a miss only
// while the server's own repository check reads the bucket; if it cannot
// (credentials revoked, bucket gone) everything is a 503, so that no
// outage looks like "no newer root".
func (s *server) bucketFailed(w http.ResponseWriter, r *http.Request, key string, err error) {
	code := gcerrors.Code(err)
	switch {
	case code == gcerrors.NotFound, code == gcerrors.PermissionDenied && s.bucket.healthy():
		w.Header().Del("Cache-Control")
		http.NotFound(w, r)
		return
	case errors.Is(err, context.Canceled):
		return
	}
	s.log.Error("bucket read failed: answering 503", "key", key, "err", err)
	w.Header().Del("Cache-Control")
	w.Header().Set("Retry-After", retryAfter)
	http.Error(w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
}

// bucketHealthy reports whether the last repository check succeeded.
func (s *server) bucketHealthy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status.err == nil && !s.status.checked.IsZero()
}

// defaultCacheTTL: how stale a replica's timestamp.json may be, on top of
// the CDN's max-age; seconds against a timestamp that lives for hours.
const defaultCacheTTL = 10 * time.Second

// maxCacheBytes bounds the metadata cache of one replica.
const maxCacheBytes = 64 << 20

// newBucketServer finishes newServer for a bucket repository.
func newBucketServer(ctx context.Context, s *server) (*server, error) {
	ttl := s.cfg.CacheTTL
	if ttl <= 0 {
		ttl = defaultCacheTTL
	}
	if s.store == nil {
		s.store = sign.NewBlobStorage(s.cfg.Bucket, sign.BlobStorageOptions{TimestampMaxAge: ttl})
	}
	s.bucket = &bucketFiles{
		b:       s.cfg.Bucket,
		cache:   newMetaCache(ttl, maxCacheBytes, time.Now),
		cdnBase: strings.TrimSuffix(s.cfg.CDNBase, "/"),
		maxAge:  ttl,
		healthy: s.bucketHealthy,
	}
	if err := s.openAndCheckKeys(ctx); err != nil {
		return nil, err
	}
	s.check(ctx)
	return s, nil
}
