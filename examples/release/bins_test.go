package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/rollback"
)

// release bins delegates targets to hash bins; later adds land in their
// bin, and a device finds the newest release by hardware ID through the
// release index.
func TestHashBins(t *testing.T) {
	ctx := context.Background()
	repo := initRepo(t)
	targetsKeys := key("ed25519-2") + "," + key("ed25519-3")
	binKey := key("ed25519-8")

	r := cli(t, "bins", "--repo", repo, "--bits", "0", "--bin-key", binKey, "--key", targetsKeys)
	assert.Equal(t, 2, r.code, r.stderr)
	r = cli(t, "bins", "--repo", repo, "--bits", "3", "--bin-key", binKey, "--bin-threshold", "2", "--key", targetsKeys)
	assert.Equal(t, 2, r.code, r.stderr)
	r = ok(t, "bins", "--repo", repo, "--bits", "3", "--bin-key", binKey, "--key", targetsKeys, "--key", onlineKeys)
	assert.Contains(t, r.stdout, "delegated targets to catalog and it to 8 hash bins bin-*")
	for _, role := range []string{"catalog", "bin-0", "bin-7"} {
		_, err := os.Stat(filepath.Join(repo, "metadata", "1."+role+".json"))
		assert.NoError(t, err, role)
	}
	r = cli(t, "bins", "--repo", repo, "--bits", "4", "--role", "other", "--bin-key", binKey, "--key", targetsKeys, "--key", onlineKeys)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, `already delegates paths to "catalog"`)

	// The bins hang from a named role, so the targets role can still
	// delegate to the rollout control role.
	controlKey := key("ed25519-9")
	ok(t, "control-init", "--repo", repo, "--control-key", controlKey, "--key", targetsKeys, "--key", onlineKeys)

	dir := t.TempDir()
	old, next := images()
	// Without the bin key the release cannot be signed where it belongs.
	r = cli(t, "add", "--repo", repo, "--hardware-id", "acme-gw-r2", "--new-hardware-id", "--version", "1.0.0", "--security-version", "1",
		"--release-index", "--key", targetsKeys, "--key", onlineKeys, writeImage(t, dir, "1.0.0.bin", old))
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "bin-")
	for _, v := range []struct {
		version string
		image   []byte
		extra   []string
	}{{"1.0.0", old, []string{"--new-hardware-id", "--release-index"}}, {"1.1.0", next, nil}} {
		args := append([]string{"add", "--repo", repo, "--hardware-id", "acme-gw-r2", "--version", v.version, "--security-version", "1"}, v.extra...)
		args = append(args, "--key", targetsKeys, "--key", binKey, "--key", onlineKeys, writeImage(t, dir, v.version+".bin", v.image))
		r = ok(t, args...)
	}
	// Earlier releases in the bins count: a delta from 1.0.0, and a
	// security version below 1.1.0's is refused.
	assert.Contains(t, r.stdout, "acme-gw-r2/deltas/1.0.0-1.1.0.bsdiff")
	r = cli(t, "add", "--repo", repo, "--hardware-id", "acme-gw-r2", "--version", "1.2.0", "--security-version", "0",
		"--key", targetsKeys, "--key", binKey, "--key", onlineKeys, writeImage(t, dir, "1.2.0.bin", next))
	assert.NotEqual(t, 0, r.code)
	assert.Contains(t, r.stderr, "security version 0 of 1.2.0 is below 1 of the earlier release 1.1.0")

	c := newClient(t, repo)
	require.NoError(t, c.Refresh(ctx))
	md, err := c.Targets()
	require.NoError(t, err)
	assert.Empty(t, md.Signed.Targets, "images are in the bins, not in targets")
	require.NotNil(t, md.Signed.Delegations)
	var names []string
	for _, r := range md.Signed.Delegations.Roles {
		names = append(names, r.Name)
	}
	assert.Equal(t, []string{"catalog", "rollout-control"}, names)

	st, err := rollback.OpenState(ctx, rollback.NewMemStore(), rollback.StateOptions{HardwareID: "acme-gw-r2", AllowNoCounter: true})
	require.NoError(t, err)
	u, err := c.Select(ctx, st)
	require.NoError(t, err)
	require.NotNil(t, u)
	assert.Equal(t, "acme-gw-r2/1.1.0/firmware.bin", u.Release.Path)
	assert.Regexp(t, `^bin-[0-7]$`, u.Role, "signed by its bin")

	// The online control key pauses a release signed in a bin; the device
	// then stays with the one before.
	ok(t, "rollout", "pause", "--repo", repo, "--reason", "reverts on rev B", "--key", controlKey, "--key", onlineKeys, "acme-gw-r2/1.1.0/firmware.bin")
	require.NoError(t, c.Refresh(ctx))
	u, err = c.Select(ctx, st)
	require.NoError(t, err)
	assert.Equal(t, "acme-gw-r2/1.0.0/firmware.bin", u.Release.Path, "the paused release is held back")
}
