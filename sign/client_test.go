package sign

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/otaseal/otaseal/internal/tuftest"
	"github.com/otaseal/otaseal/manifest"
)

// serveDir serves a directory storage over a real HTTP server on
// 127.0.0.1 for the length of the test.
func serveDir(t *testing.T, dir string) string {
	t.Helper()
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	return srv.URL
}

// goTUFClient is a go-tuf updater with its own cache directory, trusting
// rootBytes initially.
type goTUFClient struct {
	t        *testing.T
	baseURL  string
	cacheDir string
	now      time.Time
}

func newGoTUFClient(t *testing.T, baseURL string, rootBytes []byte, now time.Time) *goTUFClient {
	t.Helper()
	c := &goTUFClient{t: t, baseURL: baseURL, cacheDir: t.TempDir(), now: now}
	require.NoError(t, os.MkdirAll(filepath.Join(c.cacheDir, "metadata"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(c.cacheDir, "metadata", "root.json"), rootBytes, 0o644))
	return c
}

// refresh runs a full TUF refresh from the client's cached state.
func (c *goTUFClient) refresh() (*updater.Updater, error) {
	rootBytes, err := os.ReadFile(filepath.Join(c.cacheDir, "metadata", "root.json"))
	if err != nil {
		return nil, err
	}
	cfg, err := config.New(c.baseURL+"/metadata/", rootBytes)
	if err != nil {
		return nil, err
	}
	cfg.LocalMetadataDir = filepath.Join(c.cacheDir, "metadata")
	cfg.LocalTargetsDir = filepath.Join(c.cacheDir, "targets")
	cfg.RemoteTargetsURL = c.baseURL + "/targets/"
	cfg.Fetcher = tuftest.GoTUFFetcher{Client: &http.Client{Timeout: 10 * time.Second}}
	up, err := updater.New(cfg)
	if err != nil {
		return nil, err
	}
	up.UnsafeSetRefTime(c.now)
	if err := up.Refresh(); err != nil {
		return nil, manifest.TranslateError(err)
	}
	return up, nil
}

// fetch refreshes, then downloads and verifies one target.
func (c *goTUFClient) fetch(targetPath string) ([]byte, *manifest.TargetFile, error) {
	up, err := c.refresh()
	if err != nil {
		return nil, nil, err
	}
	return c.download(up, targetPath)
}

// download fetches and verifies one target with an updater already
// refreshed.
func (c *goTUFClient) download(up *updater.Updater, targetPath string) ([]byte, *manifest.TargetFile, error) {
	tf, err := up.GetTargetInfo(targetPath)
	if err != nil {
		return nil, nil, manifest.TranslateError(err)
	}
	_, data, err := up.DownloadTarget(tf, filepath.Join(c.t.TempDir(), "dl"), "")
	if err != nil {
		return nil, nil, manifest.TranslateError(err)
	}
	return data, tf, nil
}

func signedRoot(t testing.TB, consistent bool, now time.Time) *manifest.Metadata[manifest.Root] {
	t.Helper()
	root := testRoot(t)
	root.Signed.ConsistentSnapshot = consistent
	root.Signed.Expires = now.Add(DefaultRootExpiry).Truncate(time.Second)
	p, err := PolicyFromRoot(&root.Signed)
	require.NoError(t, err)
	rep, err := SignRole(context.Background(), p, manifest.RoleRoot, root, signersOf(t, "ed25519-1", "ed25519-2"))
	require.NoError(t, err)
	require.True(t, rep.Met)
	return root
}

func rootBytesOf(t *testing.T, root *manifest.Metadata[manifest.Root]) []byte {
	b, err := root.ToBytes(false)
	require.NoError(t, err)
	return b
}

// memStorage is an in-memory Storage for tests where disk durability is not
// the point (it is DirStorage's, tested on its own).
type memStorage struct {
	mu    sync.Mutex
	blobs map[string][]byte
}

func newMemStorage() *memStorage { return &memStorage{blobs: map[string][]byte{}} }

func (m *memStorage) Put(ctx context.Context, name string, r io.Reader) error {
	if err := CheckName(name); err != nil {
		return err
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.blobs[name] = b
	return nil
}

func (m *memStorage) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blobs[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrBlobNotFound, name)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (m *memStorage) List(ctx context.Context, prefix string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for n := range m.blobs {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

// serveStorage serves any Storage over HTTP on 127.0.0.1.
func serveStorage(t *testing.T, s Storage) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc, err := s.Get(r.Context(), strings.TrimPrefix(r.URL.Path, "/"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer rc.Close()
		io.Copy(w, rc)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
