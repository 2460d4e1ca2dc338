package encrypt

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/mlkem"
	"crypto/rand"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWrapRoundTrip(t *testing.T) {
	for _, kem := range []KEM{MLKEM768X25519, X25519} {
		t.Run(kem.String(), func(t *testing.T) {
			k, err := GenerateKey(kem)
			require.NoError(t, err)
			key, err := NewContentKey(nil)
			require.NoError(t, err)
			w, err := Wrap(k.Public(), key, "acme-gw/2.4.1/firmware.bin", "2.4.1")
			require.NoError(t, err)
			assert.Len(t, w, kem.WrappedSize())
			got, err := k.Unwrap(w, "acme-gw/2.4.1/firmware.bin", "2.4.1")
			require.NoError(t, err)
			assert.Equal(t, key, got)

			// Moved to another release, path or version: refused.
			for _, tv := range [][2]string{{"acme-gw/2.4.2/firmware.bin", "2.4.1"}, {"acme-gw/2.4.1/firmware.bin", "2.4.2"}, {"acme-gw/2.4.1/firmware.bi", "n2.4.1"}} {
				_, err := k.Unwrap(w, tv[0], tv[1])
				assert.ErrorIs(t, err, ErrUnwrap, "%v", tv)
			}
			// Another key, a flipped bit, a short wrap: refused.
			other, err := GenerateKey(kem)
			require.NoError(t, err)
			_, err = other.Unwrap(w, "acme-gw/2.4.1/firmware.bin", "2.4.1")
			assert.ErrorIs(t, err, ErrUnwrap)
			for i := 0; i < len(w); i += 1 + len(w)/64 {
				bad := bytes.Clone(w)
				bad[i] ^= 1
				_, err := k.Unwrap(bad, "acme-gw/2.4.1/firmware.bin", "2.4.1")
				assert.ErrorIs(t, err, ErrUnwrap, "byte %d", i)
			}
			_, err = k.Unwrap(w[:len(w)-1], "acme-gw/2.4.1/firmware.bin", "2.4.1")
			assert.ErrorIs(t, err, ErrUnwrap)
		})
	}
}

func TestKeyFiles(t *testing.T) {
	for _, kem := range []KEM{MLKEM768X25519, X25519} {
		k, err := GenerateKey(kem)
		require.NoError(t, err)
		priv, err := MarshalPrivateKey(k)
		require.NoError(t, err)
		k2, err := ParsePrivateKey(priv)
		require.NoError(t, err)
		assert.Equal(t, k.KeyID(), k2.KeyID())
		p2, err := ParsePublicKey(MarshalPublicKey(k.Public()))
		require.NoError(t, err)
		assert.Equal(t, k.KeyID(), p2.KeyID())
		assert.Equal(t, kem, p2.KEM())
		assert.Len(t, k.KeyID(), 64)

		_, err = ParsePublicKey(priv)
		assert.ErrorIs(t, err, ErrKey, "a private key file is no public key")
		_, err = ParsePrivateKey(MarshalPublicKey(k.Public()))
		assert.ErrorIs(t, err, ErrKey)
		_, err = ParsePublicKey([]byte("not pem"))
		assert.ErrorIs(t, err, ErrKey)
	}
	_, err := ParseKEM("kyber512")
	assert.ErrorIs(t, err, ErrUnknownAlgorithm)
}

// TestHardwareKey wraps keys built from crypto/ecdh and crypto/mlkem
// values, as a TPM or secure element driver would provide them.
func TestHardwareKey(t *testing.T) {
	dk, err := mlkem.GenerateKey768()
	require.NoError(t, err)
	xk, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	sk, err := hpke.NewHybridPrivateKey(dk, xk)
	require.NoError(t, err)
	k, err := NewPrivateKeyFromHPKE(sk)
	require.NoError(t, err)
	assert.Equal(t, MLKEM768X25519, k.Public().KEM())
	key := testKey(9)
	w, err := Wrap(k.Public(), key, "t", "1.0.0")
	require.NoError(t, err)
	got, err := k.Unwrap(w, "t", "1.0.0")
	require.NoError(t, err)
	assert.Equal(t, key, got)
}
