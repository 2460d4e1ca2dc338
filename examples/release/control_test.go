package main

import (
	"context"
	"crypto/sha256"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/rollback"
	"github.com/otaseal/otaseal/verify"
)

// gateway is the trusted state of an acme-gw-r2 device running image as
// release 1.0.0.
func gateway(t *testing.T, image []byte) *rollback.State {
	t.Helper()
	ctx := context.Background()
	st, err := rollback.OpenState(ctx, rollback.NewMemStore(), rollback.StateOptions{
		HardwareID: "acme-gw-r2", AllowNoCounter: true, RolloutID: "gw-0001"})
	require.NoError(t, err)
	sum := sha256.Sum256(image)
	require.NoError(t, st.Provision(ctx, rollback.Image{HardwareID: "acme-gw-r2", TargetPath: "acme-gw-r2/1.0.0/firmware.bin",
		Version: manifest.MustParseVersion("1.0.0"), SecurityVersion: 1, Length: int64(len(image)), SHA256: sum[:], Slot: "a"}))
	return st
}

// TestRolloutControl sets up the control role, then pauses, caps, resumes
// and stops a release with the online keys only, and a device sees each
// change at its next refresh.
func TestRolloutControl(t *testing.T) {
	ctx := context.Background()
	repo := initRepo(t)
	dir := t.TempDir()
	old, next := images()
	targetsKeys := key("ed25519-2") + "," + key("ed25519-3")
	controlKey := key("ed25519-7")
	ok(t, "add", "--repo", repo, "--hardware-id", "acme-gw-r2", "--new-hardware-id", "--version", "1.0.0", "--security-version", "1",
		"--key", targetsKeys, "--key", onlineKeys, writeImage(t, dir, "1.0.0.bin", old))
	// The fast schedule started 30 hours ago is complete: every device may
	// take 1.1.0 unless the control holds it back.
	start := time.Now().UTC().Add(-30 * time.Hour).Truncate(time.Second)
	ok(t, "add", "--repo", repo, "--hardware-id", "acme-gw-r2", "--version", "1.1.0", "--security-version", "2",
		"--rollout", "fast", "--rollout-start", start.Format(time.RFC3339), "--deltas", "0",
		"--key", targetsKeys, "--key", onlineKeys, writeImage(t, dir, "1.1.0.bin", next))
	const path = "acme-gw-r2/1.1.0/firmware.bin"
	online := []string{"--key", controlKey, "--key", onlineKeys}
	// signed puts the online keys before args' last one, the TARGET.
	signed := func(args ...string) []string {
		last := len(args) - 1
		return append(append(append([]string{}, args[:last]...), online...), args[last])
	}

	r := cli(t, signed("rollout", "pause", "--repo", repo, path)...)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "no rollout control role: create it once with release control-init")

	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--key", targetsKeys}, "--control-key is required"},
		{[]string{"--control-key", controlKey}, "either --key"},
		{[]string{"--control-key", controlKey, "--key", targetsKeys, "extra"}, "unexpected arguments"},
	} {
		r := cli(t, append([]string{"control-init", "--repo", repo}, tc.args...)...)
		assert.Equal(t, 2, r.code, "%q\n%s", tc.args, r.stderr)
		assert.Contains(t, r.stderr, tc.msg, tc.args)
	}
	r = ok(t, "control-init", "--repo", repo, "--control-key", controlKey, "--key", targetsKeys, "--key", onlineKeys)
	assert.Contains(t, r.stdout, "added role rollout-control: 1 of 1 key(s)")
	r = cli(t, "control-init", "--repo", repo, "--control-key", controlKey, "--key", targetsKeys, "--key", onlineKeys)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "already has a rollout control role")

	c := newClient(t, repo)
	dev := gateway(t, old)
	selected := func() (*verify.Update, error) {
		t.Helper()
		require.NoError(t, c.Refresh(ctx))
		return c.Select(ctx, dev)
	}
	u, err := selected()
	require.NoError(t, err)
	assert.Equal(t, path, u.Release.Path, "an empty control leaves the schedule in force")
	require.NoError(t, c.Refresh(ctx))
	targets, err := c.Targets()
	require.NoError(t, err)
	targetsVersion := targets.Signed.Version

	// A ceremony in progress does not hold up a pause, and is not published
	// with it.
	ok(t, "add", "--repo", repo, "--hardware-id", "acme-gw-r2", "--version", "1.2.0", "--security-version", "2",
		"--deltas", "0", "--stage", writeImage(t, dir, "1.2.0.bin", append(next, "1.2.0"...)))

	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{nil, "want an action first"},
		{[]string{"--repo", repo, path}, "want an action first"},
		{[]string{"halt", "--repo", repo, path}, `unknown action "halt"`},
		{append([]string{"pause", "--repo", repo}, online...), "exactly one TARGET"},
		{signed("cap", "--repo", repo, path), "--share goes with cap"},
		{signed("pause", "--repo", repo, "--share", "5%", path), "--share goes with cap"},
		{signed("cap", "--repo", repo, "--share", "150%", path), "above 100%"},
		{signed("cap", "--repo", repo, "--share", "5", path), "want a percentage"},
		{signed("pause", "--repo", repo, "--reason", "two\nlines", path), "reason"},
		{signed("resume", "--repo", repo, "--reason", "fixed", path), "resume takes no --reason"},
		{[]string{"pause", "--repo", repo, path}, "--key is required"},
		{[]string{"status", "--repo", repo, "--key", controlKey, path}, "status takes no --key"},
	} {
		r := cli(t, append([]string{"rollout"}, tc.args...)...)
		assert.Equal(t, 2, r.code, "%q\n%s", tc.args, r.stderr)
		assert.Contains(t, r.stderr, tc.msg, tc.args)
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{signed("pause", "--repo", repo, "acme-gw-r2/9.9.9/firmware.bin"), "no target"},
		{signed("resume", "--repo", repo, path), "is not paused or capped"},
		// Without the control key the document cannot be signed.
		{[]string{"pause", "--repo", repo, "--key", onlineKeys, path}, "role rollout-control needs 1 signatures"},
	} {
		r := cli(t, append([]string{"rollout"}, tc.args...)...)
		assert.Equal(t, 1, r.code, "%q\n%s", tc.args, r.stderr)
		assert.Contains(t, r.stderr, tc.msg, tc.args)
	}

	// pause: published with the control, snapshot and timestamp keys only.
	r = ok(t, signed("rollout", "pause", "--repo", repo, "--reason", "error rate 3% in wave 1", path)...)
	assert.Contains(t, r.stdout, path+" paused: paused: error rate 3% in wave 1")
	assert.Contains(t, r.stdout, "published")
	_, err = selected()
	var paused *verify.PausedError
	require.ErrorAs(t, err, &paused)
	assert.ErrorIs(t, err, verify.ErrPaused)
	assert.Equal(t, manifest.ControlPaused, paused.State)
	assert.Equal(t, "error rate 3% in wave 1", paused.Reason)
	targets, err = c.Targets()
	require.NoError(t, err)
	assert.Equal(t, targetsVersion, targets.Signed.Version, "the offline targets role was not signed again")
	_, err = os.Stat(stagingFile(repo))
	require.NoError(t, err, "the staged 1.2.0 was neither published nor removed")
	ok(t, "inspect", "--repo", repo) // and it still resumes: the ceremony goes on
	require.NoError(t, os.Remove(stagingFile(repo)))

	r = ok(t, "rollout", "status", "--repo", repo, path)
	assert.Contains(t, r.stdout, "schedule: 10%@0h,50%@6h,100%@1d from "+formatTime(start))
	assert.Contains(t, r.stdout, "now:      complete (100%)")
	assert.Contains(t, r.stdout, "control:  paused: error rate 3% in wave 1")
	r = ok(t, "inspect", "--repo", repo)
	assert.Regexp(t, `(?m)^acme-gw-r2\s+1\.1\.0\s+.*complete \(100%\)\s+paused: error rate 3% in wave 1\s+-$`, r.stdout)
	assert.Regexp(t, `(?m)^rollout-control\s+2\s+`, r.stdout)

	// cap at 0%: every device waits; resume: the schedule is back.
	ok(t, signed("rollout", "cap", "--repo", repo, "--share", "0%", path)...)
	_, err = selected()
	require.ErrorAs(t, err, &paused)
	assert.Equal(t, manifest.ControlCapped, paused.State)
	assert.Zero(t, paused.CapShare)
	r = ok(t, signed("rollout", "resume", "--repo", repo, path)...)
	assert.Contains(t, r.stdout, path+" resumed: none: the signed schedule is in force")
	u, err = selected()
	require.NoError(t, err)
	assert.Equal(t, path, u.Release.Path, "resumed: the schedule is in force again")

	// stop is final.
	ok(t, signed("rollout", "stop", "--repo", repo, "--reason", "abandoned", path)...)
	_, err = selected()
	require.ErrorAs(t, err, &paused)
	assert.Equal(t, manifest.ControlStopped, paused.State)
	for _, action := range []string{"resume", "pause"} {
		r = cli(t, signed("rollout", action, "--repo", repo, path)...)
		assert.Equal(t, 1, r.code, action)
		assert.Contains(t, r.stderr, "is stopped (stopped: abandoned): stop is final", action)
	}
	r = ok(t, "rollout", "status", "--repo", repo, path)
	assert.Contains(t, r.stdout, "control:  stopped: abandoned")
	r = ok(t, "rollout", "--help")
	assert.Contains(t, r.stdout, "abandon the rollout; final: it cannot be resumed")
}
