package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/internal/s3test"
	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/verify"
)

// Two release runs against one bucket at the same time, 20 rounds: each
// run publishes or fails with "repository changed ..., retry" and
// publishes when run again; no release is lost.
func TestReleaseConcurrentOnBucket(t *testing.T) {
	srv := s3test.Require(t)
	srv.SetCredentialsEnv(t)
	b := srv.NewBucket(t, true)
	ok(t, "init", "--repo", b.URL, "--root-key", key("ed25519-1"),
		"--targets-key", key("ed25519-2"), "--snapshot-key", key("ed25519-4"), "--timestamp-key", key("ed25519-5"))
	dir := t.TempDir()
	const rounds = 20
	conflicts := 0
	var mu sync.Mutex
	for round := range rounds {
		var wg sync.WaitGroup
		for _, hw := range []string{"acme-a", "acme-b"} {
			img := writeImage(t, dir, fmt.Sprintf("%s-%d.bin", hw, round), []byte(fmt.Sprintf("image %s %d", hw, round)))
			wg.Go(func() {
				for try := 0; ; try++ {
					args := []string{"add", "--repo", b.URL, "--hardware-id", hw, "--version", fmt.Sprintf("1.%d.0", round),
						"--security-version", "1", "--deltas", "0", "--key", key("ed25519-2"), "--key", onlineKeys}
					if round == 0 {
						args = append(args, "--new-hardware-id")
					}
					r := cli(t, append(args, img)...)
					if r.code == 0 {
						return
					}
					if !assert.Contains(t, r.stderr, "repository changed since it was opened, retry", "round %d %s", round, hw) || try == 5 {
						t.Errorf("round %d %s: %s", round, hw, r.stderr)
						return
					}
					mu.Lock()
					conflicts++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	t.Logf("%d rounds of two concurrent release runs: %d lost the race and succeeded when run again", rounds, conflicts)

	// A device reading the bucket's own endpoint sees every release.
	ctx := context.Background()
	resp, err := http.Get(b.HTTP + "/metadata/1.root.json")
	require.NoError(t, err)
	rootJSON, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	store := &verify.MemTrustStore{}
	require.NoError(t, verify.Bootstrap(ctx, store, rootJSON, manifest.Limits{}))
	c, err := verify.New(ctx, verify.Config{MetadataURL: b.HTTP + "/metadata/", TargetsURL: b.HTTP + "/targets/", Store: store, Clock: verify.SystemClock{}})
	require.NoError(t, err)
	cl := &client{c, t}
	for _, hw := range []string{"acme-a", "acme-b"} {
		vs, _ := cl.releases(hw)
		assert.Len(t, vs, rounds, "%s: %s", hw, strings.Join(vs, " "))
	}
}

// add --release-index writes the hardware ID's release index, and later
// adds keep it current; devices download it as a signed target.
func TestReleaseIndex(t *testing.T) {
	repo := initRepo(t)
	dir := t.TempDir()
	old, next := images()
	targetsKeys := key("ed25519-2") + "," + key("ed25519-3")
	r := ok(t, "add", "--repo", repo, "--hardware-id", "acme-gw-r2", "--new-hardware-id", "--version", "1.0.0", "--security-version", "1",
		"--release-index", "--key", targetsKeys, "--key", onlineKeys, writeImage(t, dir, "1.0.0.bin", old))
	assert.Contains(t, r.stdout, "release index acme-gw-r2/releases.json updated")
	r = ok(t, "add", "--repo", repo, "--hardware-id", "acme-gw-r2", "--version", "1.1.0", "--security-version", "1",
		"--key", targetsKeys, "--key", onlineKeys, writeImage(t, dir, "1.1.0.bin", next))
	assert.Contains(t, r.stdout, "release index acme-gw-r2/releases.json updated")

	c := newClient(t, repo)
	require.NoError(t, c.Refresh(context.Background()))
	p := manifest.ReleaseIndexPath("acme-gw-r2")
	tf, _, err := c.FindTarget(context.Background(), p)
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, c.Download(context.Background(), p, tf, &buf))
	ix, err := manifest.ParseReleaseIndex(buf.Bytes(), "acme-gw-r2")
	require.NoError(t, err)
	assert.Contains(t, ix.Targets, "acme-gw-r2/1.0.0/firmware.bin")
	assert.Contains(t, ix.Targets, "acme-gw-r2/1.1.0/firmware.bin")
	assert.Contains(t, ix.Targets, "acme-gw-r2/deltas/1.0.0-1.1.0.bsdiff")

	// Withdrawing changes the release's entry: the index follows.
	r = ok(t, "withdraw", "--repo", repo, "--reason", "bricks rev B", "--key", targetsKeys, "--key", onlineKeys, "acme-gw-r2/1.1.0/firmware.bin")
	assert.Contains(t, r.stdout, "release index acme-gw-r2/releases.json updated")
	require.NoError(t, c.Refresh(context.Background()))
	tf, _, err = c.FindTarget(context.Background(), p)
	require.NoError(t, err)
	buf.Reset()
	require.NoError(t, c.Download(context.Background(), p, tf, &buf))
	ix, err = manifest.ParseReleaseIndex(buf.Bytes(), "acme-gw-r2")
	require.NoError(t, err)
	fw, err := manifest.FirmwareOf(ix.Targets["acme-gw-r2/1.1.0/firmware.bin"])
	require.NoError(t, err)
	require.NotNil(t, fw.Withdrawn)
	assert.Equal(t, "bricks rev B", fw.Withdrawn.Reason)
}
