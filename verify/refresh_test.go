package verify

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/otaseal/otaseal/internal/tuftest"
	"github.com/otaseal/otaseal/manifest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

func TestRefreshRequests(t *testing.T) {
	r := newRepo(t)
	r.AddTarget("targets", "acme-gw-r2/1.0.0/firmware.bin", []byte("image"), nil)
	r.Publish()
	c, store := newClient(t, r, nil)
	r.Requests()

	require.NoError(t, c.Refresh(context.Background()))
	assert.Equal(t, []string{"metadata/2.root.json", "metadata/timestamp.json", "metadata/snapshot.json", "metadata/targets.json"}, r.Requests(),
		"a fresh refresh makes exactly these requests")
	for _, role := range []string{"root", "timestamp", "snapshot", "targets"} {
		b, _ := store.LoadMetadata(context.Background(), role)
		assert.NotEmpty(t, b, "%s stored", role)
	}
	tf, role, err := c.FindTarget(context.Background(), "acme-gw-r2/1.0.0/firmware.bin")
	require.NoError(t, err)
	assert.Equal(t, "targets", role)
	assert.Equal(t, int64(5), tf.Length)

	// Nothing changed: only the root probe and the timestamp.
	require.NoError(t, c.Refresh(context.Background()))
	assert.Equal(t, []string{"metadata/2.root.json", "metadata/timestamp.json"}, r.Requests())

	// A new release: the same long-running client picks it up.
	r.AddTarget("targets", "acme-gw-r2/1.1.0/firmware.bin", []byte("image 2"), nil)
	r.Publish()
	require.NoError(t, c.Refresh(context.Background()))
	_, _, err = c.FindTarget(context.Background(), "acme-gw-r2/1.1.0/firmware.bin")
	require.NoError(t, err)

	// A new client on the same store (a reboot) needs no snapshot or targets.
	c2, err := New(context.Background(), c.cfg)
	require.NoError(t, err)
	r.Requests()
	require.NoError(t, c2.Refresh(context.Background()))
	assert.Equal(t, []string{"metadata/2.root.json", "metadata/timestamp.json"}, r.Requests())
}

func TestRefreshConsistentSnapshot(t *testing.T) {
	r := newRepo(t)
	r.Root.Signed.ConsistentSnapshot = true
	r.Root.Signed.Version = 1
	r.PublishRoot()
	r.Publish()
	c, _ := newClient(t, r, nil)
	r.Requests()
	require.NoError(t, c.Refresh(context.Background()))
	assert.Equal(t, []string{"metadata/2.root.json", "metadata/timestamp.json",
		fmt.Sprintf("metadata/%d.snapshot.json", r.Snapshot.Signed.Version),
		fmt.Sprintf("metadata/%d.targets.json", r.Targets["targets"].Signed.Version)}, r.Requests())
}

func TestRootRotation(t *testing.T) {
	r := newRepo(t)
	c, store := newClient(t, r, nil)
	oldRoot := r.Keys["root"]
	// Version 2: a new root key, signed by old and new.
	newKey := tuftest.NewSigner(t, "root v2")
	r.Root.Signed.Version = 2
	oldID, _ := oldRoot.Key.ID()
	require.NoError(t, r.Root.Signed.RevokeKey(oldID, "root"))
	require.NoError(t, r.Root.Signed.AddKey(newKey.Key, "root"))
	r.PublishRoot(oldRoot, newKey)
	r.Keys["root"] = newKey
	// Version 3: signed by the new key alone.
	r.Root.Signed.Version = 3
	r.PublishRoot(newKey)
	r.Requests()

	require.NoError(t, c.Refresh(context.Background()))
	assert.Equal(t, []string{"metadata/2.root.json", "metadata/3.root.json", "metadata/4.root.json"}, r.Requests()[:3])
	stored, _ := store.LoadMetadata(context.Background(), "root")
	assert.Equal(t, r.RootJSON(3), stored)

	// A version 4 signed only by the rotated-out key is refused.
	r.Root.Signed.Version = 4
	r.PublishRoot(oldRoot)
	err := c.Refresh(context.Background())
	assert.ErrorIs(t, err, manifest.ErrThreshold)
	var re *RoleError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "root", re.Role)
	stored, _ = store.LoadMetadata(context.Background(), "root")
	assert.Equal(t, r.RootJSON(3), stored, "state unchanged")
}

func TestMaxRootRotations(t *testing.T) {
	r := newRepo(t)
	c, _ := newClient(t, r, nil)
	c.cfg.MaxRootRotations = 2
	for v := int64(2); v <= 5; v++ {
		r.Root.Signed.Version = v
		r.PublishRoot()
	}
	r.Requests()
	_ = c.Refresh(context.Background())
	var roots int
	for _, p := range r.Requests() {
		if bytes.HasSuffix([]byte(p), []byte(".root.json")) {
			roots++
		}
	}
	assert.Equal(t, 2, roots, "at most MaxRootRotations root versions per refresh")
}

// The attack table of DESIGN.md, for metadata: each refused with its error,
// and the refused document never stored.
func TestMetadataAttacks(t *testing.T) {
	tests := []struct {
		name   string
		fresh  bool   // attack a device that has not refreshed yet
		role   string // the role whose stored copy must not change
		attack func(r *repo, c *Client)
		want   error
	}{
		{"rollback timestamp", false, "timestamp", func(r *repo, c *Client) {
			// The device saw version N+1; the mirror replays version N.
			old := r.GetFile("metadata/timestamp.json")
			r.PublishTimestamp()
			require.NoError(t, c.Refresh(context.Background()))
			r.SetFile("metadata/timestamp.json", old)
		}, manifest.ErrMetadataVersionLower},
		{"rollback snapshot version in timestamp", false, "timestamp", func(r *repo, c *Client) {
			r.Snapshot.Signed.Version--
			r.PublishTimestamp()
		}, manifest.ErrMetadataVersionLower},
		{"freeze: expired timestamp", false, "timestamp", func(r *repo, c *Client) {
			r.Timestamp.Signed.Expires = testNow.Add(-time.Minute)
			r.PublishTimestamp()
		}, manifest.ErrExpired},
		{"freeze: expired snapshot", false, "snapshot", func(r *repo, c *Client) {
			r.Snapshot.Signed.Expires = testNow.Add(-time.Minute)
			r.Publish()
		}, manifest.ErrExpired},
		{"freeze: expired targets", false, "targets", func(r *repo, c *Client) {
			r.Targets["targets"].Signed.Expires = testNow.Add(-time.Minute)
			r.Publish()
		}, manifest.ErrExpired},
		{"mix and match: targets of another version", true, "targets", func(r *repo, c *Client) {
			md := r.Targets["targets"]
			md.Signed.Version++
			r.SetMeta("targets", md.Signed.Version-1, tuftest.SignBytes(t, md, r.Keys["targets"]))
		}, manifest.ErrMetadataVersionLower},
		{"timestamp signed by the snapshot key", false, "timestamp", func(r *repo, c *Client) {
			r.Timestamp.Signed.Version++
			r.SetFile("metadata/timestamp.json", tuftest.SignBytes(t, r.Timestamp, r.Keys["snapshot"]))
		}, manifest.ErrThreshold},
		{"targets signed by another role's key", true, "targets", func(r *repo, c *Client) {
			md := r.Targets["targets"]
			r.SetMeta("targets", md.Signed.Version, tuftest.SignBytes(t, md, r.Keys["snapshot"]))
		}, manifest.ErrThreshold},
		{"endless timestamp", false, "timestamp", func(r *repo, c *Client) {
			r.SetFile("metadata/timestamp.json", bytes.Repeat([]byte(" "), manifest.DefaultTimestampLimit+1))
		}, ErrTooLong},
		{"timestamp without snapshot meta", false, "timestamp", func(r *repo, c *Client) {
			delete(r.Timestamp.Signed.Meta, "snapshot.json")
			r.Timestamp.Signed.Version++
			r.SetFile("metadata/timestamp.json", tuftest.SignBytes(t, r.Timestamp, r.Keys["timestamp"]))
		}, manifest.ErrMissingSnapshotMeta},
		{"tampered snapshot bytes", true, "snapshot", func(r *repo, c *Client) {
			b := bytes.Clone(r.GetFile("metadata/snapshot.json"))
			b[len(b)-20] ^= 1
			r.SetMeta("snapshot", r.Snapshot.Signed.Version, b)
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t)
			r.AddTarget("targets", "a/1.0.0/fw.bin", []byte("fw"), nil)
			r.Publish()
			c, store := newClient(t, r, nil)
			if !tc.fresh {
				require.NoError(t, c.Refresh(context.Background()))
			}
			tc.attack(r, c)
			before, _ := store.LoadMetadata(context.Background(), tc.role)
			err := c.Refresh(context.Background())
			require.Error(t, err)
			if tc.want != nil {
				assert.ErrorIs(t, err, tc.want)
			}
			_, _, err = c.FindTarget(context.Background(), "a/1.0.0/fw.bin")
			assert.ErrorIs(t, err, ErrNotRefreshed, "nothing is trusted after a failed refresh")
			after, _ := store.LoadMetadata(context.Background(), tc.role)
			assert.True(t, bytes.Equal(before, after), "stored %s changed", tc.role)
		})
	}
}

// A device whose clock reset to 1970 still refuses metadata that expired
// after the newest signing time it has verified.
func TestFreezeWithClockReset(t *testing.T) {
	r := newRepo(t)
	clock := &observingClock{now: time.Unix(0, 0)}
	c, _ := newClient(t, r, clock)
	require.NoError(t, c.Refresh(context.Background()))
	assert.Equal(t, testNow, clock.floor, "signing time observed after verification")

	// The attacker replays the same, now stale, timestamp forever; the
	// device's clock says 1970 but the floor moved on.
	r.Timestamp.Signed.Expires = testNow.Add(time.Hour)
	r.PublishTimestamp()
	clock.floor = testNow.Add(2 * time.Hour) // learnt from a later signing time
	err := c.Refresh(context.Background())
	assert.ErrorIs(t, err, manifest.ErrExpired)
}

type observingClock struct {
	now, floor time.Time
}

func (c *observingClock) Now() time.Time {
	if c.floor.After(c.now) {
		return c.floor
	}
	return c.now
}

func (c *observingClock) Observe(_ context.Context, t time.Time) error {
	if t.After(c.floor) {
		c.floor = t
	}
	return nil
}

// TUF 5.3.11: a stolen timestamp key inflated the timestamp version; after
// the repository rotates the timestamp key, the device recovers.
func TestFastForwardRecovery(t *testing.T) {
	r := newRepo(t)
	c, store := newClient(t, r, nil)
	require.NoError(t, c.Refresh(context.Background()))

	// The attacker, holding the timestamp key, publishes version 1000.
	r.Timestamp.Signed.Version = 999
	r.PublishTimestamp()
	require.NoError(t, c.Refresh(context.Background()))
	b, _ := store.LoadMetadata(context.Background(), "timestamp")
	ts, err := manifest.ParseUnverified[manifest.Timestamp]("timestamp", b, manifest.Limits{})
	require.NoError(t, err)
	require.Equal(t, int64(1000), ts.Signed.Version)

	// The real repository, at a lower version, is now refused...
	r.Timestamp.Signed.Version = 5
	r.PublishTimestamp()
	assert.ErrorIs(t, c.Refresh(context.Background()), manifest.ErrMetadataVersionLower)

	// ...until root rotates the timestamp key.
	oldID, _ := r.Keys["timestamp"].Key.ID()
	require.NoError(t, r.Root.Signed.RevokeKey(oldID, "timestamp"))
	r.Keys["timestamp"] = tuftest.NewSigner(t, "timestamp v2")
	require.NoError(t, r.Root.Signed.AddKey(r.Keys["timestamp"].Key, "timestamp"))
	r.Root.Signed.Version = 2
	r.PublishRoot()
	r.Timestamp.Signed.Version = 5
	r.PublishTimestamp()
	require.NoError(t, c.Refresh(context.Background()))
	b, _ = store.LoadMetadata(context.Background(), "timestamp")
	ts, err = manifest.ParseUnverified[manifest.Timestamp]("timestamp", b, manifest.Limits{})
	require.NoError(t, err)
	assert.Equal(t, int64(6), ts.Signed.Version)
}

// A long-running agent refreshes again and again. go-tuf's updater cannot:
// its second Refresh fails ("cannot update timestamp after snapshot"), so
// an agent built on it must rebuild the updater each time.
func TestRefreshManyTimesUnlikeGoTUF(t *testing.T) {
	r := newRepo(t)
	r.AddTarget("targets", "a.bin", []byte("a"), nil)
	r.Publish()

	cfg, err := config.New(r.MetadataURL(), r.RootJSON(1))
	require.NoError(t, err)
	cache := t.TempDir()
	cfg.LocalMetadataDir, cfg.LocalTargetsDir = filepath.Join(cache, "m"), filepath.Join(cache, "t")
	cfg.Fetcher = tuftest.GoTUFFetcher{Client: &http.Client{Timeout: 10 * time.Second}}
	require.NoError(t, cfg.EnsurePathsExist())
	up, err := updater.New(cfg)
	require.NoError(t, err)
	up.UnsafeSetRefTime(testNow)
	require.NoError(t, up.Refresh())
	r.Publish()
	assert.Error(t, up.Refresh(), "go-tuf's updater refreshes once")

	c, _ := newClient(t, r, nil)
	for i := 0; i < 5; i++ {
		r.AddTarget("targets", fmt.Sprintf("v%d.bin", i), []byte{byte(i)}, nil)
		r.Publish()
		require.NoError(t, c.Refresh(context.Background()), "refresh %d", i)
		_, _, err := c.FindTarget(context.Background(), fmt.Sprintf("v%d.bin", i))
		require.NoError(t, err)
	}
}
