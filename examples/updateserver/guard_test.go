package main

import (
	"context"
	"crypto/sha256"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

// dirHash hashes every file name and content under dir.
func dirHash(t *testing.T, dir string) [32]byte {
	t.Helper()
	h := sha256.New()
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		h.Write([]byte(p + "\x00"))
		h.Write(b)
		return err
	}))
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// A root whose timestamp role also lists the targets key is refused at
// start, even though the server holds only its own timestamp key: one
// theft of the update server would then sign firmware. The override
// starts it.
func TestStartRefusesSharedKeys(t *testing.T) {
	ctx := context.Background()
	rootKey, targetsKey := loadKey(t, rootKeyFile), loadKey(t, targetsKeyFile)
	snapKey, tsKey := loadKey(t, snapshotKeyFile), loadKey(t, timestampKeyFile)
	root, err := sign.NewRoot(sign.RootSpec{Roles: map[string]sign.RoleKeys{
		manifest.RoleRoot:      {Threshold: 1, Keys: []*manifest.Key{rootKey.Key()}},
		manifest.RoleTargets:   {Threshold: 1, Keys: []*manifest.Key{targetsKey.Key()}},
		manifest.RoleSnapshot:  {Threshold: 1, Keys: []*manifest.Key{snapKey.Key()}},
		manifest.RoleTimestamp: {Threshold: 1, Keys: []*manifest.Key{tsKey.Key(), targetsKey.Key()}},
	}}, t0.Add(sign.DefaultRootExpiry))
	require.NoError(t, err)
	policy, err := sign.PolicyFromRoot(&root.Signed)
	require.NoError(t, err)
	_, err = sign.SignRole(ctx, policy, manifest.RoleRoot, root, []*sign.Signer{rootKey})
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "repository")
	store, err := sign.NewDirStorage(dir)
	require.NoError(t, err)
	repo, err := sign.CreateRepository(ctx, store, root, sign.RepositoryOptions{Now: func() time.Time { return t0 }, TempDir: t.TempDir()})
	require.NoError(t, err)
	require.NoError(t, repo.Publish(ctx, []*sign.Signer{targetsKey, snapKey, tsKey}))
	repo.Close()

	c := newClock(t0)
	cfg := testConfig(t, &testRepo{dir: dir}, c)
	before := dirHash(t, dir)
	_, err = newServer(ctx, cfg)
	require.ErrorIs(t, err, sign.ErrSharedKey)
	assert.Contains(t, err.Error(), "--allow-shared-keys")
	assert.Equal(t, before, dirHash(t, dir))

	cfg.AllowSharedKeys = true
	srv, err := newServer(ctx, cfg)
	require.NoError(t, err)
	srv.close()
}

// Under an expired root the server publishes nothing and says "expired",
// not "expires soon"; a root about to expire is a warning.
func TestExpiredRootRefused(t *testing.T) {
	ctx := context.Background()
	repo := newRepoAt(t, t0, 1<<10, time.Hour)
	c := newClock(t0)
	var logs syncBuffer
	cfg := testConfig(t, repo, c)
	cfg.Log = slog.New(slog.NewTextHandler(&logs, nil))
	srv, err := newServer(ctx, cfg)
	require.NoError(t, err)
	defer srv.close()

	// Twenty days before the root expires: a warning. (The targets role
	// expired long ago, so the re-sign itself is refused.)
	c.Set(t0.Add(sign.DefaultRootExpiry - 20*24*time.Hour))
	err = srv.check(ctx)
	require.ErrorIs(t, err, sign.ErrExpired)
	assert.Contains(t, err.Error(), "targets version 1 expired")
	assert.Contains(t, logs.String(), "root metadata expires soon")
	assert.Contains(t, logs.String(), "targets metadata has expired")

	// An hour after the root expired.
	logs = syncBuffer{}
	cfg.Log = slog.New(slog.NewTextHandler(&logs, nil))
	srv.log = cfg.Log
	c.Set(t0.Add(sign.DefaultRootExpiry + time.Hour))
	before := dirHash(t, repo.dir)
	err = srv.check(ctx)
	require.ErrorIs(t, err, sign.ErrExpired)
	assert.Contains(t, err.Error(), "root version 1 expired")
	assert.Contains(t, err.Error(), "(1h0m0s ago)")
	assert.Equal(t, before, dirHash(t, repo.dir), "nothing published")
	assert.NotContains(t, logs.String(), "root metadata expires soon")
	code, h := getHealth(t, startHealth(t, srv))
	assert.Equal(t, 503, code)
	assert.Contains(t, strings.Join(h.Problems, " "), "root metadata has expired")
}

// startHealth serves srv's /healthz on 127.0.0.1 and returns its URL.
func startHealth(t *testing.T, srv *server) string {
	t.Helper()
	hs := httptest.NewServer(http.HandlerFunc(srv.healthOnly))
	t.Cleanup(hs.Close)
	return hs.URL + "/healthz"
}
