package sign

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/otaseal/otaseal/manifest"
)

// rotate stages a new root from edit, signs it with the given root keys
// under the rotation policy and sets it.
func rotate(t *testing.T, repo *Repository, rootSigners []string, edit func(spec RootSpec)) *manifest.Metadata[manifest.Root] {
	t.Helper()
	spec := SpecOf(&repo.Root().Signed)
	edit(spec)
	next, err := repo.StageRoot(spec)
	require.NoError(t, err)
	p, err := RotationPolicy(&repo.Root().Signed, &next.Signed)
	require.NoError(t, err)
	rep, err := SignRole(context.Background(), p, manifest.RoleRoot, next, signersOf(t, rootSigners...))
	require.NoError(t, err)
	require.True(t, rep.Met)
	require.NoError(t, repo.SetRoot(next))
	return next
}

// TUF 5.3.11: a stolen timestamp key lets an attacker push clients to a
// huge timestamp version; rotating the timestamp key makes clients drop it.
func TestFastForwardRecoveryByRotation(t *testing.T) {
	ctx := context.Background()
	tr := newTestRepo(t, true)
	url := serveDir(t, tr.dir)
	client := newGoTUFClient(t, url, rootBytesOf(t, tr.root), tr.now)
	_, _, err := client.fetch("plain.bin")
	require.NoError(t, err)

	// The attacker signs timestamp version 1000 with the stolen key.
	tsPath := filepath.Join(tr.dir, "metadata", "timestamp.json")
	legit, err := os.ReadFile(tsPath)
	require.NoError(t, err)
	evil := metadata.Timestamp(tr.now.Add(time.Hour))
	evil.Signed.Version = 1000
	evil.Signed.Meta["snapshot.json"] = tr.repo.Timestamp().Signed.Meta["snapshot.json"]
	p, err := tr.repo.Policy()
	require.NoError(t, err)
	_, err = SignRole(ctx, p, manifest.RoleTimestamp, evil, signersOf(t, "ed25519-5"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(tsPath, mustBytes(t, evil), 0o644))
	_, err = client.refresh()
	require.NoError(t, err, "the client accepts the fast-forwarded timestamp")

	// The operator restores the server; the client is now stuck.
	require.NoError(t, os.WriteFile(tsPath, legit, 0o644))
	_, err = client.refresh()
	require.ErrorIs(t, err, manifest.ErrMetadataVersionLower)

	// Rotating the timestamp key recovers it.
	rotate(t, tr.repo, []string{"ed25519-1", "ed25519-2"}, func(spec RootSpec) {
		spec.Roles[manifest.RoleTimestamp] = RoleKeys{Threshold: 1, Keys: keysOf(t, "ed25519-9")}
	})
	assert.ErrorIs(t, tr.repo.SetRoot(tr.repo.Root()), ErrRootRotation, "one rotation per publish")
	// The old online keys can no longer publish.
	var te *manifest.ThresholdError
	require.ErrorAs(t, tr.repo.Publish(ctx, onlineSigners(t)), &te)
	assert.Equal(t, manifest.RoleTimestamp, te.Role)
	require.NoError(t, tr.repo.Publish(ctx, signersOf(t, "ed25519-4", "ed25519-9")))
	assert.Less(t, tr.repo.Timestamp().Signed.Version, int64(1000))
	got, _, err := client.fetch("plain.bin")
	require.NoError(t, err)
	assert.Equal(t, tr.images["plain.bin"], got)

	// The rotated-out key is refused by name from now on.
	p, err = tr.repo.Policy()
	require.NoError(t, err)
	_, err = SignRole(ctx, p, manifest.RoleTimestamp, metadata.Timestamp(tr.now), signersOf(t, "ed25519-5"))
	requireKeyError(t, err, ErrRevokedKey, manifest.RoleTimestamp, testSigner(t, "ed25519-5").KeyID())
}

func TestRevokeTargetsAndRootKeys(t *testing.T) {
	ctx := context.Background()
	tr := newTestRepo(t, true)
	url := serveDir(t, tr.dir)
	client := newGoTUFClient(t, url, rootBytesOf(t, tr.root), tr.now)
	_, _, err := client.fetch("plain.bin")
	require.NoError(t, err)

	// Root key ed25519-1 and the targets key leak: rotate both out.
	rotate(t, tr.repo, []string{"ed25519-1", "ed25519-2", "ed25519-3"}, func(spec RootSpec) {
		spec.Roles[manifest.RoleRoot] = RoleKeys{Threshold: 2, Keys: keysOf(t, "ed25519-2", "ed25519-3", "ed25519-6")}
		spec.Roles[manifest.RoleTargets] = RoleKeys{Threshold: 1, Keys: keysOf(t, "rsa2048")}
	})
	// The targets role must be re-signed with the new key.
	var te *manifest.ThresholdError
	require.ErrorAs(t, tr.repo.Publish(ctx, allSigners(t)), &te)
	assert.Equal(t, manifest.RoleTargets, te.Role)
	require.NoError(t, tr.repo.Publish(ctx, append(allSigners(t), testSigner(t, "rsa2048"))))

	got, _, err := client.fetch("plain.bin")
	require.NoError(t, err)
	assert.Equal(t, tr.images["plain.bin"], got)
	assert.Equal(t, int64(2), tr.repo.Root().Signed.Version)

	// The rotated root (which carries the old root keys' signatures)
	// reopens, with the revoked keys known.
	store, err := NewDirStorage(tr.dir)
	require.NoError(t, err)
	reopened, err := OpenRepository(ctx, store, RepositoryOptions{Now: func() time.Time { return tr.now }, TempDir: t.TempDir()})
	require.NoError(t, err)
	defer reopened.Close()
	rp, err := reopened.Policy()
	require.NoError(t, err)
	_, err = SignRole(ctx, rp, manifest.RoleTargets, metadata.Targets(tr.now), signersOf(t, "p256"))
	requireKeyError(t, err, ErrRevokedKey, manifest.RoleTargets, testSigner(t, "p256").KeyID())

	// A further rotation signed with the revoked root key is refused by
	// name, even together with a valid key.
	spec := SpecOf(&tr.repo.Root().Signed)
	next, err := tr.repo.StageRoot(spec)
	require.NoError(t, err)
	p, err := RotationPolicy(&tr.repo.Root().Signed, &next.Signed)
	require.NoError(t, err)
	p.NoteRevoked(&tr.root.Signed)
	_, err = SignRole(ctx, p, manifest.RoleRoot, next, signersOf(t, "ed25519-1"))
	requireKeyError(t, err, ErrRevokedKey, manifest.RoleRoot, testSigner(t, "ed25519-1").KeyID())

	// A root signed only by the new keys (no old threshold) is not accepted.
	np, err := PolicyFromRoot(&next.Signed)
	require.NoError(t, err)
	_, err = SignRole(ctx, np, manifest.RoleRoot, next, signersOf(t, "ed25519-6"))
	require.NoError(t, err)
	next.Signatures = next.Signatures[:1]
	_, err = VerifyRootRotation(tr.repo.Root(), next)
	assert.ErrorIs(t, err, manifest.ErrThreshold)
	assert.Error(t, tr.repo.SetRoot(next))
}

// A leaked vendor (delegated role) key is replaced; documents signed with
// it are refused by name and clients follow the new key.
func TestRevokeDelegatedKey(t *testing.T) {
	ctx := context.Background()
	tr := newTestRepo(t, true)
	url := serveDir(t, tr.dir)
	client := newGoTUFClient(t, url, rootBytesOf(t, tr.root), tr.now)
	_, _, err := client.fetch("acme/1.0.0/firmware.bin")
	require.NoError(t, err)

	leaked := testSigner(t, "ed25519-6")
	require.NoError(t, tr.repo.SetDelegationKeys("acme", RoleKeys{Threshold: 1, Keys: keysOf(t, "ed25519-9")}))
	var te *manifest.ThresholdError
	require.ErrorAs(t, tr.repo.Publish(ctx, allSigners(t)), &te)
	assert.Equal(t, "acme", te.Role)
	require.NoError(t, tr.repo.Publish(ctx, append(allSigners(t), testSigner(t, "ed25519-9"))))
	got, _, err := client.fetch("acme/1.0.0/firmware.bin")
	require.NoError(t, err)
	assert.Equal(t, tr.images["acme/1.0.0/firmware.bin"], got)

	p, err := tr.repo.Policy()
	require.NoError(t, err)
	_, err = SignRole(ctx, p, "acme", metadata.Targets(tr.now), []*Signer{leaked})
	requireKeyError(t, err, ErrRevokedKey, "acme", leaked.KeyID())

	// Hash-bin keys rotate together, by prefix.
	require.NoError(t, tr.repo.SetDelegationKeys("catalog-bin", RoleKeys{Threshold: 1, Keys: keysOf(t, "ed25519-3")}))
	require.NoError(t, tr.repo.Publish(ctx, append(allSigners(t), signersOf(t, "ed25519-9", "ed25519-3")...)))
	_, _, err = client.fetch("catalog/gw/2.0.0/firmware.bin")
	require.NoError(t, err)
	p, err = tr.repo.Policy()
	require.NoError(t, err)
	_, err = SignRole(ctx, p, "catalog-bin-0", metadata.Targets(tr.now), signersOf(t, "ed25519-8"))
	requireKeyError(t, err, ErrRevokedKey, "catalog-bin-0", testSigner(t, "ed25519-8").KeyID())
	assert.ErrorIs(t, tr.repo.SetDelegationKeys("nobody", RoleKeys{}), ErrUnknownRole)
}

// An attacker holding both online keys inflates the snapshot and timestamp
// versions; rotating both keys recovers clients (TUF 5.3.11).
func TestFastForwardSnapshotRecovery(t *testing.T) {
	ctx := context.Background()
	tr := newTestRepo(t, true)
	url := serveDir(t, tr.dir)
	client := newGoTUFClient(t, url, rootBytesOf(t, tr.root), tr.now)
	_, _, err := client.fetch("plain.bin")
	require.NoError(t, err)
	p, err := tr.repo.Policy()
	require.NoError(t, err)

	// Snapshot 500, pointing at the real targets versions, and a
	// timestamp 900 pointing at it, both signed with the stolen keys.
	metaDir := filepath.Join(tr.dir, "metadata")
	legitTS, err := os.ReadFile(filepath.Join(metaDir, "timestamp.json"))
	require.NoError(t, err)
	snap := metadata.Snapshot(tr.now.Add(time.Hour))
	snap.Signed.Version = 500
	for role := range tr.repo.targets {
		md, _ := tr.repo.Targets(role)
		snap.Signed.Meta[role+".json"] = metadata.MetaFile(md.Signed.Version)
	}
	_, err = SignRole(ctx, p, manifest.RoleSnapshot, snap, signersOf(t, "ed25519-4"))
	require.NoError(t, err)
	snapBytes := mustBytes(t, snap)
	require.NoError(t, os.WriteFile(filepath.Join(metaDir, "500.snapshot.json"), snapBytes, 0o644))
	ts := metadata.Timestamp(tr.now.Add(time.Hour))
	ts.Signed.Version = 900
	ts.Signed.Meta["snapshot.json"] = metadata.MetaFile(500)
	_, err = SignRole(ctx, p, manifest.RoleTimestamp, ts, signersOf(t, "ed25519-5"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(metaDir, "timestamp.json"), mustBytes(t, ts), 0o644))
	_, err = client.refresh()
	require.NoError(t, err, "the client accepts the inflated versions")

	require.NoError(t, os.WriteFile(filepath.Join(metaDir, "timestamp.json"), legitTS, 0o644))
	require.NoError(t, os.Remove(filepath.Join(metaDir, "500.snapshot.json")))
	_, err = client.refresh()
	require.ErrorIs(t, err, manifest.ErrMetadataVersionLower)

	rotate(t, tr.repo, []string{"ed25519-1", "ed25519-2"}, func(spec RootSpec) {
		spec.Roles[manifest.RoleSnapshot] = RoleKeys{Threshold: 1, Keys: keysOf(t, "ed25519-8")}
		spec.Roles[manifest.RoleTimestamp] = RoleKeys{Threshold: 1, Keys: keysOf(t, "ed25519-9")}
	})
	require.NoError(t, tr.repo.Publish(ctx, signersOf(t, "ed25519-8", "ed25519-9")))
	got, _, err := client.fetch("acme/1.0.0/firmware.bin")
	require.NoError(t, err)
	assert.Equal(t, tr.images["acme/1.0.0/firmware.bin"], got)
}

// A server with write access to storage adds a target to a stored
// delegated targets file without the vendor key. Opening the repository
// refuses it, so the next offline Publish never re-signs the forgery.
func TestOpenRefusesTamperedStorage(t *testing.T) {
	ctx := context.Background()
	tr := newTestRepo(t, true)
	acme, _ := tr.repo.Targets("acme")
	name := filepath.Join(tr.dir, "metadata", fmt.Sprintf("%d.acme.json", acme.Signed.Version))
	forged, err := clone(acme)
	require.NoError(t, err)
	tf := &manifest.TargetFile{Path: "acme/9.9.9/firmware.bin", Length: 4, Hashes: manifest.Hashes{"sha256": make([]byte, 32)}}
	require.NoError(t, manifest.SetFirmware(tf, firmware("9.9.9", 99)))
	forged.Signed.Targets[tf.Path] = tf
	require.NoError(t, os.WriteFile(name, mustBytes(t, forged), 0o644))

	store, err := NewDirStorage(tr.dir)
	require.NoError(t, err)
	_, err = OpenRepository(ctx, store, RepositoryOptions{Now: func() time.Time { return tr.now }})
	require.ErrorIs(t, err, manifest.ErrThreshold)
	assert.Contains(t, err.Error(), "acme")
}
