package main

import (
	"context"
	"crypto/elliptic"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ThalesGroup/crypto11"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/sign"
)

// softHSM returns the SoftHSM2 module, or skips the test without it.
func softHSM(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		t.Skip("softhsm2-util not installed")
	}
	for _, m := range []string{
		"/usr/lib/softhsm/libsofthsm2.so",
		"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
		"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
		"/usr/local/lib/softhsm/libsofthsm2.so",
	} {
		if _, err := os.Stat(m); err == nil {
			return m
		}
	}
	t.Skip("libsofthsm2.so not found")
	return ""
}

// The online keys live in an HSM: the server re-signs through PKCS#11.
func TestRunPKCS11(t *testing.T) {
	module := softHSM(t)
	const token, pin = "updateserver-test", "4321"
	dir := t.TempDir()
	conf := filepath.Join(dir, "softhsm2.conf")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "tokens"), 0o700))
	require.NoError(t, os.WriteFile(conf, fmt.Appendf(nil, "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", filepath.Join(dir, "tokens")), 0o600))
	t.Setenv("SOFTHSM2_CONF", conf)
	out, err := exec.Command("softhsm2-util", "--init-token", "--free", "--label", token, "--pin", pin, "--so-pin", "so-"+pin).CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Setenv("UPDATESERVER_TEST_PIN", pin)

	c11, err := crypto11.Configure(&crypto11.Config{Path: module, TokenLabel: token, Pin: pin})
	require.NoError(t, err)
	_, err = c11.GenerateECDSAKeyPairWithLabel([]byte{1}, []byte("snapshot"), elliptic.P256())
	require.NoError(t, err)
	_, err = c11.GenerateECDSAKeyPairWithLabel([]byte{2}, []byte("timestamp"), elliptic.P256())
	require.NoError(t, err)
	require.NoError(t, c11.Close())

	ctx := context.Background()
	open := func(label string) *sign.PKCS11Signer {
		s, err := sign.OpenPKCS11(ctx, sign.PKCS11Config{ModulePath: module, TokenLabel: token, KeyLabel: label, PINEnv: "UPDATESERVER_TEST_PIN"})
		require.NoError(t, err)
		return s
	}
	snap, ts := open("snapshot"), open("timestamp")
	// Published 50 minutes ago with a one-hour timestamp: the server
	// re-signs at start.
	repo := newRepoWith(t, time.Now().Add(-50*time.Minute), 1<<10, time.Hour, snap.Signer, ts.Signer)
	require.NoError(t, snap.Close())
	require.NoError(t, ts.Close())

	p := startRun(t, 1, "--repo", repo.dir, "--http", "127.0.0.1:0",
		"--pkcs11-module", module, "--pkcs11-token", token, "--pkcs11-pin-env", "UPDATESERVER_TEST_PIN",
		"--snapshot-key-label", "snapshot", "--timestamp-key-label", "timestamp", "--timestamp-expiry", "1h")
	code, h := getHealth(t, "http://"+p.addrs["http"]+"/healthz")
	assert.Equal(t, http.StatusOK, code)
	assert.EqualValues(t, 2, h.TimestampVersion, "not re-signed through the HSM")
	refreshAndDownload(t, "http://"+p.addrs["http"], nil, repo, newClock(time.Now().Add(20*time.Minute)))
}
