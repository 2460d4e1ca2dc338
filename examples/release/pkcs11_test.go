//go:build cgo

package main

import (
	"crypto/elliptic"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ThalesGroup/crypto11"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const softHSMModule = "/usr/lib/softhsm/libsofthsm2.so"

// softHSMToken makes a SoftHSM2 token in a temp directory holding a P-256
// key pair labelled label. Without SoftHSM2 the test is skipped, unless CI
// is set: there a missing tool must fail, not silently pass.
func softHSMToken(t *testing.T, token, label, pin string) {
	t.Helper()
	_, lookErr := exec.LookPath("softhsm2-util")
	_, statErr := os.Stat(softHSMModule)
	if lookErr != nil || statErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("SoftHSM2 is required in CI: softhsm2-util: %v, %s: %v", lookErr, softHSMModule, statErr)
		}
		t.Skip("SoftHSM2 not installed (softhsm2-util, " + softHSMModule + ")")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "softhsm2.conf")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "tokens"), 0o700))
	require.NoError(t, os.WriteFile(conf, fmt.Appendf(nil, "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", filepath.Join(dir, "tokens")), 0o600))
	t.Setenv("SOFTHSM2_CONF", conf)
	out, err := exec.Command("softhsm2-util", "--init-token", "--free", "--label", token, "--pin", pin, "--so-pin", "so-"+pin).CombinedOutput()
	require.NoError(t, err, string(out))
	c11, err := crypto11.Configure(&crypto11.Config{Path: softHSMModule, TokenLabel: token, Pin: pin})
	require.NoError(t, err)
	_, err = c11.GenerateECDSAKeyPairWithLabel([]byte{1}, []byte(label), elliptic.P256())
	require.NoError(t, err)
	require.NoError(t, c11.Close())
}

// The targets key lives in an HSM: init lists it, add signs with it.
func TestPKCS11TargetsKey(t *testing.T) {
	softHSMToken(t, "release", "targets-2026", "4321")
	t.Setenv("RELEASE_TEST_PIN", "4321")
	hsm := "pkcs11:module=" + softHSMModule + ";token=release;key=targets-2026;pin-env=RELEASE_TEST_PIN"
	repo := filepath.Join(t.TempDir(), "repo")
	ok(t, "init", "--repo", repo, "--root-key", key("ed25519-1"), "--targets-key", hsm,
		"--snapshot-key", key("ed25519-4"), "--timestamp-key", key("ed25519-5"))
	r := ok(t, "inspect", "--repo", repo)
	assert.Regexp(t, `(?m)^targets\s+1\s+.*1 of 1\s+\w{12} \(ecdsa-sha2-nistp256\)$`, r.stdout)

	img := writeImage(t, t.TempDir(), "fw.bin", []byte("firmware signed through PKCS#11"))
	ok(t, "add", "--repo", repo, "--hardware-id", "lock-hub", "--version", "3.0.0", "--security-version", "1", "--key", hsm, "--key", onlineKeys, img)
	vs, _ := newClient(t, repo).releases("lock-hub")
	assert.Equal(t, []string{"3.0.0"}, vs)

	// A wrong PIN variable is an operation failure, not a crash.
	r = cli(t, "add", "--repo", repo, "--hardware-id", "lock-hub", "--version", "3.0.1", "--security-version", "1",
		"--key", "pkcs11:module="+softHSMModule+";token=release;key=targets-2026;pin-env=RELEASE_TEST_NO_PIN", "--key", onlineKeys, img)
	assert.Equal(t, 1, r.code, r.stderr)
}
