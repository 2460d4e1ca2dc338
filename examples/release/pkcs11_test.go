//go:build cgo

package main

import (
	"crypto/elliptic"
	"path/filepath"
	"regexp"
	"strings"
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

// keygen --pkcs11 makes the key pair inside the token (the built program,
// as an HSM user runs it); init and add then sign with it there, and the
// label is never reused.
func TestBuiltKeygenPKCS11(t *testing.T) {
	module := softhsm.NewToken(t, "release-keygen", "2468")
	t.Setenv("RELEASE_TEST_PIN", "2468")
	dir := t.TempDir()
	ref := "pkcs11:module=" + module + ";token=release-keygen;key=targets-2027;pin-env=RELEASE_TEST_PIN"
	pub := filepath.Join(dir, "targets-2027.pub")
	r := binOK(t, "keygen", "--pkcs11", ref, "--type", "ecdsa-p384", "--pub", pub)
	assert.Contains(t, r.stdout, "created ecdsa-sha2-nistp384 key in token")
	assert.Regexp(t, `(?m)^key ID: [0-9a-f]{64}$`, r.stdout)
	assert.Contains(t, r.stdout, "-----BEGIN PUBLIC KEY-----")
	id := regexp.MustCompile(`key ID: ([0-9a-f]{64})`).FindStringSubmatch(r.stdout)[1]

	r = bin(t, "keygen", "--pkcs11", ref, "--pub", filepath.Join(dir, "again.pub"))
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "already holds a key pair labelled")
	r = bin(t, "keygen", "--pkcs11", strings.Replace(ref, "targets-2027", "ed", 1), "--type", "ed25519")
	assert.Equal(t, 2, r.code, r.stderr)

	repo := filepath.Join(dir, "repo")
	binOK(t, "init", "--repo", repo, "--root-key", key("ed25519-1"), "--targets-key", ref,
		"--snapshot-key", key("ed25519-4"), "--timestamp-key", key("ed25519-5"))
	r = binOK(t, "inspect", "--repo", repo)
	assert.Regexp(t, `(?m)^targets\s+1\s+.*1 of 1\s+`+id[:12]+` \(ecdsa-sha2-nistp384\)$`, r.stdout)
	binOK(t, "add", "--repo", repo, "--hardware-id", "lock-hub", "--new-hardware-id", "--version", "1.0.0", "--security-version", "1",
		"--key", ref, "--key", onlineKeys, writeImage(t, dir, "fw", []byte("firmware")))
	vs, _ := newClient(t, repo).releases("lock-hub")
	assert.Equal(t, []string{"1.0.0"}, vs)

	// The public key file lets another machine list the key without the token.
	repo2 := filepath.Join(dir, "repo2")
	binOK(t, "init", "--repo", repo2, "--root-key", key("ed25519-1"), "--targets-key", key("ed25519-2")+","+pub,
		"--snapshot-key", key("ed25519-4"), "--timestamp-key", key("ed25519-5"))
	assert.Contains(t, binOK(t, "inspect", "--repo", repo2).stdout, id[:12])
}
