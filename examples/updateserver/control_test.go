package main

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/rollback"
	"github.com/otaseal/otaseal/sign"
)

const controlKeyFile = keyDir + "ed25519-9.pem"

// controlExpiry is the short validity the release tool gave the control
// document in these tests.
const controlExpiry = 2 * time.Hour

// withControl delegates rollout control in repo (with the offline targets
// key, as the release tool does) and then signs the control document, with
// the online keys alone, to expire controlExpiry after t0.
func withControl(t *testing.T, repo *testRepo) {
	t.Helper()
	ctx := context.Background()
	at := func(d time.Duration) sign.RepositoryOptions {
		return sign.RepositoryOptions{Now: func() time.Time { return t0 }, TimestampExpiry: time.Hour, TargetsExpiry: d, TempDir: t.TempDir()}
	}
	store, err := sign.NewDirStorage(repo.dir)
	require.NoError(t, err)
	online := []*sign.Signer{loadKey(t, snapshotKeyFile), loadKey(t, timestampKeyFile), loadKey(t, controlKeyFile)}

	r, err := sign.OpenRepository(ctx, store, at(0))
	require.NoError(t, err)
	require.NoError(t, r.AddRolloutControl(sign.RoleKeys{Threshold: 1, Keys: []*manifest.Key{online[2].Key()}}))
	require.NoError(t, r.Publish(ctx, append(online, loadKey(t, targetsKeyFile))))
	require.NoError(t, r.Close())

	r, err = sign.OpenRepository(ctx, store, at(controlExpiry))
	require.NoError(t, err)
	defer r.Close()
	require.NoError(t, r.RenewRolloutControl())
	require.NoError(t, r.Publish(ctx, online))
	c, _ := r.Targets(manifest.RoleRolloutControl)
	require.Equal(t, t0.Add(controlExpiry), c.Signed.Expires)
}

// controlVersion is the published rollout control document's version and
// expiry.
func controlVersion(t *testing.T, repo *testRepo) (int64, time.Time) {
	t.Helper()
	store, err := sign.NewDirStorage(repo.dir)
	require.NoError(t, err)
	r, err := sign.OpenRepository(context.Background(), store, sign.RepositoryOptions{Now: func() time.Time { return t0 }})
	require.NoError(t, err)
	defer r.Close()
	c, ok := r.Targets(manifest.RoleRolloutControl)
	require.True(t, ok)
	return c.Signed.Version, c.Signed.Expires
}

// device is a gateway running no firmware yet, as verify's Select sees it.
func device(t *testing.T) *rollback.State {
	t.Helper()
	ctx := context.Background()
	counter := rollback.NewStoreCounter(rollback.NewMemStore(), "counter")
	st, err := rollback.OpenState(ctx, rollback.NewMemStore(), rollback.StateOptions{HardwareID: hardwareID, Counter: counter})
	require.NoError(t, err)
	return st
}

// TestControlResigned: a server holding the control key re-signs the
// rollout control document before it expires, with no offline key, and a
// device keeps selecting the release past the document's first expiry.
// The same repository served without the key stops every device then
// (fail closed), which is what the re-signing prevents, and the server
// without the key says so.
func TestControlResigned(t *testing.T) {
	ctx := context.Background()
	for _, holdsKey := range []bool{true, false} {
		t.Run(map[bool]string{true: "with key", false: "without key"}[holdsKey], func(t *testing.T) {
			repo := newRepo(t, 512, time.Hour)
			withControl(t, repo)
			v0, _ := controlVersion(t, repo)
			c := newClock(t0)
			cfg := testConfig(t, repo, c)
			var logs syncBuffer
			cfg.Log = slog.New(slog.NewTextHandler(&logs, nil))
			if holdsKey {
				cfg.ControlKey = loadKey(t, controlKeyFile)
			}
			r := start(t, cfg, nil)
			client, _ := newClient(t, r.httpURL, nil, repo.rootJSON, c)
			require.NoError(t, client.Refresh(ctx))
			u, err := client.Select(ctx, device(t))
			require.NoError(t, err)
			require.Equal(t, firmwarePath, u.Release.Path)

			// Within --resign-before of the control's expiry.
			c.Set(t0.Add(controlExpiry - 20*time.Minute))
			require.NoError(t, r.srv.check(ctx))
			v, expires := controlVersion(t, repo)
			c.Set(t0.Add(controlExpiry + 10*time.Minute))
			require.NoError(t, r.srv.check(ctx), "the timestamp is kept fresh either way")
			require.NoError(t, client.Refresh(ctx))
			u, err = client.Select(ctx, device(t))
			if !holdsKey {
				assert.Equal(t, v0, v, "no control key, no new control document")
				assert.Error(t, err, "an expired control document stops the device")
				assert.Contains(t, logs.String(), "no control key was given")
				assert.Contains(t, logs.String(), "rollout control document expires soon")
				_, h := getHealth(t, r.healthURL)
				assert.Contains(t, h.Problems, "rollout control metadata has expired")
				return
			}
			assert.Equal(t, v0+1, v, "the control document was re-signed")
			assert.True(t, expires.After(t0.Add(controlExpiry)), "and expires later")
			require.NoError(t, err)
			assert.Equal(t, firmwarePath, u.Release.Path)
			assert.NotContains(t, logs.String(), "no control key")
		})
	}
}

// TestControlKeyChecked: the control key must be the rollout control
// role's key and no offline one.
func TestControlKeyChecked(t *testing.T) {
	repo := newRepo(t, 64, time.Hour)
	cfg := testConfig(t, repo, newClock(t0))
	cfg.ControlKey = loadKey(t, controlKeyFile)
	_, err := newServer(context.Background(), cfg)
	require.ErrorIs(t, err, sign.ErrUnknownRole, "the repository delegates no rollout control")

	withControl(t, repo)
	cfg.ControlKey = loadKey(t, targetsKeyFile)
	_, err = newServer(context.Background(), cfg)
	require.Error(t, err, "the offline targets key is no control key")
	assert.Contains(t, err.Error(), "rollout-control")
}
