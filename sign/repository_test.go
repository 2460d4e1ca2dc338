package sign

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/delta"
	"github.com/otaseal/otaseal/manifest"
)

// allSigners holds every test key: Publish picks the ones each role allows.
func allSigners(t testing.TB) []*Signer {
	return signersOf(t, "ed25519-1", "ed25519-2", "p256", "ed25519-4", "ed25519-5", "ed25519-6", "ed25519-7", "ed25519-8")
}

func onlineSigners(t testing.TB) []*Signer { return signersOf(t, "ed25519-4", "ed25519-5") }

func firmware(version string, sv uint64) manifest.Firmware {
	return manifest.Firmware{Version: manifest.MustParseVersion(version), SecurityVersion: sv, HardwareIDs: []string{"acme-gw-r2"}}
}

func image(name string, size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i*7) ^ name[i%len(name)]
	}
	return b
}

// testRepo is a published repository with a path delegation ("acme",
// terminating, acme/*) and a hash-bin delegation (catalog/* -> 16 bins),
// a firmware target in each and a delta target.
type testRepo struct {
	repo   *Repository
	dir    string
	root   *manifest.Metadata[manifest.Root]
	images map[string][]byte
	now    time.Time
}

func newTestRepo(t *testing.T, consistent bool) *testRepo {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	tr := &testRepo{dir: t.TempDir(), images: map[string][]byte{}, now: now}
	store, err := NewDirStorage(tr.dir)
	require.NoError(t, err)
	tr.root = signedRoot(t, consistent, now)
	tr.repo, err = CreateRepository(ctx, store, tr.root, RepositoryOptions{Now: func() time.Time { return tr.now }, TempDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { tr.repo.Close() })

	require.NoError(t, tr.repo.AddDelegation(manifest.RoleTargets, Delegation{
		Name: "acme", Paths: []string{"acme/*/*"}, Terminating: true,
		Keys: RoleKeys{Threshold: 1, Keys: keysOf(t, "ed25519-6")},
	}))
	require.NoError(t, tr.repo.AddDelegation(manifest.RoleTargets, Delegation{
		Name: "catalog", Paths: []string{"catalog/*/*/*"},
		Keys: RoleKeys{Threshold: 1, Keys: keysOf(t, "ed25519-7")},
	}))
	require.NoError(t, tr.repo.AddHashBins("catalog", "catalog-bin", 4, RoleKeys{Threshold: 1, Keys: keysOf(t, "ed25519-8")}))

	tr.add(t, "acme/1.0.0/firmware.bin", image("a1", 3000), firmware("1.0.0", 1))
	tr.add(t, "acme/1.1.0/firmware.bin", image("a2", 3100), firmware("1.1.0", 2))
	tr.add(t, "catalog/gw/2.0.0/firmware.bin", image("c1", 2000), firmware("2.0.0", 1))
	tr.add(t, "plain.bin", image("p", 100), firmware("0.1.0", 0))
	patch := makePatch(t, tr.images["acme/1.0.0/firmware.bin"], tr.images["acme/1.1.0/firmware.bin"], delta.FormatBSDIFF40)
	require.NoError(t, tr.repo.AddDelta(ctx, "acme/deltas/1.0.0-1.1.0.bsdiff", "acme/1.0.0/firmware.bin", "acme/1.1.0/firmware.bin", bytes.NewReader(patch)))
	tr.images["acme/deltas/1.0.0-1.1.0.bsdiff"] = patch
	require.NoError(t, tr.repo.Publish(ctx, allSigners(t)))
	return tr
}

func (tr *testRepo) add(t *testing.T, p string, data []byte, fw manifest.Firmware) {
	t.Helper()
	require.NoError(t, tr.repo.AddFirmware(context.Background(), p, bytes.NewReader(data), fw))
	tr.images[p] = data
}

func end(p string, data []byte) manifest.DeltaEnd {
	sum := sha256.Sum256(data)
	return manifest.DeltaEnd{Path: p, Length: int64(len(data)), SHA256: sum[:]}
}

func TestPublishReadByGoTUF(t *testing.T) {
	for _, consistent := range []bool{true, false} {
		t.Run(fmt.Sprintf("consistent=%v", consistent), func(t *testing.T) {
			ctx := context.Background()
			tr := newTestRepo(t, consistent)
			url := serveDir(t, tr.dir)
			client := newGoTUFClient(t, url, rootBytesOf(t, tr.root), tr.now)

			for p, want := range tr.images {
				got, tf, err := client.fetch(p)
				require.NoError(t, err, p)
				assert.Equal(t, want, got, p)
				assert.Equal(t, int64(len(want)), tf.Length)
				assert.Len(t, tf.Hashes["sha512"], 64)
				if _, err := manifest.FirmwareOf(tf); err != nil {
					d, err := manifest.DeltaOf(tf)
					require.NoError(t, err, p)
					assert.Equal(t, "acme/1.1.0/firmware.bin", d.To.Path)
				}
			}

			// The target landed in the roles the delegations assign.
			acme, _ := tr.repo.Targets("acme")
			assert.Contains(t, acme.Signed.Targets, "acme/1.0.0/firmware.bin")
			cat, _ := tr.repo.Targets("catalog")
			binName := cat.Signed.Delegations.SuccinctRoles.GetRolesForTarget("catalog/gw/2.0.0/firmware.bin")[0].Name
			binMD, ok := tr.repo.Targets(binName)
			require.True(t, ok)
			assert.Contains(t, binMD.Signed.Targets, "catalog/gw/2.0.0/firmware.bin")

			// The timestamp carries its signing time.
			ts := tr.repo.Timestamp()
			signedAt, ok, err := manifest.SignedAt(&ts.Signed)
			require.NoError(t, err)
			require.True(t, ok)
			assert.Equal(t, tr.now, signedAt)
			assert.Equal(t, tr.now.Add(DefaultTimestampExpiry), ts.Signed.Expires)

			// The online server alone refreshes freshness metadata.
			before := ts.Signed.Version
			tr.now = tr.now.Add(time.Hour)
			require.NoError(t, tr.repo.Publish(ctx, onlineSigners(t)))
			assert.Equal(t, before+1, tr.repo.Timestamp().Signed.Version)
			client.now = tr.now
			_, _, err = client.fetch("plain.bin")
			require.NoError(t, err)

			// A reopened repository continues where the last one stopped.
			store, err := NewDirStorage(tr.dir)
			require.NoError(t, err)
			again, err := OpenRepository(ctx, store, RepositoryOptions{Now: func() time.Time { return tr.now }, TempDir: t.TempDir()})
			require.NoError(t, err)
			defer again.Close()
			require.NoError(t, again.AddFirmware(ctx, "acme/1.2.0/firmware.bin", bytes.NewReader(image("a3", 10)), firmware("1.2.0", 2)))
			require.NoError(t, again.Publish(ctx, allSigners(t)))
			got, _, err := client.fetch("acme/1.2.0/firmware.bin")
			require.NoError(t, err)
			assert.Equal(t, image("a3", 10), got)

			// The first Repository is now stale: its publish is a conflict.
			require.NoError(t, tr.repo.AddFirmware(ctx, "plain2.bin", bytes.NewReader([]byte("x")), firmware("0.2.0", 0)))
			assert.ErrorIs(t, tr.repo.Publish(ctx, allSigners(t)), ErrConflict)
		})
	}
}

func TestPublishRefusesBelowThreshold(t *testing.T) {
	ctx := context.Background()
	tr := newTestRepo(t, true)
	require.NoError(t, tr.repo.AddFirmware(ctx, "acme/2.0.0/firmware.bin", bytes.NewReader(image("x", 10)), firmware("2.0.0", 3)))
	before := tr.repo.Timestamp().Signed.Version

	// The online keys cannot publish firmware: the acme role is offline.
	err := tr.repo.Publish(ctx, onlineSigners(t))
	var te *manifest.ThresholdError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, "acme", te.Role)
	assert.Equal(t, []string{testSigner(t, "ed25519-6").KeyID()}, te.Missing)
	assert.Equal(t, before, tr.repo.Timestamp().Signed.Version)

	// Neither can the top-level targets key sign for the delegated role.
	err = tr.repo.Publish(ctx, signersOf(t, "p256", "ed25519-4", "ed25519-5"))
	require.ErrorAs(t, err, &te)
	assert.Equal(t, "acme", te.Role)

	// Replacing a published image under the same path is refused.
	err = tr.repo.AddFirmware(ctx, "acme/1.0.0/firmware.bin", bytes.NewReader(image("other", 3000)), firmware("1.0.0", 1))
	assert.ErrorIs(t, err, ErrTargetExists)
	// A path escaping the repository is refused.
	assert.ErrorIs(t, tr.repo.AddFirmware(ctx, "../etc/passwd", bytes.NewReader(nil), firmware("1.0.0", 1)), ErrBadName)
}

func TestRemoveTarget(t *testing.T) {
	ctx := context.Background()
	tr := newTestRepo(t, true)
	url := serveDir(t, tr.dir)
	client := newGoTUFClient(t, url, rootBytesOf(t, tr.root), tr.now)
	_, _, err := client.fetch("plain.bin")
	require.NoError(t, err)

	require.NoError(t, tr.repo.RemoveTarget("plain.bin"))
	assert.ErrorIs(t, tr.repo.RemoveTarget("plain.bin"), ErrNoTarget)
	require.NoError(t, tr.repo.Publish(ctx, allSigners(t)))
	_, _, err = client.fetch("plain.bin")
	assert.Error(t, err)
	_, _, err = client.fetch("acme/1.0.0/firmware.bin")
	assert.NoError(t, err)
}

func TestReadTarget(t *testing.T) {
	for _, consistent := range []bool{true, false} {
		tr := newTestRepo(t, consistent)
		ctx := context.Background()
		for p, want := range tr.images {
			rc, err := tr.repo.ReadTarget(ctx, p)
			require.NoError(t, err, p)
			got, err := io.ReadAll(rc)
			require.NoError(t, rc.Close())
			require.NoError(t, err)
			assert.Equal(t, want, got, p)
		}
		_, err := tr.repo.ReadTarget(ctx, "nope.bin")
		assert.ErrorIs(t, err, ErrNoTarget)
	}
}

// The published snapshot is the one the timestamp names, before and after
// a reopen and an online-only publish.
func TestSnapshotAccessor(t *testing.T) {
	ctx := context.Background()
	tr := newTestRepo(t, true)
	snap := tr.repo.Snapshot()
	require.NotNil(t, snap)
	assert.Equal(t, tr.repo.Timestamp().Signed.Meta["snapshot.json"].Version, snap.Signed.Version)

	store, err := NewDirStorage(tr.dir)
	require.NoError(t, err)
	reopened, err := OpenRepository(ctx, store, RepositoryOptions{Now: func() time.Time { return tr.now.Add(6 * 24 * time.Hour) }})
	require.NoError(t, err)
	defer reopened.Close()
	assert.Equal(t, snap.Signed.Version, reopened.Snapshot().Signed.Version)
	require.NoError(t, reopened.Publish(ctx, onlineSigners(t)))
	assert.Equal(t, snap.Signed.Version+1, reopened.Snapshot().Signed.Version, "a snapshot near expiry is renewed")
	assert.Equal(t, reopened.Timestamp().Signed.Meta["snapshot.json"].Version, reopened.Snapshot().Signed.Version)
}
