package sign

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/manifest"
)

// The targets key stays offline: the update server exports the new targets
// document, the holder signs it elsewhere, the server imports it and
// publishes with its online keys only.
func TestOfflineTargetsCeremony(t *testing.T) {
	ctx := context.Background()
	tr := newTestRepo(t, true)
	url := serveDir(t, tr.dir)
	client := newGoTUFClient(t, url, rootBytesOf(t, tr.root), tr.now)

	require.NoError(t, tr.repo.AddFirmware(ctx, "plain2.bin", bytes.NewReader([]byte("offline")), firmware("0.2.0", 0)))
	doc, err := tr.repo.ExportRole(manifest.RoleTargets)
	require.NoError(t, err)

	// On the offline machine.
	ds, err := SignDetached(ctx, doc, manifest.RoleTargets, testSigner(t, "p256"))
	require.NoError(t, err)
	wrong, err := SignDetached(ctx, doc, manifest.RoleTargets, testSigner(t, "ed25519-4"))
	require.NoError(t, err)

	// Back on the server.
	p, err := tr.repo.Policy()
	require.NoError(t, err)
	_, _, err = Merge(p, manifest.RoleTargets, doc, []*DetachedSignature{wrong})
	requireKeyError(t, err, ErrWrongRole, manifest.RoleTargets, wrong.KeyID)
	assert.ErrorIs(t, tr.repo.ImportSigned(manifest.RoleTargets, doc), manifest.ErrThreshold, "unsigned")

	signed, rep, err := Merge(p, manifest.RoleTargets, doc, []*DetachedSignature{ds})
	require.NoError(t, err)
	require.True(t, rep.Met)

	// A signed document for a different target list is refused.
	other := bytes.Replace(signed, []byte("plain2.bin"), []byte("plain3.bin"), -1)
	assert.ErrorIs(t, tr.repo.ImportSigned(manifest.RoleTargets, other), ErrDocumentMismatch)

	require.NoError(t, tr.repo.ImportSigned(manifest.RoleTargets, signed))
	require.NoError(t, tr.repo.Publish(ctx, onlineSigners(t)))
	got, _, err := client.fetch("plain2.bin")
	require.NoError(t, err)
	assert.Equal(t, []byte("offline"), got)

	// A change after export discards the ceremony: the online keys alone
	// cannot publish it.
	require.NoError(t, tr.repo.AddFirmware(ctx, "plain4.bin", bytes.NewReader([]byte("x")), firmware("0.4.0", 0)))
	doc, err = tr.repo.ExportRole(manifest.RoleTargets)
	require.NoError(t, err)
	signed, _, err = Merge(p, manifest.RoleTargets, doc, []*DetachedSignature{mustDetached(t, doc, "p256")})
	require.NoError(t, err)
	require.NoError(t, tr.repo.AddFirmware(ctx, "plain5.bin", bytes.NewReader([]byte("y")), firmware("0.5.0", 0)))
	assert.ErrorIs(t, tr.repo.ImportSigned(manifest.RoleTargets, signed), ErrDocumentMismatch)
	var te *manifest.ThresholdError
	require.ErrorAs(t, tr.repo.Publish(ctx, onlineSigners(t)), &te)
	assert.Equal(t, manifest.RoleTargets, te.Role)
}

func mustDetached(t *testing.T, doc []byte, key string) *DetachedSignature {
	t.Helper()
	ds, err := SignDetached(context.Background(), doc, manifest.RoleTargets, testSigner(t, key))
	require.NoError(t, err)
	return ds
}

// Expiry periods are configurable per role.
func TestConfigurableExpiry(t *testing.T) {
	ctx := context.Background()
	tr := newTestRepo(t, true)
	store, err := NewDirStorage(tr.dir)
	require.NoError(t, err)
	opts := RepositoryOptions{Now: func() time.Time { return tr.now }, TempDir: t.TempDir(), TargetsExpiry: 48 * time.Hour, SnapshotExpiry: 3 * time.Hour, TimestampExpiry: 10 * time.Minute}
	repo, err := OpenRepository(ctx, store, opts)
	require.NoError(t, err)
	defer repo.Close()
	require.NoError(t, repo.AddFirmware(ctx, "plain9.bin", bytes.NewReader([]byte("z")), firmware("0.9.0", 0)))
	require.NoError(t, repo.Publish(ctx, allSigners(t)))
	targets, _ := repo.Targets(manifest.RoleTargets)
	assert.Equal(t, tr.now.Add(48*time.Hour), targets.Signed.Expires)
	assert.Equal(t, int64(2), targets.Signed.Version)
	assert.Equal(t, tr.now.Add(10*time.Minute), repo.Timestamp().Signed.Expires)
	acme, _ := repo.Targets("acme")
	assert.Equal(t, int64(1), acme.Signed.Version, "unchanged roles keep their version")
	assert.Equal(t, tr.now.Add(DefaultTargetsExpiry), acme.Signed.Expires)
}
