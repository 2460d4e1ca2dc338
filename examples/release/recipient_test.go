package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"net/http"
	"net/http/httptest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/encrypt"
	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/verify"
)

// TestEncryptedReleaseWorkflow: keygen --recipient, add --encrypt-to for
// two releases (the second with encrypted deltas from the first), inspect
// lists the recipients, and a device with the private key installs the
// release through its delta and gets the plaintext.
func TestEncryptedReleaseWorkflow(t *testing.T) {
	ctx := context.Background()
	repo := initRepo(t)
	dir := t.TempDir()
	old, next := images()
	targetsKeys := key("ed25519-2") + "," + key("ed25519-3")

	r := ok(t, "keygen", "--recipient", "--out", filepath.Join(dir, "group-a"))
	assert.Contains(t, r.stdout, "mlkem768-x25519")
	ok(t, "keygen", "--recipient", "--kem", "x25519", "--out", filepath.Join(dir, "small"))
	st, err := os.Stat(filepath.Join(dir, "group-a.key"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "the private half is 0600")
	assert.Equal(t, 1, cli(t, "keygen", "--recipient", "--out", filepath.Join(dir, "group-a")).code, "never overwrites a key")
	assert.Equal(t, 2, cli(t, "keygen").code, "signing keys are made elsewhere")

	ok(t, "add", "--repo", repo, "--hardware-id", "acme-gw-r2", "--version", "1.0.0", "--security-version", "1", "--new-hardware-id",
		"--encrypt-to", filepath.Join(dir, "group-a.pub"), "--encrypt-to", filepath.Join(dir, "small.pub"),
		"--key", targetsKeys, "--key", onlineKeys, writeImage(t, dir, "1.0.0.bin", old))
	r = ok(t, "add", "--repo", repo, "--hardware-id", "acme-gw-r2", "--version", "1.1.0", "--security-version", "2",
		"--encrypt-to", filepath.Join(dir, "group-a.pub"), "--delta-formats", "otaseal-zstd,bsdiff40",
		"--key", targetsKeys, "--key", onlineKeys, writeImage(t, dir, "1.1.0.bin", next))
	assert.Contains(t, r.stdout, "encrypted acme-gw-r2/1.1.0/firmware.bin")
	assert.Contains(t, r.stdout, "added acme-gw-r2/deltas/1.0.0-1.1.0.otz")
	assert.Contains(t, r.stdout, "added acme-gw-r2/deltas/1.0.0-1.1.0.bsdiff")
	ck, err := os.Stat(contentKeyFile(repo, "acme-gw-r2/1.1.0/firmware.bin"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), ck.Mode().Perm())

	priv, err := os.ReadFile(filepath.Join(dir, "group-a.key"))
	require.NoError(t, err)
	groupKey, err := encrypt.ParsePrivateKey(priv)
	require.NoError(t, err)
	r = ok(t, "inspect", "--repo", repo)
	assert.Contains(t, r.stdout, "RECIPIENT KEY ID")
	assert.Contains(t, r.stdout, groupKey.KeyID())

	// Nothing in the served directory is plaintext.
	for _, img := range [][]byte{old, next} {
		filepath.Walk(repo, func(p string, info os.FileInfo, err error) error {
			if err == nil && !info.IsDir() {
				b, _ := os.ReadFile(p)
				assert.False(t, bytes.Contains(b, img[:4096]), "%s holds a plaintext image", p)
			}
			return nil
		})
	}

	// A device holding the group key installs 1.1.0 through the delta.
	c := newClient(t, repo)
	_, targets := c.releases("acme-gw-r2")
	keyed := newKeyedClient(t, repo, groupKey)
	rels, err := manifest.FirmwareFor(targets, "acme-gw-r2")
	require.NoError(t, err)
	oldLen, oldSum := manifest.ImageOf(rels[0].File, rels[0].Firmware)
	patches, err := manifest.DeltasTo(targets, rels[1].Path, oldSum)
	require.NoError(t, err)
	require.Len(t, patches, 2)
	for _, p := range patches {
		u := &verify.Update{Release: rels[1], Patch: &p}
		var out bytes.Buffer
		require.NoError(t, keyed.Install(ctx, u, &out, verify.InstallOptions{Installed: bytes.NewReader(old), InstalledSize: oldLen, ScratchDir: t.TempDir()}))
		assert.Equal(t, next, out.Bytes(), "via %s", p.Path)
	}
	// 1.2.0 for a fleet keyed per device: the keys go to an envelope.
	devices := filepath.Join(dir, "devices")
	require.NoError(t, os.Mkdir(devices, 0o700))
	for _, n := range []string{"dev-1", "dev-2", "dev-3"} {
		ok(t, "keygen", "--recipient", "--kem", "x25519", "--out", filepath.Join(devices, n))
	}
	third := append(bytes.Clone(next), "1.2.0"...)
	r = ok(t, "add", "--repo", repo, "--hardware-id", "acme-gw-r2", "--version", "1.2.0", "--security-version", "3",
		"--envelope", "fleet="+devices, "--deltas", "1", "--delta-formats", "otaseal-zstd",
		"--key", targetsKeys, "--key", onlineKeys, writeImage(t, dir, "1.2.0.bin", third))
	assert.Contains(t, r.stdout, "envelope fleet (3 keys)")
	assert.Contains(t, r.stdout, "added acme-gw-r2/deltas/1.1.0-1.2.0.otz")
	r = ok(t, "inspect", "--repo", repo)
	assert.Contains(t, r.stdout, "envelope acme-gw-r2/1.2.0/keys/fleet.json")
	devPEM, err := os.ReadFile(filepath.Join(devices, "dev-2.key"))
	require.NoError(t, err)
	devKey, err := encrypt.ParsePrivateKey(devPEM)
	require.NoError(t, err)
	dc := newKeyedClient(t, repo, devKey)
	tf, _, err := dc.FindTarget(ctx, "acme-gw-r2/1.2.0/firmware.bin")
	require.NoError(t, err)
	fw, err := manifest.FirmwareOf(tf)
	require.NoError(t, err)
	var got bytes.Buffer
	require.NoError(t, dc.Install(ctx, &verify.Update{Release: manifest.Release{Path: "acme-gw-r2/1.2.0/firmware.bin", File: tf, Firmware: fw}}, &got, verify.InstallOptions{}))
	assert.Equal(t, third, got.Bytes())
	assert.Equal(t, 2, cli(t, "add", "--repo", repo, "--hardware-id", "acme-gw-r2", "--version", "1.3.0", "--envelope", "nokeys",
		"--key", targetsKeys, writeImage(t, dir, "1.3.0.bin", third)).code)

	// Without the key: refused before anything is written.
	var out bytes.Buffer
	err = c.Install(ctx, &verify.Update{Release: rels[1]}, &out, verify.InstallOptions{})
	assert.ErrorIs(t, err, verify.ErrNoDecryptionKey)
	assert.Zero(t, out.Len())
}

// newKeyedClient is a refreshed device client holding keys.
func newKeyedClient(t *testing.T, repoDir string, keys ...verify.DecryptionKey) *verify.Client {
	ctx := context.Background()
	srv := httptest.NewServer(http.FileServer(http.Dir(repoDir)))
	t.Cleanup(srv.Close)
	rootJSON, err := os.ReadFile(filepath.Join(repoDir, "metadata", "1.root.json"))
	require.NoError(t, err)
	store := verify.DirTrustStore{Dir: t.TempDir()}
	require.NoError(t, verify.Bootstrap(ctx, store, rootJSON, manifest.Limits{}))
	c, err := verify.New(ctx, verify.Config{MetadataURL: srv.URL + "/metadata/", TargetsURL: srv.URL + "/targets/",
		Store: store, Clock: verify.SystemClock{}, DecryptionKeys: keys})
	require.NoError(t, err)
	require.NoError(t, c.Refresh(ctx))
	return c
}
