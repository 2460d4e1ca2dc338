//go:build cgo

package sign

import (
	"context"
	"crypto/elliptic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/otaseal/otaseal/internal/softhsm"
	"github.com/otaseal/otaseal/manifest"
)

func TestPKCS11Signer(t *testing.T) {
	const pin = "1234"
	module := softhsm.NewToken(t, "otaseal-test", pin)
	t.Setenv("OTASEAL_TEST_HSM_PIN", pin)
	ctx := context.Background()

	// Generate the keys inside the token; only public keys ever leave it.
	softhsm.GenerateKeys(t, module, "otaseal-test", pin,
		softhsm.Key{Label: "targets-p256", Curve: elliptic.P256()},
		softhsm.Key{Label: "targets-p384", Curve: elliptic.P384()},
		softhsm.Key{Label: "targets-rsa", RSABits: 2048})

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

	_, err := OpenPKCS11(ctx, PKCS11Config{ModulePath: module, TokenLabel: "otaseal-test", KeyLabel: "no-such-key", PINEnv: "OTASEAL_TEST_HSM_PIN"})
	assert.Error(t, err)
	_, err = OpenPKCS11(ctx, PKCS11Config{ModulePath: module, TokenLabel: "otaseal-test", KeyLabel: "targets-p256", PINEnv: "OTASEAL_TEST_UNSET_PIN"})
	assert.ErrorIs(t, err, ErrPassphrase)
}

// Keys created inside the token by GeneratePKCS11Key sign through it; a
// label in use is never replaced.
func TestGeneratePKCS11Key(t *testing.T) {
	const pin = "5678"
	module := softhsm.NewToken(t, "otaseal-keygen", pin)
	t.Setenv("OTASEAL_TEST_HSM_PIN", pin)
	ctx := context.Background()
	cfg := func(label string) PKCS11Config {
		return PKCS11Config{ModulePath: module, TokenLabel: "otaseal-keygen", KeyLabel: label, PINEnv: "OTASEAL_TEST_HSM_PIN"}
	}
	for _, tc := range []struct {
		alg    KeyAlgorithm
		scheme string
	}{{KeyECDSAP256, SchemeECDSAP256}, {KeyECDSAP384, SchemeECDSAP384}, {KeyRSA, SchemeRSAPSS}} {
		t.Run(string(tc.alg), func(t *testing.T) {
			bits := 0
			if tc.alg == KeyRSA {
				bits = 2048
			}
			key, err := GeneratePKCS11Key(ctx, cfg(string(tc.alg)), tc.alg, bits)
			require.NoError(t, err)
			assert.Equal(t, tc.scheme, key.Scheme)
			s, err := OpenPKCS11(ctx, cfg(string(tc.alg)))
			require.NoError(t, err)
			defer s.Close()
			wantID, err := KeyID(key)
			require.NoError(t, err)
			assert.Equal(t, wantID, s.KeyID(), "the key generated is the key opened")

			_, err = GeneratePKCS11Key(ctx, cfg(string(tc.alg)), tc.alg, bits)
			assert.ErrorIs(t, err, ErrKeyExists)
			again, err := OpenPKCS11(ctx, cfg(string(tc.alg)))
			require.NoError(t, err)
			defer again.Close()
			assert.Equal(t, wantID, again.KeyID(), "the refused generation left the key alone")
		})
	}
	_, err := GeneratePKCS11Key(ctx, cfg("ed"), KeyEd25519, 0)
	assert.ErrorIs(t, err, ErrUnsupportedKey)
	_, err = GeneratePKCS11Key(ctx, PKCS11Config{ModulePath: module, TokenLabel: "otaseal-keygen", KeyLabel: "x", PINEnv: "OTASEAL_TEST_UNSET_PIN"}, KeyECDSAP256, 0)
	assert.ErrorIs(t, err, ErrPassphrase)
}
