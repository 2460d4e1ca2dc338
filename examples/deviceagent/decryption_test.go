package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/delta"
	"github.com/otaseal/otaseal/encrypt"
	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

// withEncryptedRelease publishes 1.2.0 encrypted for a new group key, with
// an encrypted delta from 1.0.0, and returns the private key file.
func withEncryptedRelease(t *testing.T, s *testServer) string {
	ctx := context.Background()
	group, err := encrypt.GenerateKey(encrypt.MLKEM768X25519)
	require.NoError(t, err)
	next := bytes.Clone(s.images["1.1.0"])
	copy(next[100:], "version 1.2.0")
	s.images["1.2.0"] = next
	path := hw + "/1.2.0/firmware.bin"
	fw := manifest.Firmware{Version: manifest.MustParseVersion("1.2.0"), SecurityVersion: 3, HardwareIDs: []string{hw}}
	key, err := s.repo.AddEncryptedFirmware(ctx, path, bytes.NewReader(next), fw, sign.EncryptOptions{Recipients: []*encrypt.PublicKey{group.Public()}})
	require.NoError(t, err)
	d, err := delta.Diff(s.images["1.0.0"], next)
	require.NoError(t, err)
	var patch bytes.Buffer
	require.NoError(t, d.Encode(&patch, delta.FormatStream))
	require.NoError(t, s.repo.AddEncryptedDelta(ctx, hw+"/deltas/1.0.0-1.2.0.otz", hw+"/1.0.0/firmware.bin", path, &patch, sign.DeltaKeys{To: &key}))
	s.publish(t, "targets", "snapshot", "timestamp")
	pem, err := encrypt.MarshalPrivateKey(group)
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "group.key")
	require.NoError(t, os.WriteFile(file, pem, 0o600))
	return file
}

func TestEncryptedUpdate(t *testing.T) {
	s := newServer(t, 64<<10)
	keyFile := withEncryptedRelease(t, s)
	d := newDevice(t, s)
	code, log := agentRun(t, d.args(s, "-decryption-key", keyFile))
	require.Equal(t, 0, code, log)
	assert.Contains(t, log, "encrypted=true")
	assert.Contains(t, log, "via=\"delta "+hw+"/deltas/1.0.0-1.2.0.otz\"")
	st := d.status(t)
	assert.Equal(t, "1.2.0", st.Installed.Version.String())
	got, err := os.ReadFile(d.slotB)
	require.NoError(t, err)
	assert.Equal(t, s.images["1.2.0"], got, "the slot holds the plaintext")
}

// TestEncryptedUpdateWithoutKey: a device without the key refuses with a
// clear error before its slot or state changes.
func TestEncryptedUpdateWithoutKey(t *testing.T) {
	s := newServer(t, 64<<10)
	withEncryptedRelease(t, s)
	other, err := encrypt.GenerateKey(encrypt.X25519)
	require.NoError(t, err)
	pem, err := encrypt.MarshalPrivateKey(other)
	require.NoError(t, err)
	otherFile := filepath.Join(t.TempDir(), "other.key")
	require.NoError(t, os.WriteFile(otherFile, pem, 0o600))
	for _, args := range [][]string{nil, {"-decryption-key", otherFile}} {
		d := newDevice(t, s)
		code, log := agentRun(t, d.args(s, args...))
		assert.Equal(t, exitRefused, code, log)
		assert.Contains(t, log, "encrypted for none of this device's keys")
		_, err := os.Stat(d.slotB)
		assert.True(t, os.IsNotExist(err), "slot B never written")
		st := d.status(t)
		assert.Equal(t, "1.0.0", st.Installed.Version.String())
		assert.Nil(t, st.Pending)
	}
	d := newDevice(t, s)
	code, log := agentRun(t, d.args(s, "-decryption-key", filepath.Join(t.TempDir(), "missing.key")))
	assert.Equal(t, exitUsage, code, log)
}

// TestEncryptedReleaseThroughBinaries: the built release tool makes a
// recipient key and publishes an encrypted release; the built agent,
// given the private key, installs it from a server on 127.0.0.1.
func TestEncryptedReleaseThroughBinaries(t *testing.T) {
	agentBinary(t) // built once, run by runBinary below
	tmp := t.TempDir()
	release := filepath.Join(tmp, "release")
	out, err := exec.Command("go", "build", "-o", release, "../release").CombinedOutput()
	require.NoError(t, err, string(out))
	key := func(n string) string { return filepath.Join("..", "..", "sign", "testdata", "keys", n+".pem") }
	repo := filepath.Join(tmp, "repo")
	sh := func(bin string, args ...string) string {
		out, err := exec.Command(bin, args...).CombinedOutput()
		require.NoError(t, err, "%s %v:\n%s", filepath.Base(bin), args, out)
		return string(out)
	}
	sh(release, "init", "--repo", repo, "--root-key", key("ed25519-1"), "--targets-key", key("ed25519-2"),
		"--snapshot-key", key("ed25519-4"), "--timestamp-key", key("ed25519-5"))
	sh(release, "keygen", "--recipient", "--out", filepath.Join(tmp, "fleet"))
	images := makeImages(256 << 10)
	for _, v := range []string{"1.0.0", "1.1.0"} {
		img := filepath.Join(tmp, v+".bin")
		require.NoError(t, os.WriteFile(img, images[v], 0o644))
		sv := map[string]string{"1.0.0": "1", "1.1.0": "2"}[v]
		args := []string{"add", "--repo", repo, "--hardware-id", hw, "--version", v, "--security-version", sv,
			"--encrypt-to", filepath.Join(tmp, "fleet.pub"), "--delta-formats", "otaseal-zstd",
			"--key", key("ed25519-2"), "--key", key("ed25519-4") + "," + key("ed25519-5")}
		if v == "1.0.0" {
			args = append(args, "--new-hardware-id")
		}
		sh(release, append(args, img)...)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(repo)))
	defer srv.Close()
	dev := filepath.Join(tmp, "device")
	require.NoError(t, os.MkdirAll(dev, 0o700))
	slotA, slotB := filepath.Join(dev, "a.img"), filepath.Join(dev, "b.img")
	require.NoError(t, os.WriteFile(slotA, images["1.0.0"], 0o644))
	args := []string{"-server", srv.URL, "-hardware-id", hw, "-state", filepath.Join(dev, "state"), "-slot-a", slotA, "-slot-b", slotB,
		"-root", filepath.Join(repo, "metadata", "1.root.json"), "-factory-version", "1.0.0", "-factory-security-version", "1",
		"-decryption-key", filepath.Join(tmp, "fleet.key"), "-once"}
	code, log := runBinary(t, args...)
	require.Equal(t, exitOK, code, log)
	assert.Contains(t, log, "encrypted=true")
	assert.Contains(t, log, "via=\"delta "+hw+"/deltas/1.0.0-1.1.0.otz\"")
	got, err := os.ReadFile(slotB)
	require.NoError(t, err)
	assert.Equal(t, images["1.1.0"], got)
}
