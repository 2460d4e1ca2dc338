package sign

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/manifest"
)

// A delegated role must not be named like a top-level role in any letter
// case or Unicode form: a case-insensitive file system would store it as
// root.json (or timestamp.json, snapshot.json) on the repository's disk and
// on devices.
func TestAddDelegationRefusesTopLevelNames(t *testing.T) {
	repo := newTestRepo(t, true).repo
	keys := RoleKeys{Threshold: 1, Keys: keysOf(t, "ed25519-6")}

	for _, name := range []string{
		"root", "Root", "ROOT", "ｒｏｏｔ", "ro\u200cot",
		"Timestamp", "TIMESTAMP", "Snapshot", "s\u0301napshot", "snapshot\u0301",
		"Targets", "targetſ",
	} {
		err := repo.AddDelegation(manifest.RoleTargets, Delegation{Name: name, Paths: []string{"*"}, Keys: keys})
		assert.ErrorIs(t, err, ErrBadName, "%q", name)
		_, exists := repo.Targets(name)
		assert.False(t, exists, "%q created", name)
		assert.ErrorIs(t, repo.AddHashBins(manifest.RoleTargets, name, 2, keys), ErrBadName, "%q as bin prefix", name)
	}
	err := repo.AddDelegation(manifest.RoleTargets, Delegation{Name: "Root", Paths: []string{"*"}, Keys: keys})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"Root" is reserved`)
	targets, _ := repo.Targets(manifest.RoleTargets)
	for _, d := range targets.Signed.Delegations.Roles {
		assert.NoError(t, manifest.CheckDelegatedRoleName(d.Name), "delegated to %q", d.Name)
	}

	// Names that only look alike in part stay allowed.
	for _, name := range []string{"rootfs", "Roots", "acme-Timestamps"} {
		require.NoError(t, repo.AddDelegation(manifest.RoleTargets, Delegation{Name: name, Paths: []string{name + "/*"}, Keys: keys}), name)
	}
}

// TargetsRoles lists roles in the order a client meets them: targets,
// its path delegations as listed, then each one's own delegations, hash
// bins in bin order.
func TestTargetsRolesOrder(t *testing.T) {
	repo := newTestRepo(t, true).repo
	keys := RoleKeys{Threshold: 1, Keys: keysOf(t, "ed25519-6")}
	before := repo.TargetsRoles()
	require.Equal(t, manifest.RoleTargets, before[0])
	require.NoError(t, repo.AddDelegation(manifest.RoleTargets, Delegation{Name: "zz-catalog", Paths: []string{"cat/*/*"}, Keys: keys}))
	require.NoError(t, repo.AddHashBins("zz-catalog", "cbin", 2, keys))
	got := repo.TargetsRoles()
	assert.Equal(t, append(before, "zz-catalog", "cbin-0", "cbin-1", "cbin-2", "cbin-3"), got)
}
