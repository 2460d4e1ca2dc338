package main

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

// The release tool publishes new firmware into the directory the server
// serves; the server's next re-sign builds on it rather than undoing it.
func TestReleaseWhileServing(t *testing.T) {
	repo := newRepo(t, 1<<10, time.Hour)
	c := newClock(t0.Add(time.Minute))
	r := start(t, testConfig(t, repo, c), nil)
	ctx := context.Background()

	// The release engineer, with the offline targets key, at t0+10m.
	store, err := sign.NewDirStorage(repo.dir)
	require.NoError(t, err)
	releaseNow := t0.Add(10 * time.Minute)
	rel, err := sign.Open(ctx, store, sign.Options{Now: func() time.Time { return releaseNow }, TimestampExpiry: time.Hour, TempDir: t.TempDir()})
	require.NoError(t, err)
	image := bytes.Repeat([]byte("2.5.0 "), 1000)
	fw := manifest.Firmware{Version: manifest.MustParseVersion("2.5.0"), SecurityVersion: 8, HardwareIDs: []string{hardwareID}}
	const newPath = "acme-gw-r2/2.5.0/firmware.bin"
	require.NoError(t, rel.AddFirmware(ctx, newPath, bytes.NewReader(image), fw))
	require.NoError(t, rel.Publish(ctx, []*sign.Signer{loadKey(t, targetsKeyFile), loadKey(t, snapshotKeyFile), loadKey(t, timestampKeyFile)}))
	require.NoError(t, rel.Close())

	// The server re-signs when that timestamp nears its expiry.
	c.Set(t0.Add(45 * time.Minute))
	require.NoError(t, r.srv.check(ctx))
	code, h := getHealth(t, r.healthURL)
	require.Equal(t, http.StatusOK, code)
	assert.EqualValues(t, 3, h.TimestampVersion)
	assert.EqualValues(t, 2, h.SnapshotVersion, "the server re-signs the snapshot only when it nears expiry")

	late := newClock(t0.Add(75 * time.Minute)) // both earlier timestamps expired
	client, dir := newClient(t, r.httpURL, nil, repo.rootJSON, late)
	require.NoError(t, client.Refresh(ctx))
	assert.EqualValues(t, 3, trustedTimestampVersion(t, dir))
	tf, _, err := client.FindTarget(ctx, newPath)
	require.NoError(t, err)
	var got bytes.Buffer
	require.NoError(t, client.Download(ctx, newPath, tf, &got))
	assert.Equal(t, image, got.Bytes())
}
