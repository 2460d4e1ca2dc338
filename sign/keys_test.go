package sign

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/otaseal/otaseal/manifest"
)

func TestLoadPEMSigner(t *testing.T) {
	t.Setenv("OTASEAL_TEST_PASS", "test-passphrase")
	t.Setenv("OTASEAL_TEST_WRONG", "wrong")
	tests := []struct {
		file       string
		pass       PassphraseFunc
		wantScheme string
		wantErr    error
	}{
		{file: "ed25519", wantScheme: SchemeEd25519},
		{file: "p256", wantScheme: SchemeECDSAP256},
		{file: "p256-sec1", wantScheme: SchemeECDSAP256},
		{file: "p384", wantScheme: SchemeECDSAP384},
		{file: "rsa2048", wantScheme: SchemeRSAPSS},
		{file: "rsa2048-pkcs1", wantScheme: SchemeRSAPSS},
		{file: "p256-enc-pkcs8", pass: PassphraseFromEnv("OTASEAL_TEST_PASS"), wantScheme: SchemeECDSAP256},
		{file: "p256-enc-legacy", pass: PassphraseFromEnv("OTASEAL_TEST_PASS"), wantScheme: SchemeECDSAP256},
		{file: "p256-enc-pkcs8", pass: nil, wantErr: ErrPassphrase},
		{file: "p256-enc-pkcs8", pass: PassphraseFromEnv("OTASEAL_TEST_UNSET"), wantErr: ErrPassphrase},
		{file: "p256-enc-pkcs8", pass: PassphraseFromEnv("OTASEAL_TEST_WRONG"), wantErr: ErrKeyFile},
		{file: "p256-enc-legacy", pass: PassphraseFromEnv("OTASEAL_TEST_WRONG"), wantErr: ErrKeyFile},
		{file: "rsa1024", wantErr: ErrWeakKey},
		{file: "p521", wantErr: ErrUnsupportedKey},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			ctx := context.Background()
			s, err := LoadPEMSigner(ctx, readTestFile(t, "keys/"+tt.file+".pem"), tt.pass)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantScheme, s.Scheme())
			// The signature must verify with go-tuf, the way clients check
			// it, not only with our own verifier.
			assertGoTUFVerifies(t, s)
		})
	}
}

// assertGoTUFVerifies signs a targets document with s through this package
// and checks it with go-tuf's VerifyDelegate from a root listing s's key.
func assertGoTUFVerifies(t *testing.T, s *Signer) {
	t.Helper()
	ctx := context.Background()
	root := metadata.Root(testEpoch.Add(time.Hour))
	for _, role := range []string{manifest.RoleRoot, manifest.RoleTargets, manifest.RoleSnapshot, manifest.RoleTimestamp} {
		require.NoError(t, root.Signed.AddKey(s.Key(), role))
	}
	p, err := PolicyFromRoot(&root.Signed)
	require.NoError(t, err)
	targets := metadata.Targets(testEpoch.Add(time.Hour))
	rep, err := SignRole(ctx, p, manifest.RoleTargets, targets, []*Signer{s})
	require.NoError(t, err)
	assert.True(t, rep.Met)
	assert.Equal(t, []string{s.KeyID()}, rep.SignedBy)
	require.NoError(t, root.VerifyDelegate(manifest.RoleTargets, targets))

	// And flipping any byte of the signature breaks it.
	sig := targets.Signatures[0].Signature
	sig[len(sig)/2] ^= 1
	assert.Error(t, root.VerifyDelegate(manifest.RoleTargets, targets))
}

func TestKeyIDMatchesGoTUF(t *testing.T) {
	for _, name := range []string{"ed25519", "p256", "p384", "rsa2048"} {
		k := testSigner(t, name).Key()
		got, err := KeyID(k)
		require.NoError(t, err)
		want, err := copyKey(k).ID()
		require.NoError(t, err)
		assert.Equal(t, want, got, name)
		assert.Len(t, got, 64)
	}
}

func TestPublicKeyRoundTrip(t *testing.T) {
	for _, name := range []string{"ed25519", "p256", "p384", "rsa2048"} {
		k := testSigner(t, name).Key()
		pub, err := PublicKeyOf(k)
		require.NoError(t, err)
		back, err := KeyFromPublic(pub)
		require.NoError(t, err)
		assert.Equal(t, k.Scheme, back.Scheme)
		assert.Equal(t, k.Value.PublicKey, back.Value.PublicKey)
	}
	// A P-384 key claiming the P-256 scheme is refused: signer and verifier
	// would hash differently.
	k := testSigner(t, "p384").Key()
	k.Scheme = SchemeECDSAP256
	_, err := PublicKeyOf(k)
	assert.ErrorIs(t, err, ErrUnsupportedKey)
}

func privateKeyOf(t *testing.T, name string) crypto.PrivateKey {
	t.Helper()
	block, _ := pem.Decode(readTestFile(t, "keys/"+name+".pem"))
	priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	require.NoError(t, err)
	return priv
}

// go-tuf's Metadata.Sign (and a naive sigstore setup) signs P-384 with
// SHA-256 and RSA with PKCS#1 v1.5: the document signs but never verifies.
// NewSigner refuses such signers before they touch a document.
func TestNewSignerRefusesWrongScheme(t *testing.T) {
	ctx := context.Background()
	rsaKey := privateKeyOf(t, "rsa2048").(*rsa.PrivateKey)
	p384 := privateKeyOf(t, "p384").(*ecdsa.PrivateKey)

	pkcs1, err := signature.LoadRSAPKCS1v15Signer(rsaKey, crypto.SHA256)
	require.NoError(t, err)
	_, err = NewSigner(ctx, pkcs1)
	assert.ErrorIs(t, err, ErrSchemeMismatch)

	p384sha256, err := signature.LoadECDSASigner(p384, crypto.SHA256)
	require.NoError(t, err)
	_, err = NewSigner(ctx, p384sha256)
	assert.ErrorIs(t, err, ErrSchemeMismatch)

	// The same keys through the right constructor work and verify in go-tuf.
	for _, priv := range []crypto.PrivateKey{rsaKey, p384} {
		s, err := SignerFromPrivateKey(ctx, priv)
		require.NoError(t, err)
		assertGoTUFVerifies(t, s)
	}

	// The pitfall itself, so that a go-tuf fix shows up here: go-tuf's own
	// Sign with the P-384 key yields a document go-tuf cannot verify.
	root := metadata.Root(testEpoch.Add(time.Hour))
	s, err := SignerFromPrivateKey(ctx, p384)
	require.NoError(t, err)
	require.NoError(t, root.Signed.AddKey(s.Key(), manifest.RoleTargets))
	targets := metadata.Targets(testEpoch.Add(time.Hour))
	_, err = targets.Sign(p384sha256)
	require.NoError(t, err)
	assert.Error(t, root.VerifyDelegate(manifest.RoleTargets, targets), "go-tuf's Sign with a P-384 key now verifies; revisit this package's note")
}

func TestSignerFromCryptoSigner(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"ed25519", "p256", "p384", "rsa2048"} {
		t.Run(name, func(t *testing.T) {
			cs := privateKeyOf(t, name).(crypto.Signer)
			s, err := SignerFromCryptoSigner(ctx, cs, nil)
			require.NoError(t, err)
			assert.Equal(t, testSigner(t, name).KeyID(), s.KeyID())
			assertGoTUFVerifies(t, s)
		})
	}
}

func FuzzLoadPEMSigner(f *testing.F) {
	for _, name := range []string{"ed25519", "p256", "p256-sec1", "p384", "rsa2048-pkcs1", "p256-enc-pkcs8", "p256-enc-legacy", "p521"} {
		f.Add(readTestFile(f, "keys/"+name+".pem"))
	}
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\n\n-----END PRIVATE KEY-----\n"))
	pass := func() ([]byte, error) { return []byte("test-passphrase"), nil }
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := LoadPEMSigner(context.Background(), data, pass)
		if err != nil {
			return
		}
		// Whatever parsed must be a working signer of a known scheme.
		switch s.Scheme() {
		case SchemeEd25519, SchemeECDSAP256, SchemeECDSAP384, SchemeRSAPSS:
		default:
			t.Fatalf("unexpected scheme %q", s.Scheme())
		}
	})
}

// A Signer is itself a sigstore signature.Signer: wrapping it again keeps
// the key and scheme.
func TestSignerIsSigstoreSigner(t *testing.T) {
	s := testSigner(t, "p384")
	again, err := NewSigner(context.Background(), s)
	require.NoError(t, err)
	assert.Equal(t, s.KeyID(), again.KeyID())
	assertGoTUFVerifies(t, again)
}

// Signers are safe for concurrent use (run with -race).
func TestSignerConcurrentUse(t *testing.T) {
	for _, name := range []string{"ed25519", "p256", "rsa2048"} {
		s := testSigner(t, name)
		done := make(chan error, 4)
		for i := 0; i < 4; i++ {
			go func() {
				_, err := s.SignPayload(context.Background(), []byte("payload"))
				done <- err
			}()
		}
		for i := 0; i < 4; i++ {
			require.NoError(t, <-done)
		}
	}
}

func TestPassphraseFromTerminalWithoutTerminal(t *testing.T) {
	if f, err := os.OpenFile("/dev/tty", os.O_RDWR, 0); err == nil {
		f.Close()
		t.Skip("a terminal is attached; the prompt would block")
	}
	_, err := PassphraseFromTerminal("passphrase: ")()
	assert.ErrorIs(t, err, ErrPassphrase)
}
