//go:build cgo

package sign

import (
	"context"
	"crypto/elliptic"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ThalesGroup/crypto11"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/otaseal/otaseal/manifest"
)

func softHSMModule() string {
	for _, p := range []string{
		"/usr/lib/softhsm/libsofthsm2.so",
		"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
		"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
		"/usr/local/lib/softhsm/libsofthsm2.so",
		"/usr/lib64/pkcs11/libsofthsm2.so",
	} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// newSoftHSMToken makes a fresh SoftHSM2 token in a temp directory and
// returns the module path.
func newSoftHSMToken(t *testing.T, label, pin string) string {
	t.Helper()
	module := softHSMModule()
	_, lookErr := exec.LookPath("softhsm2-util")
	requireTool(t, "SoftHSM2 (softhsm2-util and libsofthsm2.so)", module != "" && lookErr == nil)
	dir := t.TempDir()
	conf := filepath.Join(dir, "softhsm2.conf")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "tokens"), 0o700))
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", filepath.Join(dir, "tokens"))), 0o600))
	t.Setenv("SOFTHSM2_CONF", conf)
	out, err := exec.Command("softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", "so-"+pin).CombinedOutput()
	require.NoError(t, err, string(out))
	return module
}

func TestPKCS11Signer(t *testing.T) {
	const pin = "1234"
	module := newSoftHSMToken(t, "otaseal-test", pin)
	t.Setenv("OTASEAL_TEST_HSM_PIN", pin)
	ctx := context.Background()

	// Generate the keys inside the token; only public keys ever leave it.
	c11, err := crypto11.Configure(&crypto11.Config{Path: module, TokenLabel: "otaseal-test", Pin: pin})
	require.NoError(t, err)
	_, err = c11.GenerateECDSAKeyPairWithLabel([]byte{1}, []byte("targets-p256"), elliptic.P256())
	require.NoError(t, err)
	_, err = c11.GenerateECDSAKeyPairWithLabel([]byte{2}, []byte("targets-p384"), elliptic.P384())
	require.NoError(t, err)
	_, err = c11.GenerateRSAKeyPairWithLabel([]byte{3}, []byte("targets-rsa"), 2048)
	require.NoError(t, err)
	require.NoError(t, c11.Close())

	for _, tc := range []struct{ label, scheme string }{
		{"targets-p256", SchemeECDSAP256},
		{"targets-p384", SchemeECDSAP384},
		{"targets-rsa", SchemeRSAPSS},
	} {
		t.Run(tc.label, func(t *testing.T) {
			s, err := OpenPKCS11(ctx, PKCS11Config{ModulePath: module, TokenLabel: "otaseal-test", KeyLabel: tc.label, PINEnv: "OTASEAL_TEST_HSM_PIN"})
			require.NoError(t, err)
			defer s.Close()
			assert.Equal(t, tc.scheme, s.Scheme())

			// Sign targets metadata through PKCS#11; go-tuf verifies it.
			root := metadata.Root(time.Now().Add(time.Hour))
			for _, role := range []string{manifest.RoleRoot, manifest.RoleTargets, manifest.RoleSnapshot, manifest.RoleTimestamp} {
				require.NoError(t, root.Signed.AddKey(s.Key(), role))
			}
			p, err := PolicyFromRoot(&root.Signed)
			require.NoError(t, err)
			targets := metadata.Targets(time.Now().Add(time.Hour))
			tf := &manifest.TargetFile{Length: 3, Hashes: manifest.Hashes{"sha256": make([]byte, 32)}, Path: "acme/1.0.0/fw.bin"}
			require.NoError(t, manifest.SetFirmware(tf, firmware("1.0.0", 1)))
			targets.Signed.Targets[tf.Path] = tf
			rep, err := SignRole(ctx, p, manifest.RoleTargets, targets, []*Signer{s.Signer})
			require.NoError(t, err)
			assert.True(t, rep.Met)
			require.NoError(t, root.VerifyDelegate(manifest.RoleTargets, targets))
		})
	}

	_, err = OpenPKCS11(ctx, PKCS11Config{ModulePath: module, TokenLabel: "otaseal-test", KeyLabel: "no-such-key", PINEnv: "OTASEAL_TEST_HSM_PIN"})
	assert.Error(t, err)
	_, err = OpenPKCS11(ctx, PKCS11Config{ModulePath: module, TokenLabel: "otaseal-test", KeyLabel: "targets-p256", PINEnv: "OTASEAL_TEST_UNSET_PIN"})
	assert.ErrorIs(t, err, ErrPassphrase)
}
