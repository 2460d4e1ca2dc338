package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	tufconfig "github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
	"gocloud.dev/blob"

	"github.com/otaseal/otaseal/internal/s3test"
	"github.com/otaseal/otaseal/sign"
)

// bucketRepo is a test repository published into a fresh bucket.
type bucketRepo struct {
	*testRepo
	srv    *s3test.Server
	bucket *s3test.Bucket
}

// newBucketRepo publishes newRepoAt's repository and copies it into a
// public bucket, as the release tool with --repo s3://... leaves it.
func newBucketRepo(t *testing.T, now time.Time, imageSize int, tsExpiry time.Duration) *bucketRepo {
	t.Helper()
	srv := s3test.Require(t)
	repo := newRepoAt(t, now, imageSize, tsExpiry)
	b := srv.NewBucket(t, true)
	store := sign.NewBlobStorage(b.Blob, sign.BlobStorageOptions{})
	require.NoError(t, filepath.WalkDir(repo.dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, err := filepath.Rel(repo.dir, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return store.Put(context.Background(), filepath.ToSlash(rel), bytes.NewReader(data))
	}))
	return &bucketRepo{testRepo: repo, srv: srv, bucket: b}
}

// openBucket opens the bucket at rawURL as a replica would, with its own
// connection pool; credentials come from the environment.
func openBucket(t testing.TB, rawURL string) *blob.Bucket {
	t.Helper()
	b, err := blob.OpenBucket(context.Background(), rawURL)
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return b
}

// bucketConfig is testConfig for a replica serving bucketURL.
func bucketConfig(t testing.TB, br *bucketRepo, bucketURL string, c *clock) config {
	cfg := testConfig(t, br.testRepo, c)
	cfg.Dir = ""
	cfg.Bucket = openBucket(t, bucketURL)
	cfg.BucketURL = bucketURL
	return cfg
}

// goTUFRefresh runs go-tuf's updater against baseURL and downloads path.
func goTUFRefresh(t *testing.T, baseURL string, rootJSON []byte, now time.Time, path string) ([]byte, error) {
	t.Helper()
	dir := t.TempDir()
	cfg, err := tufconfig.New(baseURL+"/metadata/", rootJSON)
	require.NoError(t, err)
	cfg.LocalMetadataDir = filepath.Join(dir, "metadata")
	cfg.LocalTargetsDir = filepath.Join(dir, "targets")
	cfg.RemoteTargetsURL = baseURL + "/targets/"
	require.NoError(t, os.MkdirAll(cfg.LocalMetadataDir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(cfg.LocalMetadataDir, "root.json"), rootJSON, 0o644))
	up, err := updater.New(cfg)
	require.NoError(t, err)
	up.UnsafeSetRefTime(now)
	if err := up.Refresh(); err != nil {
		return nil, err
	}
	tf, err := up.GetTargetInfo(path)
	if err != nil {
		return nil, err
	}
	_, data, err := up.DownloadTarget(tf, filepath.Join(dir, "dl"), "")
	return data, err
}

// tufJSScript is package sign's tuf-js driver (sign/testdata/tufjs).
const tufJSScript = "../../sign/testdata/tufjs/fetch.js"

// requireTufJS returns node, or skips (fails under CI) without tuf-js.
func requireTufJS(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	_, modErr := os.Stat("../../sign/testdata/tufjs/node_modules/tuf-js")
	if err != nil || modErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("node and tuf-js are required in CI (npm ci --prefix sign/testdata/tufjs)")
		}
		t.Skip("node and tuf-js not installed (npm ci --prefix sign/testdata/tufjs)")
	}
	return node
}

// forbiddingProxy stands in front of the S3 server and turns every 404
// into the 403 "AccessDenied" that S3 gives a reader without
// s3:ListBucket. It keeps the Host header, so signatures still verify.
func forbiddingProxy(t *testing.T, endpoint string) string {
	t.Helper()
	target, err := url.Parse(endpoint)
	require.NoError(t, err)
	p := httputil.NewSingleHostReverseProxy(target)
	p.ModifyResponse = func(resp *http.Response) error {
		if resp.StatusCode == http.StatusNotFound {
			resp.Body.Close()
			body := `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`
			resp.StatusCode, resp.Status = http.StatusForbidden, "403 Forbidden"
			resp.Body = io.NopCloser(strings.NewReader(body))
			resp.ContentLength = int64(len(body))
			resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
			resp.Header.Set("Content-Type", "application/xml")
		}
		return nil
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv.URL
}

// Serving from a bucket: go-tuf, the otaseal client, and the bucket's own
// HTTP endpoint; Cache-Control per object; a miss is 404 even when the
// bucket says 403; /healthz names the bucket; targets redirect to a CDN.
func TestBucketServe(t *testing.T) {
	// Real time: tuf-js has no clock to set.
	now := time.Now().UTC().Truncate(time.Second)
	br := newBucketRepo(t, now, 64<<10, time.Hour)
	br.srv.SetCredentialsEnv(t)
	c := newClock(now.Add(time.Minute))
	r := start(t, bucketConfig(t, br, br.bucket.URL, c), nil)

	for _, base := range []string{r.httpURL, br.bucket.HTTP} {
		got, err := goTUFRefresh(t, base, br.rootJSON, c.Now(), firmwarePath)
		require.NoError(t, err, base)
		assert.Equal(t, br.image, got)
	}
	// otaseal's client, as the device agent runs it, and tuf-js: through
	// the update server and from the bucket's own endpoint.
	node := requireTufJS(t)
	rootFile := filepath.Join(t.TempDir(), "root.json")
	require.NoError(t, os.WriteFile(rootFile, br.rootJSON, 0o644))
	for _, base := range []string{r.httpURL, br.bucket.HTTP} {
		client, _ := newClient(t, base, http.DefaultClient, br.rootJSON, c)
		require.NoError(t, client.Refresh(context.Background()), base)
		tf, _, err := client.FindTarget(context.Background(), firmwarePath)
		require.NoError(t, err)
		var buf bytes.Buffer
		require.NoError(t, client.Download(context.Background(), firmwarePath, tf, &buf))
		assert.Equal(t, br.image, buf.Bytes())

		cmd := exec.Command(node, tufJSScript, base+"/metadata/", base+"/targets/", rootFile, t.TempDir(), firmwarePath)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "tuf-js via %s: %s", base, out)
		sum := sha256.Sum256(br.image)
		assert.Contains(t, string(out), hex.EncodeToString(sum[:]), base)
	}

	get := func(u string) *http.Response {
		t.Helper()
		resp, err := http.Get(u)
		require.NoError(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	resp := get(r.httpURL + "/metadata/timestamp.json")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "public, max-age=10", resp.Header.Get("Cache-Control"))
	resp = get(r.httpURL + "/metadata/1.root.json")
	assert.Equal(t, "public, max-age=31536000, immutable", resp.Header.Get("Cache-Control"))
	resp = get(r.httpURL + "/metadata/2.root.json")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.Empty(t, resp.Header.Get("Cache-Control"))
	resp = get(r.httpURL + "/metadata/../secret")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)

	code, rep := getHealth(t, r.healthURL)
	assert.Equal(t, http.StatusOK, code, "%+v", rep)
	assert.Equal(t, "s3://"+br.bucket.Name, rep.Repository)
	require.NotNil(t, rep.BucketReadable)
	assert.True(t, *rep.BucketReadable)

	t.Run("bucket answers 403 for misses", func(t *testing.T) {
		proxy := forbiddingProxy(t, br.srv.Endpoint)
		proxied := strings.Replace(br.bucket.URL, url.QueryEscape(br.srv.Endpoint), url.QueryEscape(proxy), 1)
		require.NotEqual(t, br.bucket.URL, proxied)
		assert.Equal(t, http.StatusForbidden, get(proxy+"/"+br.bucket.Name+"/metadata/2.root.json").StatusCode)
		cfg := bucketConfig(t, br, proxied, c)
		// Serving reads go through the 403 proxy; the re-sign checks
		// (package sign, which needs s3:ListBucket) do not.
		cfg.Store = sign.NewBlobStorage(openBucket(t, br.bucket.URL), sign.BlobStorageOptions{})
		r2 := start(t, cfg, nil)
		resp := get(r2.httpURL + "/metadata/2.root.json")
		assert.Equal(t, http.StatusNotFound, resp.StatusCode, "the server answers 404 for a missing object whatever the bucket says")
		got, err := goTUFRefresh(t, r2.httpURL, br.rootJSON, c.Now(), firmwarePath)
		require.NoError(t, err)
		assert.Equal(t, br.image, got)
	})

	t.Run("CDN redirect", func(t *testing.T) {
		cfg := bucketConfig(t, br, br.bucket.URL, c)
		cfg.CDNBase = br.bucket.HTTP // the bucket's own endpoint stands in for the CDN
		r3 := start(t, cfg, nil)
		got, err := goTUFRefresh(t, r3.httpURL, br.rootJSON, c.Now(), firmwarePath)
		require.NoError(t, err)
		assert.Equal(t, br.image, got)
		noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := noFollow.Get(r3.httpURL + "/targets/" + firmwarePath)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusFound, resp.StatusCode)
		assert.True(t, strings.HasPrefix(resp.Header.Get("Location"), br.bucket.HTTP+"/targets/"))
	})
}

// Three replicas on one bucket renewing at once: exactly one new
// timestamp version per renewal period, whoever writes it.
func TestBucketReplicasRenewOnce(t *testing.T) {
	br := newBucketRepo(t, t0, 1024, time.Hour)
	br.srv.SetCredentialsEnv(t)
	c := newClock(t0)
	var servers []*server
	for i := 0; i < 3; i++ {
		s, err := newServer(context.Background(), bucketConfig(t, br, br.bucket.URL, c))
		require.NoError(t, err)
		t.Cleanup(s.close)
		servers = append(servers, s)
	}
	version := func() int64 {
		store := sign.NewBlobStorage(br.bucket.Blob, sign.BlobStorageOptions{})
		repo, err := sign.OpenRepository(context.Background(), store, sign.RepositoryOptions{})
		require.NoError(t, err)
		defer repo.Close()
		return repo.Timestamp().Signed.Version
	}
	v := version()
	for period := 1; period <= 5; period++ {
		// Past the re-sign margin (30 minutes before a 1 h expiry).
		c.Set(t0.Add(time.Duration(period) * 35 * time.Minute))
		var wg sync.WaitGroup
		errs := make([]error, len(servers))
		for i, s := range servers {
			wg.Go(func() { errs[i] = s.check(context.Background()) })
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		assert.Equal(t, v+1, version(), "period %d: one new timestamp", period)
		v = version()
		for _, s := range servers {
			assert.Equal(t, v, s.status.timestampVersion, "every replica reports the renewed timestamp")
		}
	}
}

// "updateserver renew" re-signs a due timestamp once and exits; run again
// it finds the timestamp fresh.
func TestRenewCommand(t *testing.T) {
	br := newBucketRepo(t, time.Now().Add(-45*time.Minute).UTC().Truncate(time.Second), 1024, time.Hour)
	br.srv.SetCredentialsEnv(t)
	args := []string{"renew", "--repo", br.bucket.URL, "--snapshot-key", snapshotKeyFile, "--timestamp-key", timestampKeyFile,
		"--timestamp-expiry", "1h", "--resign-before", "30m", "--check-every", "1m", "--log-format", "json"}
	var out, errOut bytes.Buffer
	require.Equal(t, exitOK, run(context.Background(), args, &out, &errOut), errOut.String())
	var rep renewReport
	require.NoError(t, json.Unmarshal(out.Bytes(), &rep), out.String())
	assert.True(t, rep.Renewed)
	assert.Equal(t, int64(2), rep.TimestampVersion)
	assert.Equal(t, "s3://"+br.bucket.Name, rep.Repository)

	out.Reset()
	require.Equal(t, exitOK, run(context.Background(), args, &out, &errOut), errOut.String())
	require.NoError(t, json.Unmarshal(out.Bytes(), &rep), out.String())
	assert.False(t, rep.Renewed)
	assert.Equal(t, int64(2), rep.TimestampVersion)

	// A bucket that is not a repository: exit 3 at setup.
	empty := br.srv.NewBucket(t, false)
	args[2] = empty.URL
	assert.Equal(t, exitSetup, run(context.Background(), args, io.Discard, io.Discard))
}
