package verify

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/otaseal/otaseal/internal/tuftest"
	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/rollback"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// shippedDevice opens a device's state in dir as an agent does at boot
// and returns the client New gives with shipped as Config.ShippedRoot, and
// the store to close before the next start.
func shippedDevice(t *testing.T, r *tuftest.Repo, dir string, shipped []byte, log *slog.Logger) (*Client, StateTrustStore, *rollback.FileStore, error) {
	t.Helper()
	ctx := context.Background()
	fs, err := rollback.OpenFileStore(dir, rollback.FileStoreOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = fs.Close() })
	st, err := rollback.OpenState(ctx, fs, rollback.StateOptions{HardwareID: "a", AllowNoCounter: true})
	require.NoError(t, err)
	clock, err := rollback.OpenTrustedClock(ctx, fs, rollback.TrustedClockOptions{Now: func() time.Time { return testNow }})
	require.NoError(t, err)
	store := StateTrustStore{State: st, Logger: log}
	c, err := New(ctx, Config{MetadataURL: r.MetadataURL(), MetadataOnly: true, Fetcher: &HTTPFetcher{Retries: -1}, Store: store, Clock: clock,
		ShippedRoot: shipped, Logger: log})
	return c, store, fs, err
}

// rotateRootTwice publishes root versions 2 (a second root key, signed by
// both) and 3 (signed by the second key alone).
func rotateRootTwice(t *testing.T, r *tuftest.Repo) {
	first, second := r.Keys["root"], tuftest.NewSigner(t, "root after the factory")
	require.NoError(t, r.Root.Signed.AddKey(second.Key, "root"))
	r.Root.Signed.Version = 2
	r.PublishRoot(first, second)
	id, _ := first.Key.ID()
	require.NoError(t, r.Root.Signed.RevokeKey(id, "root"))
	r.Root.Signed.Version = 3
	r.PublishRoot(second)
	r.Keys["root"] = second
}

// TestShippedRootRecovery: a root record with no intact copy left is
// replaced by the root shipped with the device, the chain is walked
// forward again to the newest root, and the recovery is logged as a
// security event. Without a shipped root the start fails with the typed
// corruption error.
func TestShippedRootRecovery(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	shipped := r.RootJSON(1)
	rotateRootTwice(t, r)
	r.Publish()
	dir := t.TempDir()

	var logged bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logged, nil))
	c, _, fs, err := shippedDevice(t, r, dir, shipped, log)
	require.NoError(t, err, "an empty store takes the shipped root")
	assert.Contains(t, logged.String(), `"level":"INFO","msg":"trusted root installed"`)
	assert.NotContains(t, logged.String(), "state recovered", "a first start recovers nothing")
	require.NoError(t, c.Refresh(ctx))
	require.NoError(t, fs.Close())
	// Lose both copies of the stored root (version 3).
	copies, err := filepath.Glob(filepath.Join(dir, "metadata=2froot.*"))
	require.NoError(t, err)
	require.Len(t, copies, 2)
	for _, f := range copies {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		b[len(b)/2] ^= 0x10
		require.NoError(t, os.WriteFile(f, b, 0o600))
	}

	_, _, fs, err = shippedDevice(t, r, dir, nil, nil)
	assert.ErrorIs(t, err, rollback.ErrCorrupt, "no shipped root: a typed error, not a silent start")
	require.NoError(t, fs.Close())

	logged.Reset()
	r.Requests()
	c, store, _, err := shippedDevice(t, r, dir, shipped, log)
	require.NoError(t, err)
	assert.Contains(t, logged.String(), `"level":"WARN","msg":"state recovered","record":"root","from":"shipped root"`)
	stored, err := store.LoadMetadata(ctx, manifest.RoleRoot)
	require.NoError(t, err)
	assert.Equal(t, shipped, stored)
	require.NoError(t, c.Refresh(ctx))
	assert.Equal(t, []string{"metadata/2.root.json", "metadata/3.root.json", "metadata/4.root.json"}, r.Requests()[:3],
		"the chain walked forward from the shipped root")
	stored, err = store.LoadMetadata(ctx, manifest.RoleRoot)
	require.NoError(t, err)
	assert.Equal(t, r.RootJSON(3), stored)
}

// TestShippedRootDirStore: a DirTrustStore root that no longer verifies
// (a flipped byte, a truncation) is lost too; a shipped root that does
// not verify is refused and never stored.
func TestShippedRootDirStore(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	shipped := r.RootJSON(1)
	store := DirTrustStore{Dir: t.TempDir()}
	require.NoError(t, Bootstrap(ctx, store, shipped, manifest.Limits{}))
	p := filepath.Join(store.Dir, store.FileName(manifest.RoleRoot))
	for _, damage := range []func([]byte) []byte{
		func(b []byte) []byte { return b[:len(b)/2] },
		func(b []byte) []byte { b[len(b)-20] ^= 1; return b },
	} {
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(p, damage(b), 0o644))
		cfg := Config{MetadataURL: r.MetadataURL(), MetadataOnly: true, Store: store, Clock: SystemClock{}}
		_, err = New(ctx, cfg)
		var re *RoleError
		require.ErrorAs(t, err, &re)

		tampered := bytes.Clone(shipped)
		tampered[len(tampered)-20] ^= 1
		cfg.ShippedRoot = tampered
		_, err = New(ctx, cfg)
		assert.Error(t, err)

		cfg.ShippedRoot = shipped
		_, err = New(ctx, cfg)
		require.NoError(t, err)
		b, err = os.ReadFile(p)
		require.NoError(t, err)
		assert.Equal(t, shipped, b)
	}

	// An unreadable store is not a lost root: no shipped root replaces it.
	failing := failingStore{err: os.ErrPermission}
	_, err := New(ctx, Config{MetadataURL: r.MetadataURL(), MetadataOnly: true, Store: failing, Clock: SystemClock{}, ShippedRoot: shipped})
	assert.ErrorIs(t, err, os.ErrPermission)
}

type failingStore struct{ err error }

func (f failingStore) LoadMetadata(context.Context, string) ([]byte, error) { return nil, f.err }
func (f failingStore) StoreMetadata(context.Context, string, []byte) error  { return f.err }
