package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/otaseal/otaseal/delta"
	"github.com/otaseal/otaseal/internal/tuftest"
	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/rollback"
)

const hw = "acme-gw-r2"

// serve publishes 1.0.0, 1.1.0 and a delta between them on 127.0.0.1,
// valid for a day from now.
func serve(t *testing.T, images map[string][]byte) *tuftest.Repo {
	r := tuftest.NewRepo(t)
	for v, sv := range map[string]uint64{"1.0.0": 1, "1.1.0": 2} {
		r.AddTarget("targets", hw+"/"+v+"/firmware.bin", images[v], func(tf *metadata.TargetFiles) {
			require.NoError(t, manifest.SetFirmware(tf, manifest.Firmware{Version: manifest.MustParseVersion(v), SecurityVersion: sv, HardwareIDs: []string{hw}}))
		})
	}
	s, err := delta.Diff(images["1.0.0"], images["1.1.0"])
	require.NoError(t, err)
	var patch bytes.Buffer
	require.NoError(t, s.Encode(&patch, delta.FormatStream))
	from, to := sha256.Sum256(images["1.0.0"]), sha256.Sum256(images["1.1.0"])
	r.AddTarget("targets", hw+"/deltas/1.0.0-1.1.0.otz", patch.Bytes(), func(tf *metadata.TargetFiles) {
		require.NoError(t, manifest.SetDelta(tf, manifest.Delta{Format: manifest.FormatZstdStream,
			From: manifest.DeltaEnd{Path: hw + "/1.0.0/firmware.bin", Length: int64(len(images["1.0.0"])), SHA256: from[:]},
			To:   manifest.DeltaEnd{Path: hw + "/1.1.0/firmware.bin", Length: int64(len(images["1.1.0"])), SHA256: to[:]}}))
	})
	day := time.Now().Add(24 * time.Hour)
	r.Targets["targets"].Signed.Expires, r.Snapshot.Signed.Expires, r.Timestamp.Signed.Expires = day, day, day
	r.Publish()
	return r
}

// factory serves images and makes a device directory with 1.0.0 in slot
// a and the shipped root.
func factory(t *testing.T, images map[string][]byte) (r *tuftest.Repo, dir, rootFile string) {
	r = serve(t, images)
	dir = t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a"), images["1.0.0"], 0o600))
	rootFile = filepath.Join(dir, "root.json")
	require.NoError(t, os.WriteFile(rootFile, r.RootJSON(1), 0o600))
	return r, dir, rootFile
}

// Three boots: the first provisions slot a and installs 1.1.0 into slot b
// by its delta, the second boots b and confirms it (the floor rises), the
// third finds nothing to do.
func TestMiniAgent(t *testing.T) {
	ctx := context.Background()
	images := map[string][]byte{"1.0.0": bytes.Repeat([]byte("firmware 1.0.0 "), 4000), "1.1.0": bytes.Repeat([]byte("firmware 1.1.0 "), 4000)}
	r, dir, rootFile := factory(t, images)

	boot := func() string {
		var logs bytes.Buffer
		require.NoError(t, run(ctx, slog.New(slog.NewTextHandler(&logs, nil)), r.Srv.URL, dir, hw, rootFile, hw+"/1.0.0/firmware.bin"))
		return logs.String()
	}
	out := boot()
	assert.Contains(t, out, "action=running version=1.0.0")
	assert.Contains(t, out, "msg=installed version=1.1.0 slot=b patch="+hw+"/deltas/1.0.0-1.1.0.otz")
	slotB, err := os.ReadFile(filepath.Join(dir, "b"))
	require.NoError(t, err)
	assert.Equal(t, images["1.1.0"], slotB)

	out = boot()
	assert.Contains(t, out, "slot=b action=trial version=1.1.0")
	assert.Contains(t, out, "msg=confirmed version=1.1.0 security_version=2")
	assert.Contains(t, out, "up to date")
	counter, err := rollback.OpenFileCounter(filepath.Join(dir, "counter"))
	require.NoError(t, err)
	floor, err := counter.Value(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(2), floor)
	require.NoError(t, counter.Close()) // the next boot takes it

	out = boot()
	assert.Contains(t, out, "action=running version=1.1.0")
	assert.Contains(t, out, "up to date")
}

// A new image that no longer matches its record when it boots is not
// confirmed: the agent reverts and boots the old slot again.
func TestMiniAgentRevertsBadSlot(t *testing.T) {
	ctx := context.Background()
	images := map[string][]byte{"1.0.0": bytes.Repeat([]byte("old "), 4000), "1.1.0": bytes.Repeat([]byte("new "), 4000)}
	r, dir, rootFile := factory(t, images)
	log := slog.New(slog.DiscardHandler)
	require.NoError(t, run(ctx, log, r.Srv.URL, dir, hw, rootFile, hw+"/1.0.0/firmware.bin"))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "b"), []byte("flash went bad"), 0o600))
	assert.Error(t, run(ctx, log, r.Srv.URL, dir, hw, rootFile, ""))
	booted, err := os.ReadFile(filepath.Join(dir, "booted"))
	require.NoError(t, err)
	assert.Equal(t, "a", string(booted))
}
