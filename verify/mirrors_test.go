package verify

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/manifest"
)

// mirrorServer serves what upstream serves, unless answer says otherwise
// for a path; it counts requests.
type mirrorServer struct {
	*httptest.Server
	requests atomic.Int64
}

func newMirrorServer(t *testing.T, upstream string, answer func(w http.ResponseWriter, path string) bool) *mirrorServer {
	t.Helper()
	m := &mirrorServer{}
	m.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		m.requests.Add(1)
		if answer != nil && answer(w, req.URL.Path) {
			return
		}
		resp, err := http.Get(upstream + req.URL.Path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(m.Close)
	return m
}

func (m *mirrorServer) mirror() Mirror {
	return Mirror{MetadataURL: m.URL + "/metadata/", TargetsURL: m.URL + "/targets/"}
}

// newMirrorClient is newClient over mirrors, the first as Config's URLs.
func newMirrorClient(t *testing.T, r *repo, mirrors ...Mirror) (*Client, *memStore) {
	t.Helper()
	store := newMemStore()
	require.NoError(t, Bootstrap(context.Background(), store, r.RootJSON(1), manifest.Limits{}))
	c, err := New(context.Background(), Config{
		MetadataURL: mirrors[0].MetadataURL, TargetsURL: mirrors[0].TargetsURL, Mirrors: mirrors[1:],
		Fetcher: &HTTPFetcher{Retries: -1}, Store: store, Clock: &fixedClock{testNow},
	})
	require.NoError(t, err)
	return c, store
}

func download(t *testing.T, c *Client, path string) ([]byte, error) {
	t.Helper()
	tf, _, err := c.FindTarget(context.Background(), path)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	err = c.Download(context.Background(), path, tf, &buf)
	return buf.Bytes(), err
}

// A mirror that is down or answers 5xx is skipped, for metadata and for
// targets; the one that served is asked first next time.
func TestMirrorsFailOverOnFaults(t *testing.T) {
	r := newRepo(t)
	r.AddTarget("targets", "fw.bin", []byte("firmware"), nil)
	r.Publish()
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close() // connection refused
	broken := newMirrorServer(t, r.Srv.URL, func(w http.ResponseWriter, path string) bool {
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
		return true
	})
	good := newMirrorServer(t, r.Srv.URL, nil)
	c, _ := newMirrorClient(t, r,
		Mirror{MetadataURL: dead.URL + "/metadata/", TargetsURL: dead.URL + "/targets/"},
		broken.mirror(), good.mirror())
	require.NoError(t, c.Refresh(context.Background()))
	got, err := download(t, c, "fw.bin")
	require.NoError(t, err)
	assert.Equal(t, "firmware", string(got))

	before := broken.requests.Load()
	require.NoError(t, c.Refresh(context.Background()))
	assert.Equal(t, before, broken.requests.Load(), "the mirror that served is asked first")

	// Targets fail over on their own: metadata from good, the image
	// from good although the preferred mirror is now the broken one.
	c.mirrors.pref.Store(1)
	got, err = download(t, c, "fw.bin")
	require.NoError(t, err)
	assert.Equal(t, "firmware", string(got))
}

// A mirror whose metadata does not verify (forged, or frozen at an old
// version) cannot keep the device from a good mirror's update: Refresh
// tries the others before giving up, and stores nothing the bad one sent.
func TestMirrorsRefusedMetadataTriesOthers(t *testing.T) {
	r := newRepo(t)
	r.AddTarget("targets", "fw-1.bin", []byte("one"), nil)
	r.Publish()
	oldVersion := r.Timestamp.Signed.Version
	oldBytes := r.File("metadata/timestamp.json")
	r.AddTarget("targets", "fw-2.bin", []byte("two"), nil)
	r.Publish()
	require.Less(t, oldVersion, r.Timestamp.Signed.Version)

	forged := newMirrorServer(t, r.Srv.URL, func(w http.ResponseWriter, path string) bool {
		if strings.HasSuffix(path, "timestamp.json") {
			doc := bytes.Replace(r.File("metadata/timestamp.json"), []byte(`"sig":"`), []byte(`"sig":"00`), 1)
			w.Write(doc)
			return true
		}
		return false
	})
	good := newMirrorServer(t, r.Srv.URL, nil)
	c, _ := newMirrorClient(t, r, forged.mirror(), good.mirror())
	require.NoError(t, c.Refresh(context.Background()))
	got, err := download(t, c, "fw-2.bin")
	require.NoError(t, err)
	assert.Equal(t, "two", string(got))

	// A mirror frozen at the old (still valid) timestamp after the device
	// saw the new one: rollback refused, the good mirror serves.
	frozen := newMirrorServer(t, r.Srv.URL, func(w http.ResponseWriter, path string) bool {
		if strings.HasSuffix(path, "timestamp.json") {
			w.Write(oldBytes)
			return true
		}
		return false
	})
	c2, store := newMirrorClient(t, r, good.mirror(), frozen.mirror())
	require.NoError(t, c2.Refresh(context.Background()))
	c2.mirrors.pref.Store(1)
	require.NoError(t, c2.Refresh(context.Background()))
	ts, err := store.LoadMetadata(context.Background(), manifest.RoleTimestamp)
	require.NoError(t, err)
	assert.Equal(t, r.File("metadata/timestamp.json"), ts, "nothing the refused mirror sent is stored")

	// Only bad mirrors: the first one's error, as without mirrors.
	c3, _ := newMirrorClient(t, r, forged.mirror(), frozen.mirror())
	require.Error(t, c3.Refresh(context.Background()))
	c4, _ := newMirrorClient(t, r, forged.mirror())
	err4 := c4.Refresh(context.Background())
	require.Error(t, err4)
	c5, _ := newMirrorClient(t, r, forged.mirror(), frozen.mirror())
	assert.Equal(t, err4.Error(), c5.Refresh(context.Background()).Error(), "the error is the first mirror's")
}

// Mirror URLs are checked like Config's.
func TestMirrorsConfig(t *testing.T) {
	r := newRepo(t)
	store := newMemStore()
	require.NoError(t, Bootstrap(context.Background(), store, r.RootJSON(1), manifest.Limits{}))
	_, err := New(context.Background(), Config{
		MetadataURL: r.MetadataURL(), TargetsURL: r.TargetsURL(),
		Mirrors: []Mirror{{MetadataURL: "http://example.invalid/metadata"}},
		Store:   store, Clock: &fixedClock{testNow},
	})
	assert.ErrorIs(t, err, ErrConfig)
}

// A broken mirror costs one attempt before the next mirror is asked, not
// the fetcher's whole retry schedule; retries come only once every mirror
// failed once.
func TestMirrorsFailOverBeforeRetrying(t *testing.T) {
	r := newRepo(t)
	r.AddTarget("targets", "fw.bin", []byte("firmware"), nil)
	r.Publish()
	broken := newMirrorServer(t, r.Srv.URL, func(w http.ResponseWriter, path string) bool {
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
		return true
	})
	// flaky fails every first request for a path, as a replica restarting
	// would; only a retry gets through.
	var seen sync.Map
	flaky := newMirrorServer(t, r.Srv.URL, func(w http.ResponseWriter, path string) bool {
		if _, again := seen.LoadOrStore(path, true); !again {
			http.Error(w, "restarting", http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	newClientWith := func(mirrors ...Mirror) *Client {
		store := newMemStore()
		require.NoError(t, Bootstrap(context.Background(), store, r.RootJSON(1), manifest.Limits{}))
		c, err := New(context.Background(), Config{
			MetadataURL: mirrors[0].MetadataURL, TargetsURL: mirrors[0].TargetsURL, Mirrors: mirrors[1:],
			Fetcher: &HTTPFetcher{Retries: 3, Backoff: time.Millisecond}, Store: store, Clock: &fixedClock{testNow},
		})
		require.NoError(t, err)
		return c
	}

	good := newMirrorServer(t, r.Srv.URL, nil)
	c := newClientWith(broken.mirror(), good.mirror())
	require.NoError(t, c.Refresh(context.Background()))
	assert.Equal(t, int64(1), broken.requests.Load(), "one attempt at the broken mirror, then the next")

	// Every mirror failing once: the retries still reach the flaky one.
	broken.requests.Store(0)
	c = newClientWith(broken.mirror(), flaky.mirror())
	require.NoError(t, c.Refresh(context.Background()))
	got, err := download(t, c, "fw.bin")
	require.NoError(t, err)
	assert.Equal(t, "firmware", string(got))
	assert.GreaterOrEqual(t, broken.requests.Load(), int64(1))
}

// A target body cut short by a dying mirror is continued from the next
// mirror; a body that is whole but wrong is still refused.
func TestMirrorsDownloadCutShort(t *testing.T) {
	r := newRepo(t)
	image := bytes.Repeat([]byte("firmware-"), 50000)
	r.AddTarget("targets", "fw.bin", image, nil)
	r.Publish()
	var cuts atomic.Int64
	cutting := newMirrorServer(t, r.Srv.URL, func(w http.ResponseWriter, path string) bool {
		if !strings.Contains(path, "fw.bin") {
			return false
		}
		cuts.Add(1)
		w.Header().Set("Content-Length", strconv.Itoa(len(image)))
		w.WriteHeader(http.StatusOK)
		w.Write(image[:len(image)/2])
		w.(http.Flusher).Flush()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return true
	})
	good := newMirrorServer(t, r.Srv.URL, nil)
	c, _ := newMirrorClient(t, r, cutting.mirror(), good.mirror())
	require.NoError(t, c.Refresh(context.Background()))
	got, err := download(t, c, "fw.bin")
	require.NoError(t, err)
	assert.Equal(t, image, got)
	assert.Equal(t, int64(1), cuts.Load())

	// Only faults of the body move on: a mirror whose every copy is cut
	// fails the download once all mirrors were tried.
	c, _ = newMirrorClient(t, r, cutting.mirror(), cutting.mirror())
	require.NoError(t, c.Refresh(context.Background()))
	_, err = download(t, c, "fw.bin")
	require.Error(t, err)
}
