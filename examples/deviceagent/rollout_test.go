package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/manifest"
)

// restage signs release version again with edit applied to its firmware
// object (as release withdraw does) and publishes it; a version the
// server does not list yet is added with security version 2.
func (s *testServer) restage(t testing.TB, version string, edit func(*manifest.Firmware)) {
	t.Helper()
	ctx := context.Background()
	path := hw + "/" + version + "/firmware.bin"
	fw := manifest.Firmware{Version: manifest.MustParseVersion(version), SecurityVersion: 2, HardwareIDs: []string{hw}}
	if md, ok := s.repo.Targets(manifest.RoleTargets); ok {
		if tf, ok := md.Signed.Targets[path]; ok {
			old, err := manifest.FirmwareOf(tf)
			require.NoError(t, err)
			fw = *old
			require.NoError(t, s.repo.RemoveTarget(path))
		}
	}
	if _, ok := s.images[version]; !ok {
		s.images[version] = append(bytes.Clone(s.images["1.1.0"]), version...)
	}
	edit(&fw)
	require.NoError(t, s.repo.AddFirmware(ctx, path, bytes.NewReader(s.images[version]), fw))
	s.publish(t, "targets", "snapshot", "timestamp")
}

func withdrawn(reason string) func(*manifest.Firmware) {
	return func(fw *manifest.Firmware) {
		fw.Withdrawn = &manifest.Withdrawal{Reason: reason, Advisories: []string{"OTA-2026-7"}}
	}
}

func TestWithdrawnNewerReleaseSkipped(t *testing.T) {
	s := newServer(t, 64<<10)
	s.restage(t, "1.2.0", withdrawn("bricks units with the rev-B radio"))
	d := newDevice(t, s)
	code, log := agentRun(t, d.args(s))
	require.Equal(t, exitOK, code, log)
	assert.Regexp(t, `level=INFO msg="skipping withdrawn release" release=1\.2\.0 reason="bricks units with the rev-B radio" advisories=\[OTA-2026-7\]`, log)
	assert.Contains(t, log, `msg="update confirmed" version=1.1.0`, "the next eligible release is installed")
	st := d.status(t)
	assert.Equal(t, "1.1.0", st.Installed.Version.String())
	assert.Equal(t, uint64(2), st.Floors[hw])

	// Nothing newer may be taken: the device stays, says why, exits 0.
	code, log = agentRun(t, d.args(s))
	require.Equal(t, exitOK, code, log)
	assert.Contains(t, log, `msg="skipping withdrawn release" release=1.2.0`)
	assert.NotContains(t, log, "writing slot")
	assert.Equal(t, "1.1.0", d.status(t).Installed.Version.String())
}

func TestRunningReleaseWithdrawn(t *testing.T) {
	s := newServer(t, 64<<10)
	d := newDevice(t, s)
	code, log := agentRun(t, d.args(s))
	require.Equal(t, exitOK, code, log)
	require.Equal(t, "1.1.0", d.status(t).Installed.Version.String())

	// 1.1.0 is withdrawn with nothing newer: a security notice at WARN;
	// the device stays on it (1.0.0 is below its floor) and exits 0.
	s.restage(t, "1.1.0", withdrawn("leaks the unlock PIN over BLE"))
	code, log = agentRun(t, d.args(s))
	require.Equal(t, exitOK, code, log)
	assert.Regexp(t, `level=WARN msg="security notice: the running release was withdrawn[^"]*" release=1\.1\.0 reason="leaks the unlock PIN over BLE" advisories=\[OTA-2026-7\]`, log)
	st := d.status(t)
	assert.Equal(t, "1.1.0", st.Installed.Version.String())
	assert.Equal(t, uint64(2), st.Floors[hw], "a withdrawal never lowers the floor")

	// A fixed 1.2.0 arrives: the device moves to it, still logging the notice.
	s.restage(t, "1.2.0", func(*manifest.Firmware) {})
	code, log = agentRun(t, d.args(s))
	require.Equal(t, exitOK, code, log)
	assert.Contains(t, log, "the running release was withdrawn")
	assert.Contains(t, log, `msg="update confirmed" version=1.2.0`)
}

func TestNotYetEligible(t *testing.T) {
	s := newServer(t, 64<<10)
	start := time.Now().UTC().Truncate(time.Second)
	// No device before the second wave, a week from now.
	s.restage(t, "1.1.0", func(fw *manifest.Firmware) {
		fw.Rollout = &manifest.Rollout{Start: start, Waves: []manifest.Wave{{Offset: 0, Share: 0}, {Offset: 7 * 24 * time.Hour, Share: manifest.FullShare}}}
	})
	d := newDevice(t, s)
	code, log := agentRun(t, d.args(s, "-rollout-id", "SN-0042"))
	require.Equal(t, exitOK, code, log)
	until := start.Add(7 * 24 * time.Hour).Format("2006-01-02T15:04:05.000Z07:00") // slog's spelling
	assert.Contains(t, log, `msg="not yet eligible: the release's staged rollout has not reached this device" release=1.1.0 until=`+until+` rollout_id=SN-0042`)
	assert.Contains(t, log, "rollout_id=SN-0042")
	assert.NotContains(t, log, "writing slot")
	st := d.status(t)
	assert.Equal(t, "1.0.0", st.Installed.Version.String())
	assert.Nil(t, st.Pending)
	assert.Equal(t, uint64(1), st.Floors[hw])
}

func TestNextCheckAtWave(t *testing.T) {
	a := &agent{log: discardLog()}
	assert.Equal(t, time.Hour, a.nextCheck(time.Hour))
	a.nextWave = time.Now().Add(10 * time.Minute)
	got := a.nextCheck(time.Hour)
	assert.Greater(t, got, 9*time.Minute)
	assert.LessOrEqual(t, got, 10*time.Minute)
	assert.True(t, a.nextWave.IsZero(), "the wave is forgotten once waited for")
	a.nextWave = time.Now().Add(-time.Minute)
	assert.Equal(t, time.Second, a.nextCheck(time.Hour), "a wave already due: check again soon, not in a busy loop")
	a.nextWave = time.Now().Add(48 * time.Hour)
	assert.Equal(t, time.Hour, a.nextCheck(time.Hour), "a far wave does not stretch the interval")
}

// TestWithdrawnMidInstall publishes the withdrawal of 1.1.0 while the
// agent downloads it (after Begin). The image stays published and the
// agent installed from the metadata it verified before, so the install
// finishes and is confirmed; the next cycle finds the running release
// withdrawn, logs the notice and stays, its floor where the install put it.
func TestWithdrawnMidInstall(t *testing.T) {
	s := newServer(t, 64<<10)
	d := newDevice(t, s)
	var once sync.Once
	s.setMITM(func(p string, b []byte) []byte {
		if strings.HasPrefix(p, "/targets/") {
			once.Do(func() { s.restage(t, "1.1.0", withdrawn("bricks units with the rev-B radio")) })
		}
		return b
	})
	code, log := agentRun(t, d.args(s))
	require.Equal(t, exitOK, code, log)
	assert.Contains(t, log, `msg="writing slot" slot=b version=1.1.0`)
	assert.Contains(t, log, `msg="update confirmed" version=1.1.0`)
	st := d.status(t)
	assert.Equal(t, "1.1.0", st.Installed.Version.String())
	assert.Nil(t, st.Pending)
	assert.Equal(t, uint64(2), st.Floors[hw])

	code, log = agentRun(t, d.args(s))
	require.Equal(t, exitOK, code, log)
	assert.Contains(t, log, "the running release was withdrawn")
	assert.NotContains(t, log, "writing slot")
	st = d.status(t)
	assert.Equal(t, "1.1.0", st.Installed.Version.String())
	assert.Equal(t, uint64(2), st.Floors[hw], "floors never go down")
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
