package sign

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/manifest"
)

func controlSigner(t testing.TB) []*Signer { return signersOf(t, "ed25519-9") }

// withControl adds the rollout control role (key ed25519-9) to a test
// repository and publishes it with every key.
func withControl(t *testing.T, tr *testRepo) {
	t.Helper()
	require.NoError(t, tr.repo.AddRolloutControl(RoleKeys{Threshold: 1, Keys: keysOf(t, "ed25519-9")}))
	require.NoError(t, tr.repo.Publish(context.Background(), append(allSigners(t), controlSigner(t)...)))
}

// TestRolloutControlOnlineOnly: after the delegation is set up, a control
// change is published with the control, snapshot and timestamp keys
// alone, and the offline targets role is not re-signed.
func TestRolloutControlOnlineOnly(t *testing.T) {
	ctx := context.Background()
	tr := newTestRepo(t, true)
	withControl(t, tr)
	top, _ := tr.repo.Targets(manifest.RoleTargets)
	topVersion := top.Signed.Version
	var dr *manifest.DelegatedRole
	for i := range top.Signed.Delegations.Roles {
		if top.Signed.Delegations.Roles[i].Name == manifest.RoleRolloutControl {
			dr = &top.Signed.Delegations.Roles[i]
		}
	}
	require.NotNil(t, dr)
	assert.NotNil(t, dr.Paths)
	assert.Empty(t, dr.Paths, "the control role serves no path")

	rc := manifest.ReleaseControl{State: manifest.ControlPaused, Reason: "error rate"}
	require.NoError(t, tr.repo.SetRolloutControl("plain.bin", rc))
	var te *manifest.ThresholdError
	require.ErrorAs(t, tr.repo.Publish(ctx, onlineSigners(t)), &te, "snapshot and timestamp keys alone cannot change the control")
	assert.Equal(t, manifest.RoleRolloutControl, te.Role)
	require.NoError(t, tr.repo.Publish(ctx, append(onlineSigners(t), controlSigner(t)...)))

	top, _ = tr.repo.Targets(manifest.RoleTargets)
	assert.Equal(t, topVersion, top.Signed.Version, "the offline role was not re-signed")
	md, _ := tr.repo.Targets(manifest.RoleRolloutControl)
	assert.Equal(t, int64(2), md.Signed.Version)
	assert.Equal(t, int64(2), tr.repo.Snapshot().Signed.Meta[manifest.RoleRolloutControl+".json"].Version, "snapshot covers the control role")

	// The control survives reopening the published repository.
	store, err := NewDirStorage(tr.dir)
	require.NoError(t, err)
	again, err := OpenRepository(ctx, store, RepositoryOptions{TempDir: t.TempDir()})
	require.NoError(t, err)
	defer again.Close()
	c, err := again.RolloutControl()
	require.NoError(t, err)
	assert.Equal(t, map[string]manifest.ReleaseControl{"plain.bin": rc}, c.Releases)

	require.NoError(t, tr.repo.ClearRolloutControl("plain.bin"))
	c, err = tr.repo.RolloutControl()
	require.NoError(t, err)
	assert.Empty(t, c.Releases)
}

func TestRolloutControlRefusals(t *testing.T) {
	ctx := context.Background()
	tr := newTestRepo(t, false)
	_, err := tr.repo.RolloutControl()
	assert.ErrorIs(t, err, ErrUnknownRole)
	assert.ErrorIs(t, tr.repo.SetRolloutControl("plain.bin", manifest.ReleaseControl{State: manifest.ControlPaused}), ErrUnknownRole)
	withControl(t, tr)

	assert.ErrorIs(t, tr.repo.AddRolloutControl(RoleKeys{Threshold: 1, Keys: keysOf(t, "ed25519-9")}), ErrRoleExists)
	assert.ErrorIs(t, tr.repo.AddDelegation(manifest.RoleTargets, Delegation{Name: manifest.RoleRolloutControl, Paths: []string{"*"}, Keys: RoleKeys{Threshold: 1, Keys: keysOf(t, "ed25519-9")}}), ErrBadName)
	assert.ErrorIs(t, tr.repo.SetRolloutControl("nope.bin", manifest.ReleaseControl{State: manifest.ControlPaused}), ErrNoTarget)
	assert.ErrorIs(t, tr.repo.SetRolloutControl("acme/deltas/1.0.0-1.1.0.bsdiff", manifest.ReleaseControl{State: manifest.ControlPaused}), manifest.ErrWrongKind, "a delta is no release")
	assert.ErrorIs(t, tr.repo.SetRolloutControl("plain.bin", manifest.ReleaseControl{State: manifest.ControlCapped, CapShare: manifest.FullShare + 1}), manifest.ErrSchema)
	c, err := tr.repo.RolloutControl()
	require.NoError(t, err)
	assert.Empty(t, c.Releases, "a refused control stages nothing")

	// A control document that lists a target is never signed, however it
	// was staged.
	md, _ := tr.repo.Targets(manifest.RoleRolloutControl)
	tf, _, _ := tr.repo.findTarget("plain.bin")
	md.Signed.Targets["plain.bin"] = tf
	tr.repo.markDirty(manifest.RoleRolloutControl)
	var fe *manifest.FieldError
	require.ErrorAs(t, tr.repo.Publish(ctx, append(allSigners(t), controlSigner(t)...)), &fe)
	assert.Equal(t, manifest.RuleControlWidens, fe.Rule)
}

// TestRolloutControlReadByGoTUF: go-tuf's updater reads a repository with
// a rollout release and a control role, and finds every image.
func TestRolloutControlReadByGoTUF(t *testing.T) {
	tr := newTestRepo(t, true)
	withRolloutRelease(t, tr) // a staged release, the control role, a pause
	require.NoError(t, tr.repo.SetRolloutControl("plain.bin", manifest.ReleaseControl{State: manifest.ControlCapped, CapShare: 100, Reason: "canary"}))
	require.NoError(t, tr.repo.Publish(context.Background(), append(onlineSigners(t), controlSigner(t)...)))
	require.Contains(t, tr.images, rolloutPath)
	client := newGoTUFClient(t, serveDir(t, tr.dir), rootBytesOf(t, tr.root), tr.now)
	for p, want := range tr.images {
		got, _, err := client.fetch(p)
		require.NoError(t, err, p)
		assert.Equal(t, want, got, p)
	}
}

// TestRenewRolloutControl: renewing signs the unchanged control again with
// a later expiry, with the online keys alone, and needs the role.
func TestRenewRolloutControl(t *testing.T) {
	ctx := context.Background()
	tr := newTestRepo(t, true)
	require.ErrorIs(t, tr.repo.RenewRolloutControl(), ErrUnknownRole)
	withControl(t, tr)
	require.NoError(t, tr.repo.SetRolloutControl("plain.bin", manifest.ReleaseControl{State: manifest.ControlPaused}))
	require.NoError(t, tr.repo.Publish(ctx, append(onlineSigners(t), controlSigner(t)...)))
	before, _ := tr.repo.Targets(manifest.RoleRolloutControl)
	beforeVersion, beforeExpires := before.Signed.Version, before.Signed.Expires

	tr.now = tr.now.Add(time.Hour)
	require.NoError(t, tr.repo.RenewRolloutControl())
	require.NoError(t, tr.repo.Publish(ctx, append(onlineSigners(t), controlSigner(t)...)))
	after, _ := tr.repo.Targets(manifest.RoleRolloutControl)
	assert.Equal(t, beforeVersion+1, after.Signed.Version)
	assert.True(t, after.Signed.Expires.After(beforeExpires), "a renewed control expires later")
	c, err := tr.repo.RolloutControl()
	require.NoError(t, err)
	assert.Equal(t, manifest.ControlPaused, c.Releases["plain.bin"].State, "renewing changes no control")
}
