package sign

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/internal/s3test"
	"github.com/otaseal/otaseal/manifest"
)

// condMemStorage is an in-memory ConditionalStorage: the fast stand-in for
// a bucket in tests that run without an S3 server.
type condMemStorage struct {
	*memStorage
	mu       sync.Mutex
	modTimes map[string]time.Time
}

func newCondMemStorage() *condMemStorage {
	return &condMemStorage{memStorage: newMemStorage(), modTimes: map[string]time.Time{}}
}

func (c *condMemStorage) Put(ctx context.Context, name string, r io.Reader) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.modTimes[name] = time.Now()
	return c.memStorage.Put(ctx, name, r)
}

func (c *condMemStorage) Create(ctx context.Context, name string, r io.Reader) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.modTimes[name]; ok {
		return fmt.Errorf("%w: %s", ErrBlobExists, name)
	}
	c.modTimes[name] = time.Now()
	return c.memStorage.Put(ctx, name, r)
}

func (c *condMemStorage) ModTime(ctx context.Context, name string) (time.Time, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.modTimes[name]
	if !ok {
		return time.Time{}, fmt.Errorf("%w: %s", ErrBlobNotFound, name)
	}
	return t, nil
}

// copyToStorage copies every file of a directory repository into store.
func copyToStorage(t *testing.T, dir string, store Storage) {
	t.Helper()
	require.NoError(t, filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return store.Put(context.Background(), filepath.ToSlash(rel), f)
	}))
}

func anonymousStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// BlobStorage on a real S3 server: the Storage contract, conditional
// creation, Cache-Control per object, and what anonymous readers get for
// a missing object with and without the public-read policy.
func TestBlobStorageS3(t *testing.T) {
	srv := s3test.Require(t)
	ctx := context.Background()
	b := srv.NewBucket(t, true)
	s := NewBlobStorage(b.Blob, BlobStorageOptions{TimestampMaxAge: 30 * time.Second})
	var _ ConditionalStorage = s
	var _ RemovableStorage = s

	require.NoError(t, s.Put(ctx, "metadata/timestamp.json", bytes.NewReader([]byte(`{"v":1}`))))
	require.NoError(t, s.Put(ctx, "metadata/timestamp.json", bytes.NewReader([]byte(`{"v":2}`))))
	require.NoError(t, s.Create(ctx, "metadata/3.snapshot.json", bytes.NewReader([]byte("snap"))))
	err := s.Create(ctx, "metadata/3.snapshot.json", bytes.NewReader([]byte("other")))
	require.ErrorIs(t, err, ErrBlobExists)
	hashed := "targets/acme/1.0.0/" + strings.Repeat("ab", 32) + ".fw.bin"
	require.NoError(t, s.Put(ctx, hashed, bytes.NewReader([]byte("fw"))))
	require.NoError(t, s.Put(ctx, "targets/acme/releases.json", bytes.NewReader([]byte("{}"))))

	got, err := getBlob(ctx, s, "metadata/timestamp.json", 100)
	require.NoError(t, err)
	assert.Equal(t, `{"v":2}`, string(got))
	got, err = getBlob(ctx, s, "metadata/3.snapshot.json", 100)
	require.NoError(t, err)
	assert.Equal(t, "snap", string(got), "a refused Create changed nothing")
	_, err = s.Get(ctx, "metadata/4.snapshot.json")
	assert.ErrorIs(t, err, ErrBlobNotFound)
	_, err = s.ModTime(ctx, "metadata/4.snapshot.json")
	assert.ErrorIs(t, err, ErrBlobNotFound)
	mt, err := s.ModTime(ctx, "metadata/3.snapshot.json")
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now(), mt, time.Minute)
	names, err := s.List(ctx, "metadata/")
	require.NoError(t, err)
	assert.Equal(t, []string{"metadata/3.snapshot.json", "metadata/timestamp.json"}, names)
	_, err = s.Get(ctx, "../escape")
	assert.ErrorIs(t, err, ErrBadName)
	require.NoError(t, s.Create(ctx, "metadata/9.timestamp.json", bytes.NewReader([]byte("claim"))))
	require.NoError(t, s.Remove(ctx, "metadata/9.timestamp.json"))
	_, err = s.Get(ctx, "metadata/9.timestamp.json")
	assert.ErrorIs(t, err, ErrBlobNotFound)
	assert.NoError(t, s.Remove(ctx, "metadata/9.timestamp.json"), "removing a missing object is no error")

	for name, want := range map[string]string{
		"metadata/timestamp.json":    "public, max-age=30",
		"metadata/3.snapshot.json":   "public, max-age=31536000, immutable",
		hashed:                       "public, max-age=31536000, immutable",
		"targets/acme/releases.json": "public, max-age=30",
	} {
		a, err := b.Blob.Attributes(ctx, name)
		require.NoError(t, err)
		assert.Equal(t, want, a.CacheControl, name)
		resp, err := http.Get(b.HTTP + "/" + name)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, name)
		assert.Equal(t, want, resp.Header.Get("Cache-Control"), "the bucket serves the header to anonymous readers: %s", name)
	}

	// With s3:ListBucket granted, a miss is a 404 (what TUF clients need
	// on N+1.root.json); a private bucket answers anonymous readers 403.
	assert.Equal(t, http.StatusNotFound, anonymousStatus(t, b.HTTP+"/metadata/2.root.json"))
	private := srv.NewBucket(t, false)
	assert.Equal(t, http.StatusForbidden, anonymousStatus(t, private.HTTP+"/metadata/2.root.json"))
}

func TestCacheControl(t *testing.T) {
	for name, want := range map[string]string{
		"metadata/timestamp.json":                             "public, max-age=60",
		"metadata/root.json":                                  "public, max-age=60",
		"metadata/snapshot.json":                              "public, max-age=60",
		"metadata/7.bin-1f.json":                              "public, max-age=31536000, immutable",
		"metadata/12.timestamp.json":                          "public, max-age=31536000, immutable",
		"targets/a/b/" + strings.Repeat("0f", 32) + ".fw.bin": "public, max-age=31536000, immutable",
		"targets/" + strings.Repeat("0f", 64) + ".fw.bin":     "public, max-age=31536000, immutable",
		"targets/a/fw.bin":                                    "public, max-age=60",
		"targets/a/" + strings.Repeat("0f", 31) + ".fw.bin":   "public, max-age=60",
		"targets/a/" + strings.Repeat("0F", 32) + ".fw.bin":   "public, max-age=60",
	} {
		assert.Equal(t, want, CacheControl(name, time.Minute), name)
	}
}

// A repository published to a bucket reads, straight from the bucket's
// HTTP endpoint, in go-tuf and tuf-js.
func TestPublishToBucket(t *testing.T) {
	srv := s3test.Require(t)
	b := srv.NewBucket(t, true)
	tr := newTestRepo(t, true)
	withRolloutRelease(t, tr)
	store := NewBlobStorage(b.Blob, BlobStorageOptions{})
	copyToStorage(t, tr.dir, store)

	// Publish through the bucket: a new image and a re-signed timestamp.
	ctx := context.Background()
	repo, err := OpenRepository(ctx, store, RepositoryOptions{Now: func() time.Time { return tr.now }, TempDir: t.TempDir()})
	require.NoError(t, err)
	defer repo.Close()
	require.NoError(t, repo.AddFirmware(ctx, "acme/2.0.0/firmware.bin", bytes.NewReader(image("b", 5000)), firmware("2.0.0", 3)))
	tr.images["acme/2.0.0/firmware.bin"] = image("b", 5000)
	require.NoError(t, repo.Publish(ctx, allSigners(t)))
	v := repo.Timestamp().Signed.Version
	claim, err := getBlob(ctx, store, claimName(v), MaxDocumentSize)
	require.NoError(t, err)
	ts, err := getBlob(ctx, store, timestampName, MaxDocumentSize)
	require.NoError(t, err)
	assert.Equal(t, claim, ts, "timestamp.json is the copy of its claim")

	paths := []string{"plain.bin", "acme/1.0.0/firmware.bin", "acme/2.0.0/firmware.bin", "catalog/gw/2.0.0/firmware.bin", "acme/deltas/1.0.0-1.1.0.bsdiff"}
	client := newGoTUFClient(t, b.HTTP, rootBytesOf(t, tr.root), tr.now)
	up, err := client.refresh()
	require.NoError(t, err)
	for _, p := range paths {
		got, _, err := client.download(up, p)
		require.NoError(t, err, p)
		assert.Equal(t, tr.images[p], got, p)
	}

	node := requireTufJS(t)
	rootFile := filepath.Join(t.TempDir(), "root.json")
	require.NoError(t, os.WriteFile(rootFile, rootBytesOf(t, tr.root), 0o644))
	results, code, stderr := runTufJS(t, node, b.HTTP, rootFile, t.TempDir(), paths...)
	require.Equal(t, 0, code, stderr)
	require.Len(t, results, len(paths))
	for i, p := range paths {
		sum := sha256.Sum256(tr.images[p])
		assert.Equal(t, hex.EncodeToString(sum[:]), results[i].SHA256, p)
	}
}

// openOn opens (or, without a timestamp, fails) the repository in store.
func openOn(t *testing.T, store Storage, now time.Time) *Repository {
	t.Helper()
	repo, err := OpenRepository(context.Background(), store, RepositoryOptions{Now: func() time.Time { return now }, TempDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { repo.Close() })
	return repo
}

// Two publishers on one bucket (or directory), 20 rounds: in each, both open the same
// version and publish a release at once; exactly one commits, the other
// gets ErrConflict and, opening again, publishes on top. No release is
// lost and the loser's unnamed files never block a later publish.
func TestConcurrentPublishers(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		testConcurrentPublishers(t, func(t *testing.T) ConditionalStorage { return newCondMemStorage() })
	})
	t.Run("dir", func(t *testing.T) {
		testConcurrentPublishers(t, func(t *testing.T) ConditionalStorage {
			d, err := NewDirStorage(t.TempDir())
			require.NoError(t, err)
			return d
		})
	})
	t.Run("s3", func(t *testing.T) {
		srv := s3test.Require(t)
		testConcurrentPublishers(t, func(t *testing.T) ConditionalStorage {
			return NewBlobStorage(srv.NewBucket(t, true).Blob, BlobStorageOptions{})
		})
	})
}

func testConcurrentPublishers(t *testing.T, newStore func(t *testing.T) ConditionalStorage) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	store := newStore(t)
	root := signedRoot(t, true, now)
	repo, err := CreateRepository(ctx, store, root, RepositoryOptions{Now: func() time.Time { return now }, TempDir: t.TempDir()})
	require.NoError(t, err)
	require.NoError(t, repo.AddHashBins(manifest.RoleTargets, "bin", 3, RoleKeys{Threshold: 1, Keys: keysOf(t, "ed25519-8")}))
	require.NoError(t, repo.Publish(ctx, allSigners(t)))
	repo.Close()

	signers := allSigners(t)
	var want []string
	conflicts := 0
	const rounds = 20
	for round := 0; round < rounds; round++ {
		var pubs [2]*Repository
		var paths [2]string
		for i := range pubs {
			pubs[i] = openOn(t, store, now)
			paths[i] = fmt.Sprintf("fleet/pub%d/%d.0.0/firmware.bin", i, round)
			require.NoError(t, pubs[i].AddFirmware(ctx, paths[i], bytes.NewReader([]byte(paths[i])), firmware(fmt.Sprintf("%d.0.0", round), 1)))
		}
		var errs [2]error
		var wg sync.WaitGroup
		for i := range pubs {
			wg.Go(func() { errs[i] = pubs[i].Publish(ctx, signers) })
		}
		wg.Wait()
		ok := 0
		for i, err := range errs {
			if err == nil {
				ok++
				want = append(want, paths[i])
				continue
			}
			require.ErrorIs(t, err, ErrConflict, "round %d publisher %d", round, i)
			assert.Contains(t, err.Error(), "retry")
			conflicts++
			// The loser opens the repository again and publishes on top.
			again := openOn(t, store, now)
			require.NoError(t, again.AddFirmware(ctx, paths[i], bytes.NewReader([]byte(paths[i])), firmware(fmt.Sprintf("%d.0.0", round), 1)))
			require.NoError(t, again.Publish(ctx, signers), "round %d retry", round)
			want = append(want, paths[i])
		}
		require.Equal(t, 1, ok, "round %d: exactly one of two publishers from one version commits", round)
	}
	assert.Equal(t, rounds, conflicts)

	// Every release is in the repository a client sees.
	final := openOn(t, store, now)
	client := newGoTUFClient(t, serveStorage(t, store), rootBytesOf(t, root), now)
	up, err := client.refresh()
	require.NoError(t, err)
	require.Len(t, want, 2*rounds)
	for _, p := range want {
		got, _, err := client.download(up, p)
		require.NoError(t, err, p)
		assert.Equal(t, p, string(got))
	}
	// One timestamp version per commit: the initial publish, and two per
	// round.
	assert.Equal(t, int64(1+2*rounds), final.Timestamp().Signed.Version)
}

// A publisher that dies between its commit point (the claim) and the copy
// to timestamp.json: clients still see the old repository, and the next
// open finishes the copy.
func TestClaimRollForward(t *testing.T) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	store := newCondMemStorage()
	root := signedRoot(t, true, now)
	repo, err := CreateRepository(ctx, store, root, RepositoryOptions{Now: func() time.Time { return now }, TempDir: t.TempDir()})
	require.NoError(t, err)
	require.NoError(t, repo.Publish(ctx, allSigners(t)))
	repo.Close()

	fs := &failingCondStorage{failingStorage: &failingStorage{Storage: store}, cond: store}
	repo = openOn(t, fs, now)
	require.NoError(t, repo.AddFirmware(ctx, "a/1.0.0/fw.bin", bytes.NewReader([]byte("fw")), firmware("1.0.0", 1)))
	fs.failName = timestampName
	require.ErrorIs(t, repo.Publish(ctx, allSigners(t)), errInjected)
	old, err := getBlob(ctx, store, timestampName, MaxDocumentSize)
	require.NoError(t, err)
	md, err := manifest.ParseUnverified[manifest.Timestamp](manifest.RoleTimestamp, old, documentLimits)
	require.NoError(t, err)
	assert.Equal(t, int64(1), md.Signed.Version, "clients still see the old timestamp")

	// Another publisher (or update server) opening now sees version 2
	// committed and finishes it; its own publish then claims version 3.
	other := openOn(t, store, now)
	assert.Equal(t, int64(2), other.Timestamp().Signed.Version)
	client := newGoTUFClient(t, serveStorage(t, store), rootBytesOf(t, root), now)
	got, _, err := client.fetch("a/1.0.0/fw.bin")
	require.NoError(t, err)
	assert.Equal(t, "fw", string(got))
	require.NoError(t, other.Publish(ctx, signersOf(t, "ed25519-4", "ed25519-5")))
	assert.Equal(t, int64(3), other.Timestamp().Signed.Version)
	// The first publisher's in-memory state moved on at its commit, but
	// the repository moved further: its next publish conflicts.
	fs.failName = ""
	err = repo.Publish(ctx, allSigners(t))
	assert.ErrorIs(t, err, ErrConflict)
}

// failingCondStorage is failingStorage for a ConditionalStorage: Create
// counts and fails like Put.
type failingCondStorage struct {
	*failingStorage
	cond     ConditionalStorage
	failName string // fail every write of this name too
}

func (f *failingCondStorage) Put(ctx context.Context, name string, r io.Reader) error {
	if name == f.failName {
		return fmt.Errorf("put %s: %w", name, errInjected)
	}
	return f.failingStorage.Put(ctx, name, r)
}

func (f *failingCondStorage) Create(ctx context.Context, name string, r io.Reader) error {
	f.puts++
	f.names = append(f.names, name)
	if f.puts == f.failAt || name == f.failName {
		return fmt.Errorf("create %s: %w", name, errInjected)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	return f.cond.Create(ctx, name, bytes.NewReader(data))
}

func (f *failingCondStorage) ModTime(ctx context.Context, name string) (time.Time, error) {
	return f.cond.ModTime(ctx, name)
}
