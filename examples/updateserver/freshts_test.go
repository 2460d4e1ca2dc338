package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

// A replica answers the newest committed timestamp: a claim newer than
// timestamp.json (a publisher still copying, or a slow copy of an older
// claim that landed after the newer one) wins, and a version older than
// one the replica answered is never answered again. The bucket here is a
// directory (file://), which needs no S3 server.
func TestBucketServesNewestTimestamp(t *testing.T) {
	now := t0
	repo := newRepoAt(t, now, 1024, time.Hour)
	c := newClock(now.Add(time.Minute))
	cfg := testConfig(t, repo, c)
	cfg.Dir = ""
	cfg.BucketURL = "file://" + filepath.ToSlash(repo.dir)
	cfg.Bucket = openBucket(t, cfg.BucketURL)
	cfg.CacheTTL = 20 * time.Millisecond
	r := start(t, cfg, nil)

	version := func() int64 {
		t.Helper()
		resp, err := http.Get(r.httpURL + "/metadata/timestamp.json")
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		data, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		md, err := manifest.ParseUnverified[manifest.Timestamp](manifest.RoleTimestamp, data, manifest.Limits{})
		require.NoError(t, err)
		return md.Signed.Version
	}
	tsFile := filepath.Join(repo.dir, "metadata", "timestamp.json")
	old, err := os.ReadFile(tsFile)
	require.NoError(t, err)
	first := version()

	// A publisher commits the next version (its claim and timestamp.json);
	// then a late copy of the older claim puts the old timestamp.json back.
	ctx := context.Background()
	store, err := sign.NewDirStorage(repo.dir)
	require.NoError(t, err)
	pub, err := sign.OpenRepository(ctx, store, sign.RepositoryOptions{Now: c.Now, TempDir: t.TempDir()})
	require.NoError(t, err)
	fw := manifest.Firmware{Version: manifest.MustParseVersion("2.5.0"), SecurityVersion: 7, HardwareIDs: []string{hardwareID}}
	require.NoError(t, pub.AddFirmware(ctx, "fw/2.5.0/firmware.bin", bytes.NewReader([]byte("next")), fw))
	require.NoError(t, pub.Publish(ctx, []*sign.Signer{loadKey(t, targetsKeyFile), loadKey(t, snapshotKeyFile), loadKey(t, timestampKeyFile)}))
	pub.Close()
	committed := first + 1
	_, err = os.Stat(filepath.Join(repo.dir, "metadata", "2.timestamp.json"))
	require.NoError(t, err, "the publish left its claim")
	require.NoError(t, os.WriteFile(tsFile, old, 0o644))

	time.Sleep(2 * cfg.CacheTTL)
	assert.Equal(t, committed, version(), "the newer claim wins over a timestamp.json that went back")

	// Without the claim (say a lifecycle rule expired it) the replica
	// still never goes back to what it served before.
	require.NoError(t, os.Remove(filepath.Join(repo.dir, "metadata", "2.timestamp.json")))
	time.Sleep(2 * cfg.CacheTTL)
	assert.Equal(t, committed, version(), "a replica never answers an older timestamp than it did")
}
