package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/manifest"
)

func TestParseRollout(t *testing.T) {
	start := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	h := time.Hour
	for _, tc := range []struct {
		spec string
		want []manifest.Wave
	}{
		{"1%@0h,10%@24h,50%@72h,100%@7d", []manifest.Wave{{Offset: 0, Share: 100}, {Offset: 24 * h, Share: 1000}, {Offset: 72 * h, Share: 5000}, {Offset: 168 * h, Share: 10000}}},
		{"0.01%@0h, 12.5%@36h ,100%@2d", []manifest.Wave{{Offset: 0, Share: 1}, {Offset: 36 * h, Share: 1250}, {Offset: 48 * h, Share: 10000}}},
		{"100%@0h", []manifest.Wave{{Offset: 0, Share: 10000}}},
		{"0%@0h,100.00%@1h", []manifest.Wave{{Offset: 0, Share: 0}, {Offset: h, Share: 10000}}},
		{"canary", []manifest.Wave{{Offset: 0, Share: 100}, {Offset: 24 * h, Share: 1000}, {Offset: 72 * h, Share: 5000}, {Offset: 168 * h, Share: 10000}}},
		{"cautious", []manifest.Wave{{Offset: 0, Share: 10}, {Offset: 24 * h, Share: 100}, {Offset: 72 * h, Share: 1000}, {Offset: 168 * h, Share: 5000}, {Offset: 336 * h, Share: 10000}}},
		{"fast", []manifest.Wave{{Offset: 0, Share: 1000}, {Offset: 6 * h, Share: 5000}, {Offset: 24 * h, Share: 10000}}},
	} {
		got, err := parseRollout(tc.spec, start)
		require.NoError(t, err, tc.spec)
		assert.Equal(t, start, got.Start)
		assert.Equal(t, tc.want, got.Waves, tc.spec)
		if _, ok := rolloutPresets[tc.spec]; !ok {
			round, err := parseRollout(formatSchedule(got), start)
			require.NoError(t, err, "formatSchedule(%q) = %q", tc.spec, formatSchedule(got))
			assert.Equal(t, got, round, "formatSchedule reads back")
		}
	}
	for _, spec := range []string{
		"", "slow", "10%", "10@0h", "10%@", "%@0h", "1.%@0h,100%@1d", "1.234%@0h,100%@1d", "-1%@0h,100%@1d",
		"101%@0h", "1000%@0h", "1e1%@0h,100%@1d", "1%@0,100%@1d", "1%@1m,100%@1d", "1%@-1h,100%@1d", "1%@+1h,100%@1d",
		"1%@0h,100%@99999d", "1%@0h,50%@1d", // the last wave is not 100%
		"10%@0h,5%@1d,100%@2d",            // the share falls
		"1%@24h,10%@24h,100%@2d",          // the offset does not rise
		"1%@48h,10%@24h,100%@3d",          // out of order
		"1%@0h,,100%@1d", "1%@0h;100%@1d", // separators
	} {
		_, err := parseRollout(spec, start)
		assert.ErrorIs(t, err, errUsage, "%q", spec)
	}
}

func TestRolloutStart(t *testing.T) {
	got, err := parseRolloutStart("2026-05-01T10:00:00.9+02:00")
	require.NoError(t, err)
	assert.Equal(t, time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC), got)
	assert.Equal(t, time.UTC, got.Location())
	now, err := parseRolloutStart("")
	require.NoError(t, err)
	assert.Zero(t, now.Nanosecond())
	assert.WithinDuration(t, time.Now(), now, time.Minute)
	_, err = parseRolloutStart("tomorrow")
	assert.ErrorIs(t, err, errUsage)
}

func TestCurrentWave(t *testing.T) {
	start := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	r, err := parseRollout("1%@1h,10%@24h,100%@7d", start)
	require.NoError(t, err)
	for _, tc := range []struct {
		at   time.Duration
		want string
	}{
		{-time.Hour, "not started, wave 1 at 2026-05-01 09:00 UTC"},
		{time.Hour, "wave 1/3 (1%) until 2026-05-02 08:00 UTC"},
		{30 * time.Hour, "wave 2/3 (10%) until 2026-05-08 08:00 UTC"},
		{7 * 24 * time.Hour, "complete (100%)"},
	} {
		assert.Equal(t, tc.want, currentWave(r, start.Add(tc.at)), tc.at)
	}
	assert.Equal(t, "all devices", currentWave(nil, start))
}

// TestAddRolloutWithdraw publishes a release with a staged rollout, then
// withdraws it: the device reads both from signed metadata, inspect shows
// them, and the image stays published byte for byte.
func TestAddRolloutWithdraw(t *testing.T) {
	repo := initRepo(t)
	dir := t.TempDir()
	old, next := images()
	targetsKeys := key("ed25519-2") + "," + key("ed25519-3")
	ok(t, "add", "--repo", repo, "--hardware-id", "acme-gw-r2", "--new-hardware-id", "--version", "1.0.0", "--security-version", "1",
		"--key", targetsKeys, "--key", onlineKeys, writeImage(t, dir, "1.0.0.bin", old))

	// Bad schedules are usage errors that say what is wrong, and publish nothing.
	for _, tc := range []struct{ args, msg string }{
		{"1%@0h,50%@1d", "last rollout wave below the full share"},
		{"10%@0h,5%@1d,100%@2d", "below the previous wave"},
		{"1.234%@0h,100%@1d", "two decimals"},
		{"1%@0h,100%@1w", "hours or days"},
	} {
		r := cli(t, "add", "--repo", repo, "--hardware-id", "acme-gw-r2", "--version", "1.1.0", "--security-version", "2",
			"--rollout", tc.args, "--key", targetsKeys, "--key", onlineKeys, writeImage(t, dir, "1.1.0.bin", next))
		assert.Equal(t, 2, r.code, tc.args)
		assert.Contains(t, r.stderr, tc.msg, tc.args)
	}
	r := cli(t, "add", "--repo", repo, "--hardware-id", "acme-gw-r2", "--version", "1.1.0", "--security-version", "2",
		"--rollout-start", "2026-05-01T08:00:00Z", "--key", targetsKeys, "--key", onlineKeys, writeImage(t, dir, "1.1.0.bin", next))
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "--rollout-start needs --rollout")

	start := time.Now().UTC().Add(-30 * time.Hour).Truncate(time.Second)
	r = ok(t, "add", "--repo", repo, "--hardware-id", "acme-gw-r2", "--version", "1.1.0", "--security-version", "2",
		"--rollout", "canary", "--rollout-start", start.Format(time.RFC3339), "--deltas", "0",
		"--key", targetsKeys, "--key", onlineKeys, writeImage(t, dir, "1.1.0.bin", next))
	assert.Contains(t, r.stdout, "rollout from "+start.Format(time.RFC3339)+": 1%@0h,10%@1d,50%@3d,100%@7d")

	c := newClient(t, repo)
	_, targets := c.releases("acme-gw-r2")
	const path = "acme-gw-r2/1.1.0/firmware.bin"
	fw, err := manifest.FirmwareOf(targets.Targets[path])
	require.NoError(t, err)
	require.NotNil(t, fw.Rollout, "the schedule is in the signed targets")
	assert.Equal(t, start, fw.Rollout.Start)
	assert.Equal(t, []manifest.Wave{{Offset: 0, Share: 100}, {Offset: 24 * time.Hour, Share: 1000}, {Offset: 72 * time.Hour, Share: 5000}, {Offset: 7 * 24 * time.Hour, Share: 10000}}, fw.Rollout.Waves)
	signed := targets.Targets[path]

	r = ok(t, "inspect", "--repo", repo)
	assert.Regexp(t, `(?m)^acme-gw-r2\s+1\.0\.0\s+-\s+-\s+all devices\s+-\s+-$`, r.stdout)
	assert.Regexp(t, `(?m)^acme-gw-r2\s+1\.1\.0\s+\d{4}-\d\d-\d\d \d\d:\d\d UTC\s+1%@0h,10%@1d,50%@3d,100%@7d\s+wave 2/4 \(10%\) until .* UTC\s+-\s+-$`, r.stdout)

	// Withdraw: usage errors first, then the real one.
	image := func() []byte {
		t.Helper()
		var found []byte
		require.NoError(t, filepath.WalkDir(filepath.Join(repo, "targets"), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && filepath.Base(filepath.Dir(p)) == "1.1.0" {
				found, err = os.ReadFile(p)
			}
			return err
		}))
		return found
	}
	require.Equal(t, next, image())
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--key", targetsKeys, path}, 2, "--reason is required"},
		{[]string{"--reason", "x", path}, 2, "either --key"},
		{[]string{"--reason", "x", "--key", targetsKeys}, 2, "exactly one TARGET"},
		{[]string{"--reason", "two\nlines", "--key", targetsKeys, path}, 2, "withdrawn.reason"},
		{[]string{"--reason", "x", "--key", targetsKeys, "--key", onlineKeys, "acme-gw-r2/9.9.9/firmware.bin"}, 1, "no target"},
		{[]string{"--reason", "x", "--key", key("ed25519-4"), "--key", onlineKeys, path}, 1, "role targets needs 2 signatures"},
	} {
		r := cli(t, append([]string{"withdraw", "--repo", repo}, tc.args...)...)
		assert.Equal(t, tc.code, r.code, "%q\n%s", tc.args, r.stderr)
		assert.Contains(t, r.stderr, tc.msg, tc.args)
	}
	r = ok(t, "withdraw", "--repo", repo, "--reason", "bricks units with the rev-B radio", "--advisory", "OTA-2026-7",
		"--key", targetsKeys, "--key", onlineKeys, path)
	assert.Contains(t, r.stdout, "withdrew acme-gw-r2/1.1.0/firmware.bin (version 1.1.0): bricks units with the rev-B radio")
	assert.Contains(t, r.stdout, "published")

	_, targets = c.releases("acme-gw-r2")
	now := targets.Targets[path]
	fw, err = manifest.FirmwareOf(now)
	require.NoError(t, err)
	require.NotNil(t, fw.Withdrawn, "the withdrawal is in the signed targets")
	assert.Equal(t, manifest.Withdrawal{Reason: "bricks units with the rev-B radio", Advisories: []string{"OTA-2026-7"}}, *fw.Withdrawn)
	assert.NotNil(t, fw.Rollout, "the schedule stays")
	assert.Equal(t, signed.Length, now.Length)
	assert.Equal(t, signed.Hashes, now.Hashes, "the entry still names the same image")
	assert.Equal(t, next, image(), "the image stays published")

	r = ok(t, "inspect", "--repo", repo)
	assert.Regexp(t, `(?m)^acme-gw-r2\s+1\.1\.0\s+.*withdrawn: no device installs it\s+-\s+bricks units with the rev-B radio \(OTA-2026-7\)$`, r.stdout)

	r = cli(t, "withdraw", "--repo", repo, "--reason", "again", "--key", targetsKeys, "--key", onlineKeys, path)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "already withdrawn: bricks units")
}

// TestWithdrawStaged withdraws through a k-of-n ceremony.
func TestWithdrawStaged(t *testing.T) {
	repo := initRepo(t)
	dir := t.TempDir()
	old, _ := images()
	ok(t, "add", "--repo", repo, "--hardware-id", "acme-gw-r2", "--new-hardware-id", "--version", "1.0.0", "--security-version", "1",
		"--key", key("ed25519-2")+","+key("ed25519-3"), "--key", onlineKeys, writeImage(t, dir, "1.0.0.bin", old))
	const path = "acme-gw-r2/1.0.0/firmware.bin"
	r := ok(t, "withdraw", "--repo", repo, "--reason", "boot loop", "--stage", path)
	assert.Contains(t, r.stdout, "staged in ")
	c := newClient(t, repo)
	_, targets := c.releases("acme-gw-r2")
	fw, err := manifest.FirmwareOf(targets.Targets[path])
	require.NoError(t, err)
	assert.Nil(t, fw.Withdrawn, "nothing is published before the ceremony")

	doc := filepath.Join(dir, "targets.json")
	r = ok(t, "export", "--repo", repo, "--out", doc)
	assert.Contains(t, r.stdout, path)
	var sigs []string
	for _, k := range []string{"ed25519-2", "ed25519-6"} {
		sig := filepath.Join(dir, k+".sig")
		ok(t, "sign", "--in", doc, "--role", "targets", "--key", key(k), "--out", sig)
		sigs = append(sigs, sig)
	}
	ok(t, append([]string{"merge", "--repo", repo, "--in", doc, "--key", onlineKeys}, sigs...)...)
	_, targets = c.releases("acme-gw-r2")
	fw, err = manifest.FirmwareOf(targets.Targets[path])
	require.NoError(t, err)
	require.NotNil(t, fw.Withdrawn)
	assert.Equal(t, "boot loop", fw.Withdrawn.Reason)
}
