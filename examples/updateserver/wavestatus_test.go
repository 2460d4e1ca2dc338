package main

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/fleet"
	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

// TestStatusPerWave: with a staged release, status puts each device in
// the wave its rollout ID falls in (manifest.RolloutBucket, as devices
// decide), counts as eligible only the waves open by the server's clock,
// and files each device's result under its wave.
func TestStatusPerWave(t *testing.T) {
	const staged = "acme-gw-r2/2.5.0/firmware.bin"
	repo := newRepo(t, 1024, time.Hour)
	ctx := context.Background()
	store, err := sign.NewDirStorage(repo.dir)
	require.NoError(t, err)
	r, err := sign.OpenRepository(ctx, store, sign.RepositoryOptions{Now: func() time.Time { return t0 }, TimestampExpiry: time.Hour, TempDir: t.TempDir()})
	require.NoError(t, err)
	ro := &manifest.Rollout{Start: t0, Waves: []manifest.Wave{{Offset: 0, Share: 2000}, {Offset: 24 * time.Hour, Share: manifest.FullShare}}}
	fw := manifest.Firmware{Version: manifest.MustParseVersion("2.5.0"), SecurityVersion: 7, HardwareIDs: []string{hardwareID}, Rollout: ro}
	require.NoError(t, r.AddFirmware(ctx, staged, bytes.NewReader([]byte("image 2.5.0")), fw))
	require.NoError(t, r.Publish(ctx, []*sign.Signer{loadKey(t, targetsKeyFile), loadKey(t, snapshotKeyFile), loadKey(t, timestampKeyFile)}))
	require.NoError(t, r.Close())

	ds := newTestDevices(t, 60)
	st, _ := openTestStore(t, "sqlite")
	c := newClock(t0.Add(time.Hour)) // wave 1 open, wave 2 not yet
	cfg := testConfig(t, repo, c)
	cfg.Reports, cfg.Enrolment = st, writeEnrolment(t, t.TempDir(), ds)
	srv := start(t, cfg, nil)

	want := make([]fleet.WaveStatus, 2)
	for i, d := range ds {
		w := 1
		if manifest.RolloutBucket(staged, d.rolloutID) < 2000 {
			w = 0
		}
		want[w].Devices++
		if w == 0 {
			want[w].Eligible++
			res := fleet.Confirmed
			if i%3 == 0 {
				res = fleet.Reverted
			}
			rep := d.report(1, res)
			rep.Tried = fleet.Release{Target: staged, Version: "2.5.0"}
			if res == fleet.Confirmed {
				rep.Running = rep.Tried
			}
			code, body, err := post(http.DefaultClient, srv.httpURL, d.seal(t, rep))
			require.NoError(t, err)
			require.Equal(t, 200, code, body)
			want[w].Attempted++
			if res == fleet.Confirmed {
				want[w].Confirmed++
			} else {
				want[w].Reverted++
			}
		}
	}
	require.Positive(t, want[0].Devices)
	require.Positive(t, want[1].Devices)

	got := getStatusOf(t, srv, staged)
	require.Len(t, got.Waves, 2)
	for i := range want {
		g := got.Waves[i]
		assert.Equal(t, []int{want[i].Devices, want[i].Eligible, want[i].Attempted, want[i].Confirmed, want[i].Reverted, want[i].Failed},
			[]int{g.Devices, g.Eligible, g.Attempted, g.Confirmed, g.Reverted, g.Failed}, "wave %d", i+1)
	}
	assert.True(t, got.Waves[0].Open)
	assert.False(t, got.Waves[1].Open)
	assert.Equal(t, t0.Add(24*time.Hour), got.Waves[1].Opens.UTC())

	// A day later the second wave is open: its devices are eligible.
	c.Set(t0.Add(25 * time.Hour))
	got = getStatusOf(t, srv, staged)
	assert.Equal(t, want[1].Devices, got.Waves[1].Eligible)
}
