//go:build cgo

package main

import (
	"crypto/elliptic"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/otaseal/otaseal/internal/softhsm"
)

// softHSMToken makes a SoftHSM2 token holding a P-256 key pair labelled
// label, and returns the module path.
func softHSMToken(t *testing.T, token, label, pin string) string {
	t.Helper()
	module := softhsm.NewToken(t, token, pin)
	softhsm.GenerateKeys(t, module, token, pin, softhsm.Key{Label: label, Curve: elliptic.P256()})
	return module
}

// The targets key lives in an HSM: init lists it, add signs with it.
func TestPKCS11TargetsKey(t *testing.T) {
	module := softHSMToken(t, "release", "targets-2026", "4321")
	t.Setenv("RELEASE_TEST_PIN", "4321")
	hsm := "pkcs11:module=" + module + ";token=release;key=targets-2026;pin-env=RELEASE_TEST_PIN"
	repo := filepath.Join(t.TempDir(), "repo")
	ok(t, "init", "--repo", repo, "--root-key", key("ed25519-1"), "--targets-key", hsm,
		"--snapshot-key", key("ed25519-4"), "--timestamp-key", key("ed25519-5"))
	r := ok(t, "inspect", "--repo", repo)
	assert.Regexp(t, `(?m)^targets\s+1\s+.*1 of 1\s+\w{12} \(ecdsa-sha2-nistp256\)$`, r.stdout)

	img := writeImage(t, t.TempDir(), "fw.bin", []byte("firmware signed through PKCS#11"))
	ok(t, "add", "--repo", repo, "--hardware-id", "lock-hub", "--new-hardware-id", "--version", "3.0.0", "--security-version", "1", "--key", hsm, "--key", onlineKeys, img)
	vs, _ := newClient(t, repo).releases("lock-hub")
	assert.Equal(t, []string{"3.0.0"}, vs)

	// A wrong PIN variable is an operation failure, not a crash.
	r = cli(t, "add", "--repo", repo, "--hardware-id", "lock-hub", "--version", "3.0.1", "--security-version", "1",
		"--key", "pkcs11:module="+module+";token=release;key=targets-2026;pin-env=RELEASE_TEST_NO_PIN", "--key", onlineKeys, img)
	assert.Equal(t, 1, r.code, r.stderr)
}
