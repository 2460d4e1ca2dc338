//go:build cgo

package main

import (
	"context"
	"crypto/elliptic"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/internal/softhsm"
	"github.com/otaseal/otaseal/sign"
)

// The online keys live in an HSM: the server re-signs through PKCS#11.
func TestRunPKCS11(t *testing.T) {
	const token, pin = "updateserver-test", "4321"
	module := softhsm.NewToken(t, token, pin)
	t.Setenv("UPDATESERVER_TEST_PIN", pin)
	softhsm.GenerateKeys(t, module, token, pin,
		softhsm.Key{Label: "snapshot", Curve: elliptic.P256()},
		softhsm.Key{Label: "timestamp", Curve: elliptic.P256()})

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
