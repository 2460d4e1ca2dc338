package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

// refreshAndDownload is a device's update check through the server.
func refreshAndDownload(t *testing.T, baseURL string, hc *http.Client, repo *testRepo, c *clock) {
	t.Helper()
	ctx := context.Background()
	client, _ := newClient(t, baseURL, hc, repo.rootJSON, c)
	require.NoError(t, client.Refresh(ctx))
	tf, _, err := client.FindTarget(ctx, firmwarePath)
	require.NoError(t, err)
	var got bytes.Buffer
	require.NoError(t, client.Download(ctx, firmwarePath, tf, &got))
	assert.True(t, bytes.Equal(repo.image, got.Bytes()), "downloaded image differs")
}

func TestRefreshAndDownload(t *testing.T) {
	repo := newRepo(t, 100<<10, time.Hour)
	c := newClock(t0.Add(time.Minute))

	t.Run("http", func(t *testing.T) {
		r := start(t, testConfig(t, repo, c), nil)
		refreshAndDownload(t, r.httpURL, &http.Client{Timeout: 30 * time.Second}, repo, c)
	})
	t.Run("https", func(t *testing.T) {
		files := writeTLS(t, nil)
		conf, err := loadTLS(files.cert, files.key, "")
		require.NoError(t, err)
		r := start(t, testConfig(t, repo, c), conf)
		refreshAndDownload(t, r.httpsURL, httpsClient(files.serverCA, nil), repo, c)
	})
}

func TestMutualTLS(t *testing.T) {
	repo := newRepo(t, 10<<10, time.Hour)
	c := newClock(t0.Add(time.Minute))
	deviceCA, otherCA := newCA(t, "acme device CA"), newCA(t, "someone else's CA")
	files := writeTLS(t, deviceCA)
	conf, err := loadTLS(files.cert, files.key, files.clientCA)
	require.NoError(t, err)
	r := start(t, testConfig(t, repo, c), conf)
	good, _, _ := deviceCA.issue(t, "gw-0001", false)
	foreign, _, _ := otherCA.issue(t, "gw-0001", false)
	// A device certificate the device CA signed, but presented by a
	// server certificate's owner: not valid for client authentication.
	serverUse, _, _ := deviceCA.issue(t, "gw-0002", true)

	for _, tc := range []struct {
		name string
		cert *tls.Certificate
	}{{"no certificate", nil}, {"other CA", &foreign}, {"not for client auth", &serverUse}} {
		t.Run(tc.name, func(t *testing.T) {
			hc := httpsClient(files.serverCA, tc.cert)
			defer hc.CloseIdleConnections()
			resp, err := hc.Get(r.httpsURL + "/metadata/timestamp.json")
			if err == nil {
				resp.Body.Close()
			}
			// The refusal surfaces as a TLS alert or, when the server has
			// already closed the connection, a broken pipe or reset.
			require.Error(t, err, "the server answered a device without a valid certificate")
		})
	}
	t.Run("device certificate", func(t *testing.T) {
		hc := httpsClient(files.serverCA, &good)
		defer hc.CloseIdleConnections()
		refreshAndDownload(t, r.httpsURL, hc, repo, c)
	})
	t.Run("health without certificate", func(t *testing.T) {
		code, _ := getHealth(t, r.healthURL)
		assert.Equal(t, http.StatusOK, code)
		resp, err := http.Get(strings.TrimSuffix(r.healthURL, "/healthz") + "/metadata/timestamp.json")
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusNotFound, resp.StatusCode, "the health listener must not serve the repository")
	})
}

// watchedStore is the repository's DirStorage reporting what the re-sign
// loop does: every check opens the repository afresh, reading root.json
// first, and every re-sign writes timestamp.json.
type watchedStore struct {
	sign.Storage
	mu     sync.Mutex
	checks int            // root.json reads
	puts   map[string]int // Puts per name
	read   chan struct{}  // signalled (without blocking) on each root.json read
}

func (w *watchedStore) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if name == sign.MetadataDir+"/root.json" {
		w.mu.Lock()
		w.checks++
		w.mu.Unlock()
		select {
		case w.read <- struct{}{}:
		default:
		}
	}
	return w.Storage.Get(ctx, name)
}

func (w *watchedStore) Put(ctx context.Context, name string, r io.Reader) error {
	w.mu.Lock()
	w.puts[name]++
	w.mu.Unlock()
	return w.Storage.Put(ctx, name, r)
}

func (w *watchedStore) counts() (checks, timestampPuts int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.checks, w.puts[sign.MetadataDir+"/timestamp.json"]
}

// waitChecks waits until at least n checks have started.
func (w *watchedStore) waitChecks(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		if got, _ := w.counts(); got >= n {
			return
		}
		select {
		case <-w.read:
		case <-timeout:
			t.Fatalf("the re-sign loop stopped checking")
		}
	}
}

func TestResign(t *testing.T) {
	repo := newRepo(t, 1<<10, time.Hour)
	c := newClock(t0.Add(time.Minute))
	cfg := testConfig(t, repo, c)
	cfg.CheckEvery = 10 * time.Millisecond
	dirStore, err := sign.NewDirStorage(repo.dir)
	require.NoError(t, err)
	store := &watchedStore{Storage: dirStore, puts: map[string]int{}, read: make(chan struct{}, 1)}
	cfg.Store = store
	r := start(t, cfg, nil)
	ctx := context.Background()

	code, h := getHealth(t, r.healthURL)
	require.Equal(t, http.StatusOK, code)
	require.EqualValues(t, 1, h.TimestampVersion)
	require.Equal(t, t0.Add(time.Hour), h.TimestampExpires.UTC())

	// A device whose clock is past the first timestamp's expiry refuses it.
	late := newClock(t0.Add(70 * time.Minute))
	stale, _ := newClient(t, r.httpURL, nil, repo.rootJSON, late)
	require.ErrorIs(t, stale.Refresh(ctx), manifest.ErrExpired)

	// 40 minutes on, the timestamp expires within --resign-before.
	c.Set(t0.Add(40 * time.Minute))
	deadline := time.Now().Add(10 * time.Second)
	for h.TimestampVersion < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		_, h = getHealth(t, r.healthURL)
	}
	require.EqualValues(t, 2, h.TimestampVersion, "not re-signed")
	assert.Equal(t, t0.Add(40*time.Minute+time.Hour), h.TimestampExpires.UTC())
	assert.Equal(t, t0.Add(40*time.Minute), h.LastResign.UTC())

	// Only once: the new timestamp is fresh for another half hour. Checks
	// run one at a time and the one that re-signed had started by now, so
	// once two more have started, a whole check ran after the re-sign; it
	// must not have written a timestamp.
	started, _ := store.counts()
	store.waitChecks(t, started+2)
	_, puts := store.counts()
	assert.Equal(t, 1, puts, "re-signed more than once")
	_, h = getHealth(t, r.healthURL)
	assert.EqualValues(t, 2, h.TimestampVersion, "re-signed more than once")

	client, dir := newClient(t, r.httpURL, nil, repo.rootJSON, late)
	require.NoError(t, client.Refresh(ctx))
	assert.EqualValues(t, 2, trustedTimestampVersion(t, dir))
	tf, _, err := client.FindTarget(ctx, firmwarePath)
	require.NoError(t, err)
	assert.EqualValues(t, len(repo.image), tf.Length, "re-signing changed the targets")
}

// failingStore is the repository's DirStorage with writes that fail on
// demand: a full disk, a read-only mount.
type failingStore struct {
	sign.Storage
	fail chan struct{} // closed: fail
}

func (f *failingStore) Put(ctx context.Context, name string, r io.Reader) error {
	select {
	case <-f.fail:
		return errors.New("disk full")
	default:
		return f.Storage.Put(ctx, name, r)
	}
}

func TestHealthz(t *testing.T) {
	repo := newRepo(t, 1<<10, time.Hour)
	c := newClock(t0.Add(time.Minute))
	cfg := testConfig(t, repo, c)
	dirStore, err := sign.NewDirStorage(repo.dir)
	require.NoError(t, err)
	store := &failingStore{Storage: dirStore, fail: make(chan struct{})}
	cfg.Store = store
	r := start(t, cfg, nil)
	ctx := context.Background()

	code, h := getHealth(t, r.httpURL+"/healthz")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok", h.Status)
	assert.EqualValues(t, 1, h.TimestampVersion)
	assert.EqualValues(t, 1, h.SnapshotVersion)
	assert.Empty(t, h.Problems)

	// The re-sign fails: unhealthy at once, well before anything expires.
	close(store.fail)
	c.Set(t0.Add(40 * time.Minute))
	require.Error(t, r.srv.check(ctx))
	code, h = getHealth(t, r.healthURL)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, "unhealthy", h.Status)
	assert.Len(t, h.Problems, 1)
	assert.NotContains(t, strings.Join(h.Problems, " "), "disk full", "errors stay in the log")

	// And past the expiry, it says so.
	c.Set(t0.Add(61 * time.Minute))
	code, h = getHealth(t, r.healthURL)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, h.Problems, "timestamp metadata has expired")
	assert.Contains(t, h.Problems, "re-sign checks have stalled")

	// Fixed: the next check re-signs and the server is healthy again.
	store.fail = make(chan struct{})
	require.NoError(t, r.srv.check(ctx))
	code, h = getHealth(t, r.healthURL)
	assert.Equal(t, http.StatusOK, code)
	assert.EqualValues(t, 2, h.TimestampVersion)

	// An expired timestamp alone (no check ran since) is unhealthy too.
	c.Set(t0.Add(3 * time.Hour))
	code, _ = getHealth(t, r.healthURL)
	assert.Equal(t, http.StatusServiceUnavailable, code)
}

// rawGet sends one request line as is, so that no client cleans the path.
func rawGet(t *testing.T, addr, method, target string) (int, http.Header, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", method, target, addr)
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, body
}

func TestServing(t *testing.T) {
	repo := newRepo(t, 4<<10, time.Hour)
	c := newClock(t0.Add(time.Minute))
	// Secrets next to and above the repository, a dot file like a publish
	// in progress leaves, and a symbolic link out of the repository.
	secret := []byte("SECRET-OUTSIDE-THE-REPOSITORY")
	require.NoError(t, os.WriteFile(filepath.Join(repo.dir, "secret.txt"), secret, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(filepath.Dir(repo.dir), "secret.txt"), secret, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(repo.dir, "metadata", ".tmp-123"), secret, 0o644))
	require.NoError(t, os.Symlink("../secret.txt", filepath.Join(repo.dir, "metadata", "link.json")))
	r := start(t, testConfig(t, repo, c), nil)
	addr := strings.TrimPrefix(r.httpURL, "http://")

	for _, target := range []string{
		"/metadata/../../etc/passwd",
		"/metadata/../secret.txt",
		"/targets/../secret.txt",
		"/metadata/../../secret.txt",
		"/metadata/%2e%2e/secret.txt",
		"/metadata/%2E%2E/%2e%2e/secret.txt",
		"/metadata/..%2fsecret.txt",
		"/metadata/..%2F..%2Fsecret.txt",
		"/metadata/%2e%2e%2fsecret.txt",
		"/metadata/..%5csecret.txt",
		"/metadata/..\\secret.txt",
		"/metadata//etc/passwd",
		"/metadata/./timestamp.json",
		"/metadata/.tmp-123",
		"/metadata/",
		"/metadata",
		"/targets/",
		"/targets/acme-gw-r2/",
		"/targets/acme-gw-r2",
		"/secret.txt",
		"/repository/secret.txt",
		"/",
		"/metadata/%00timestamp.json",
		"/metadata/timestamp.json%00",
		"/metadata/nope.json",
	} {
		code, _, body := rawGet(t, addr, "GET", target)
		assert.Equal(t, http.StatusNotFound, code, target)
		assert.NotContains(t, string(body), string(secret), target)
		assert.NotContains(t, string(body), "root:", target)
	}

	// A symbolic link out of the repository exists but is refused: the
	// server's fault, not a missing file, so not a 404 (see openFailed).
	code, h, body := rawGet(t, addr, "GET", "/metadata/link.json")
	assert.Equal(t, http.StatusInternalServerError, code)
	assert.NotContains(t, string(body), string(secret))
	assert.Empty(t, h.Get("Retry-After"), "a broken repository is not fixed by waiting")

	// What is served: exact bytes and length; no-store for timestamp.json.
	ts, err := os.ReadFile(filepath.Join(repo.dir, "metadata", "timestamp.json"))
	require.NoError(t, err)
	code, h, body = rawGet(t, addr, "GET", "/metadata/timestamp.json")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, ts, body)
	assert.Equal(t, strconv.Itoa(len(ts)), h.Get("Content-Length"))
	assert.Equal(t, "no-store", h.Get("Cache-Control"))
	assert.Equal(t, "application/json", h.Get("Content-Type"))

	code, h, body = rawGet(t, addr, "GET", "/metadata/1.snapshot.json")
	assert.Equal(t, http.StatusOK, code)
	assert.Empty(t, h.Get("Cache-Control"), "versioned documents never change")
	assert.Equal(t, strconv.Itoa(len(body)), h.Get("Content-Length"))

	sum := sha256.Sum256(repo.image)
	imageURL := fmt.Sprintf("/targets/%s/2.4.1/%x.firmware.bin", hardwareID, sum)
	code, h, body = rawGet(t, addr, "GET", imageURL)
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, repo.image, body)
	assert.Equal(t, strconv.Itoa(len(repo.image)), h.Get("Content-Length"))

	code, h, body = rawGet(t, addr, "HEAD", imageURL)
	assert.Equal(t, http.StatusOK, code)
	assert.Empty(t, body)
	assert.Equal(t, strconv.Itoa(len(repo.image)), h.Get("Content-Length"))

	code, h, _ = rawGet(t, addr, "POST", "/metadata/timestamp.json")
	assert.Equal(t, http.StatusMethodNotAllowed, code)
	assert.Equal(t, "GET, HEAD", h.Get("Allow"))
}

func TestGracefulShutdownDrainsDownload(t *testing.T) {
	// Larger than the loopback socket buffers, so the server is still
	// writing while the device pauses.
	const size = 32 << 20
	repo := newRepo(t, size, time.Hour)
	c := newClock(t0.Add(time.Minute))
	r := start(t, testConfig(t, repo, c), nil)
	sum := sha256.Sum256(repo.image)
	hc := &http.Client{}
	resp, err := hc.Get(fmt.Sprintf("%s/targets/%s/2.4.1/%x.firmware.bin", r.httpURL, hardwareID, sum))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	h := sha256.New()
	_, err = io.CopyN(h, resp.Body, 64<<10)
	require.NoError(t, err)

	r.cancel() // SIGTERM
	select {
	case err := <-r.done:
		t.Fatalf("server stopped with a download in flight: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	// New connections are refused while the download drains.
	_, err = http.Get(r.httpURL + "/metadata/timestamp.json")
	assert.Error(t, err)

	n, err := io.Copy(h, resp.Body)
	require.NoError(t, err)
	assert.EqualValues(t, size-64<<10, n)
	assert.Equal(t, sum[:], h.Sum(nil))
	select {
	case err := <-r.done:
		assert.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("server did not stop after the download")
	}
	r.done <- nil // for the cleanup
}

func TestRunRefuses(t *testing.T) {
	repo := newRepo(t, 1<<10, time.Hour)
	base := []string{"--repo", repo.dir, "--http", "127.0.0.1:0"}
	keys := func(snap, ts string) []string { return []string{"--snapshot-key", snap, "--timestamp-key", ts} }
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"help", []string{"--help"}, exitOK},
		{"no repo", []string{"--http", ":0"}, exitUsage},
		{"no listener", append([]string{"--repo", repo.dir}, keys(snapshotKeyFile, timestampKeyFile)...), exitUsage},
		{"no keys", base, exitUsage},
		{"https without cert", append([]string{"--repo", repo.dir, "--https", "127.0.0.1:0"}, keys(snapshotKeyFile, timestampKeyFile)...), exitUsage},
		{"mtls with plain http", append(append([]string{"--client-ca", "ca.pem", "--https", ":0", "--tls-cert", "c", "--tls-key", "k"}, base...), keys(snapshotKeyFile, timestampKeyFile)...), exitUsage},
		{"resign-before too long", append(append([]string{"--resign-before", "25h"}, base...), keys(snapshotKeyFile, timestampKeyFile)...), exitUsage},
		{"check-every too long", append(append([]string{"--check-every", "13h"}, base...), keys(snapshotKeyFile, timestampKeyFile)...), exitUsage},
		{"stray argument", append(append(base, keys(snapshotKeyFile, timestampKeyFile)...), "extra"), exitUsage},
		{"bad log level", append(append([]string{"--log-level", "loud"}, base...), keys(snapshotKeyFile, timestampKeyFile)...), exitUsage},
		{"targets key online", append(base, keys(targetsKeyFile, timestampKeyFile)...), exitSetup},
		{"root key online", append(base, keys(snapshotKeyFile, rootKeyFile)...), exitSetup},
		{"keys swapped", append(base, keys(timestampKeyFile, snapshotKeyFile)...), exitSetup},
		{"missing key file", append(base, keys(keyDir+"nope.pem", timestampKeyFile)...), exitSetup},
		{"not a repository", append([]string{"--repo", t.TempDir(), "--http", "127.0.0.1:0"}, keys(snapshotKeyFile, timestampKeyFile)...), exitSetup},
		{"no such directory", append([]string{"--repo", filepath.Join(t.TempDir(), "typo"), "--http", "127.0.0.1:0"}, keys(snapshotKeyFile, timestampKeyFile)...), exitSetup},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			got := run(context.Background(), tc.args, &stdout, &stderr)
			assert.Equal(t, tc.want, got, "stderr: %s", stderr.String())
		})
	}
}

// An offline key is refused even when it also holds an online role.
func TestCheckKeysRefusesSharedOfflineKey(t *testing.T) {
	ctx := context.Background()
	rootKey, tsKey := loadKey(t, rootKeyFile), loadKey(t, timestampKeyFile)
	shared := loadKey(t, snapshotKeyFile)
	one := func(s *sign.Signer) sign.RoleKeys { return sign.RoleKeys{Threshold: 1, Keys: []*manifest.Key{s.Key()}} }
	root, err := sign.NewRoot(sign.RootSpec{Roles: map[string]sign.RoleKeys{
		manifest.RoleRoot: one(rootKey), manifest.RoleTargets: one(shared),
		manifest.RoleSnapshot: one(shared), manifest.RoleTimestamp: one(tsKey),
	}}, t0.Add(sign.DefaultRootExpiry))
	require.NoError(t, err)
	policy, err := sign.PolicyFromRoot(&root.Signed)
	require.NoError(t, err)
	_, err = sign.SignRole(ctx, policy, manifest.RoleRoot, root, []*sign.Signer{rootKey})
	require.NoError(t, err)
	store, err := sign.NewDirStorage(t.TempDir())
	require.NoError(t, err)
	repo, err := sign.CreateRepository(ctx, store, root, sign.RepositoryOptions{Now: func() time.Time { return t0 }, TempDir: t.TempDir()})
	require.NoError(t, err)
	defer repo.Close()
	require.NoError(t, repo.Publish(ctx, []*sign.Signer{shared, tsKey}))
	err = checkKeys(repo, shared, tsKey, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "also a targets key")
}

// A download that outlives --shutdown-timeout is cut, and serve says so.
func TestShutdownTimeout(t *testing.T) {
	const size = 32 << 20
	repo := newRepo(t, size, time.Hour)
	c := newClock(t0.Add(time.Minute))
	srv, err := newServer(context.Background(), testConfig(t, repo, c))
	require.NoError(t, err)
	defer srv.close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.serve(ctx, []endpoint{{ln: ln, kind: serveAll}}, 200*time.Millisecond) }()
	sum := sha256.Sum256(repo.image)
	resp, err := http.Get(fmt.Sprintf("http://%s/targets/%s/2.4.1/%x.firmware.bin", ln.Addr(), hardwareID, sum))
	require.NoError(t, err)
	defer resp.Body.Close()
	cancel() // the device never reads on
	select {
	case err := <-done:
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not give up after the shutdown timeout")
	}
}

// A key that signs a delegated targets role is an offline key too.
func TestCheckKeysRefusesDelegationKey(t *testing.T) {
	ctx := context.Background()
	repo := newRepo(t, 1<<10, time.Hour)
	store, err := sign.NewDirStorage(repo.dir)
	require.NoError(t, err)
	rel, err := sign.OpenRepository(ctx, store, sign.RepositoryOptions{Now: func() time.Time { return t0.Add(time.Minute) }, TimestampExpiry: time.Hour, TempDir: t.TempDir()})
	require.NoError(t, err)
	defer rel.Close()
	snapKey, tsKey := loadKey(t, snapshotKeyFile), loadKey(t, timestampKeyFile)
	require.NoError(t, rel.AddDelegation(manifest.RoleTargets, sign.Delegation{
		Name: "vendor", Paths: []string{"vendor/*/*"}, Terminating: true,
		Keys: sign.RoleKeys{Threshold: 1, Keys: []*manifest.Key{snapKey.Key()}},
	}))
	require.NoError(t, rel.Publish(ctx, []*sign.Signer{loadKey(t, targetsKeyFile), snapKey, tsKey}))

	err = checkKeys(rel, snapKey, tsKey, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "targets delegates to")
	_, err = newServer(ctx, testConfig(t, repo, newClock(t0.Add(2*time.Minute))))
	assert.Error(t, err)
}
