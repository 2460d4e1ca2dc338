package verify

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/otaseal/otaseal/manifest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRefreshRequests(t *testing.T) {
	r := newRepo(t)
	r.addTarget("targets", "acme-gw-r2/1.0.0/firmware.bin", []byte("image"), nil)
	r.publish()
	c, store := newClient(t, r, nil)
	r.requests()

	require.NoError(t, c.Refresh(context.Background()))
	assert.Equal(t, []string{"metadata/2.root.json", "metadata/timestamp.json", "metadata/snapshot.json", "metadata/targets.json"}, r.requests(),
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
	assert.Equal(t, []string{"metadata/2.root.json", "metadata/timestamp.json"}, r.requests())

	// A new release: the same long-running client picks it up.
	r.addTarget("targets", "acme-gw-r2/1.1.0/firmware.bin", []byte("image 2"), nil)
	r.publish()
	require.NoError(t, c.Refresh(context.Background()))
	_, _, err = c.FindTarget(context.Background(), "acme-gw-r2/1.1.0/firmware.bin")
	require.NoError(t, err)

	// A new client on the same store (a reboot) needs no snapshot or targets.
	c2, err := New(context.Background(), c.cfg)
	require.NoError(t, err)
	r.requests()
	require.NoError(t, c2.Refresh(context.Background()))
	assert.Equal(t, []string{"metadata/2.root.json", "metadata/timestamp.json"}, r.requests())
}

func TestRefreshConsistentSnapshot(t *testing.T) {
	r := newRepo(t)
	r.root.Signed.ConsistentSnapshot = true
	r.root.Signed.Version = 1
	r.publishRoot()
	r.publish()
	c, _ := newClient(t, r, nil)
	r.requests()
	require.NoError(t, c.Refresh(context.Background()))
	assert.Equal(t, []string{"metadata/2.root.json", "metadata/timestamp.json",
		fmt.Sprintf("metadata/%d.snapshot.json", r.snap.Signed.Version),
		fmt.Sprintf("metadata/%d.targets.json", r.targets["targets"].Signed.Version)}, r.requests())
}

func TestRootRotation(t *testing.T) {
	r := newRepo(t)
	c, store := newClient(t, r, nil)
	oldRoot := r.keys["root"]
	// Version 2: a new root key, signed by old and new.
	newKey := newSigner(t, "root v2")
	r.root.Signed.Version = 2
	oldID, _ := oldRoot.key.ID()
	require.NoError(t, r.root.Signed.RevokeKey(oldID, "root"))
	require.NoError(t, r.root.Signed.AddKey(newKey.key, "root"))
	r.publishRoot(oldRoot, newKey)
	r.keys["root"] = newKey
	// Version 3: signed by the new key alone.
	r.root.Signed.Version = 3
	r.publishRoot(newKey)
	r.requests()

	require.NoError(t, c.Refresh(context.Background()))
	assert.Equal(t, []string{"metadata/2.root.json", "metadata/3.root.json", "metadata/4.root.json"}, r.requests()[:3])
	stored, _ := store.LoadMetadata(context.Background(), "root")
	assert.Equal(t, r.rootJSON(3), stored)

	// A version 4 signed only by the rotated-out key is refused.
	r.root.Signed.Version = 4
	r.publishRoot(oldRoot)
	err := c.Refresh(context.Background())
	assert.ErrorIs(t, err, manifest.ErrThreshold)
	var re *RoleError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "root", re.Role)
	stored, _ = store.LoadMetadata(context.Background(), "root")
	assert.Equal(t, r.rootJSON(3), stored, "state unchanged")
}

func TestMaxRootRotations(t *testing.T) {
	r := newRepo(t)
	c, _ := newClient(t, r, nil)
	c.cfg.MaxRootRotations = 2
	for v := int64(2); v <= 5; v++ {
		r.root.Signed.Version = v
		r.publishRoot()
	}
	r.requests()
	_ = c.Refresh(context.Background())
	var roots int
	for _, p := range r.requests() {
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
		attack func(r *repo)
		want   error
	}{
		{"rollback timestamp", false, "timestamp", func(r *repo) {
			// The device saw version N+1; the mirror replays version N.
			old := r.getFile("metadata/timestamp.json")
			r.publishTimestamp()
			require.NoError(t, r.client.Refresh(context.Background()))
			r.setFile("metadata/timestamp.json", old)
		}, manifest.ErrRollback},
		{"rollback snapshot version in timestamp", false, "timestamp", func(r *repo) {
			r.snap.Signed.Version--
			r.publishTimestamp()
		}, manifest.ErrRollback},
		{"freeze: expired timestamp", false, "timestamp", func(r *repo) {
			r.ts.Signed.Expires = testNow.Add(-time.Minute)
			r.publishTimestamp()
		}, manifest.ErrExpired},
		{"freeze: expired snapshot", false, "snapshot", func(r *repo) {
			r.snap.Signed.Expires = testNow.Add(-time.Minute)
			r.publish()
		}, manifest.ErrExpired},
		{"freeze: expired targets", false, "targets", func(r *repo) {
			r.targets["targets"].Signed.Expires = testNow.Add(-time.Minute)
			r.publish()
		}, manifest.ErrExpired},
		{"mix and match: targets of another version", true, "targets", func(r *repo) {
			md := r.targets["targets"]
			md.Signed.Version++
			r.setMeta("targets", md.Signed.Version-1, signBytes(t, md, r.keys["targets"]))
		}, manifest.ErrRollback},
		{"timestamp signed by the snapshot key", false, "timestamp", func(r *repo) {
			r.ts.Signed.Version++
			r.setFile("metadata/timestamp.json", signBytes(t, r.ts, r.keys["snapshot"]))
		}, manifest.ErrThreshold},
		{"targets signed by another role's key", true, "targets", func(r *repo) {
			md := r.targets["targets"]
			r.setMeta("targets", md.Signed.Version, signBytes(t, md, r.keys["snapshot"]))
		}, manifest.ErrThreshold},
		{"endless timestamp", false, "timestamp", func(r *repo) {
			r.setFile("metadata/timestamp.json", bytes.Repeat([]byte(" "), manifest.DefaultTimestampLimit+1))
		}, ErrTooLong},
		{"timestamp without snapshot meta", false, "timestamp", func(r *repo) {
			delete(r.ts.Signed.Meta, "snapshot.json")
			r.ts.Signed.Version++
			r.setFile("metadata/timestamp.json", signBytes(t, r.ts, r.keys["timestamp"]))
		}, manifest.ErrMissingSnapshotMeta},
		{"tampered snapshot bytes", true, "snapshot", func(r *repo) {
			b := bytes.Clone(r.getFile("metadata/snapshot.json"))
			b[len(b)-20] ^= 1
			r.setMeta("snapshot", r.snap.Signed.Version, b)
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t)
			r.addTarget("targets", "a/1.0.0/fw.bin", []byte("fw"), nil)
			r.publish()
			c, store := newClient(t, r, nil)
			r.client = c
			if !tc.fresh {
				require.NoError(t, c.Refresh(context.Background()))
			}
			tc.attack(r)
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
	r.ts.Signed.Expires = testNow.Add(time.Hour)
	r.publishTimestamp()
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
	r.ts.Signed.Version = 999
	r.publishTimestamp()
	require.NoError(t, c.Refresh(context.Background()))
	b, _ := store.LoadMetadata(context.Background(), "timestamp")
	ts, err := manifest.ParseUnverified[manifest.Timestamp]("timestamp", b, manifest.Limits{})
	require.NoError(t, err)
	require.Equal(t, int64(1000), ts.Signed.Version)

	// The real repository, at a lower version, is now refused...
	r.ts.Signed.Version = 5
	r.publishTimestamp()
	assert.ErrorIs(t, c.Refresh(context.Background()), manifest.ErrRollback)

	// ...until root rotates the timestamp key.
	oldID, _ := r.keys["timestamp"].key.ID()
	require.NoError(t, r.root.Signed.RevokeKey(oldID, "timestamp"))
	r.keys["timestamp"] = newSigner(t, "timestamp v2")
	require.NoError(t, r.root.Signed.AddKey(r.keys["timestamp"].key, "timestamp"))
	r.root.Signed.Version = 2
	r.publishRoot()
	r.ts.Signed.Version = 5
	r.publishTimestamp()
	require.NoError(t, c.Refresh(context.Background()))
	b, _ = store.LoadMetadata(context.Background(), "timestamp")
	ts, err = manifest.ParseUnverified[manifest.Timestamp]("timestamp", b, manifest.Limits{})
	require.NoError(t, err)
	assert.Equal(t, int64(6), ts.Signed.Version)
}

func TestNewChecksStore(t *testing.T) {
	r := newRepo(t)
	store := newMemStore()
	cfg := Config{MetadataURL: r.metadataURL(), Store: store, Clock: SystemClock{}}
	_, err := New(context.Background(), cfg)
	assert.ErrorIs(t, err, ErrNoTrustedRoot)

	// A stored root corrupted while the device was off is noticed at start.
	bad := bytes.Clone(r.rootJSON(1))
	bad[len(bad)-10] ^= 1
	store.docs["root"] = bad
	_, err = New(context.Background(), cfg)
	assert.Error(t, err)

	delete(store.docs, "root")
	require.NoError(t, Bootstrap(context.Background(), store, r.rootJSON(1), manifest.Limits{}))
	assert.ErrorIs(t, Bootstrap(context.Background(), store, r.rootJSON(1), manifest.Limits{}), ErrConfig)
	assert.Error(t, Bootstrap(context.Background(), newMemStore(), bad, manifest.Limits{}))

	for _, bad := range []Config{
		{MetadataURL: "http://x/", Clock: SystemClock{}},
		{MetadataURL: "http://x/", Store: store},
		{MetadataURL: "http://x", Store: store, Clock: SystemClock{}},
		{MetadataURL: "http://x/", TargetsURL: "http://y", Store: store, Clock: SystemClock{}},
	} {
		_, err := New(context.Background(), bad)
		assert.ErrorIs(t, err, ErrConfig)
	}
	c, err := New(context.Background(), cfg)
	require.NoError(t, err)
	_, err = c.Targets()
	assert.ErrorIs(t, err, ErrNotRefreshed)
}
