package main

import (
	"bytes"
	"context"
	"io"
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
	rel, err := sign.OpenRepository(ctx, store, sign.RepositoryOptions{Now: func() time.Time { return releaseNow }, TimestampExpiry: time.Hour, TempDir: t.TempDir()})
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

// racingStore runs a release the moment the server's Publish re-reads
// timestamp.json to check that nobody published since its Open.
type racingStore struct {
	sign.Storage
	reads   int
	release func()
}

func (r *racingStore) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if name == sign.MetadataDir+"/timestamp.json" {
		if r.reads++; r.reads == 2 && r.release != nil {
			r.release()
		}
	}
	return r.Storage.Get(ctx, name)
}

// A release landing in the middle of a re-sign is a conflict that package
// sign detects; the server checks again at once and builds on the release.
func TestResignConflictRetried(t *testing.T) {
	repo := newRepo(t, 1<<10, time.Hour)
	c := newClock(t0.Add(time.Minute))
	cfg := testConfig(t, repo, c)
	dirStore, err := sign.NewDirStorage(repo.dir)
	require.NoError(t, err)
	store := &racingStore{Storage: dirStore}
	cfg.Store = store
	r := start(t, cfg, nil)
	ctx := context.Background()

	store.reads = 0
	store.release = func() {
		rel, err := sign.OpenRepository(ctx, dirStore, sign.RepositoryOptions{Now: c.Now, TimestampExpiry: time.Hour, TempDir: t.TempDir()})
		require.NoError(t, err)
		defer rel.Close()
		fw := manifest.Firmware{Version: manifest.MustParseVersion("2.5.0"), SecurityVersion: 8, HardwareIDs: []string{hardwareID}}
		require.NoError(t, rel.AddFirmware(ctx, "acme-gw-r2/2.5.0/firmware.bin", bytes.NewReader([]byte("new image")), fw))
		require.NoError(t, rel.Publish(ctx, []*sign.Signer{loadKey(t, targetsKeyFile), loadKey(t, snapshotKeyFile), loadKey(t, timestampKeyFile)}))
	}
	c.Set(t0.Add(40 * time.Minute))
	require.NoError(t, r.srv.check(ctx))
	require.Equal(t, 3, store.reads, "the release did not race with the re-sign")
	code, h := getHealth(t, r.healthURL)
	assert.Equal(t, http.StatusOK, code)
	// The release published timestamp 2 (at t0+40m, so no re-sign needed
	// after the retry) and targets 2: nothing of it was undone.
	assert.EqualValues(t, 2, h.TimestampVersion)
	client, _ := newClient(t, r.httpURL, nil, repo.rootJSON, c)
	require.NoError(t, client.Refresh(ctx))
	_, _, err = client.FindTarget(ctx, "acme-gw-r2/2.5.0/firmware.bin")
	assert.NoError(t, err)
}
