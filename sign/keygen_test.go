package sign

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGenerateKey(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		alg    string
		bits   int
		scheme string
	}{
		{"ed25519", 0, SchemeEd25519},
		{"ecdsa-p256", 0, SchemeECDSAP256},
		{"ecdsa-p384", 0, SchemeECDSAP384},
		{"rsa", 2048, SchemeRSAPSS},
	} {
		t.Run(tc.alg, func(t *testing.T) {
			alg, err := ParseKeyAlgorithm(tc.alg)
			require.NoError(t, err)
			priv, err := GenerateKey(alg, tc.bits)
			require.NoError(t, err)
			s, err := SignerFromPrivateKey(ctx, priv)
			require.NoError(t, err)
			assert.Equal(t, tc.scheme, s.Scheme())
			again, err := GenerateKey(alg, tc.bits)
			require.NoError(t, err)
			assert.NotEqual(t, priv.Public(), again.Public(), "fresh randomness each time")
		})
	}
	for _, tc := range []struct {
		alg  KeyAlgorithm
		bits int
		want error
	}{
		{KeyRSA, 1024, ErrWeakKey},
		{KeyRSA, 16384, ErrUnsupportedKey},
		{KeyEd25519, 2048, ErrUnsupportedKey},
		{"dsa", 0, ErrUnsupportedKey},
	} {
		_, err := GenerateKey(tc.alg, tc.bits)
		assert.ErrorIs(t, err, tc.want, "%s/%d", tc.alg, tc.bits)
	}
	_, err := ParseKeyAlgorithm("p256")
	assert.ErrorIs(t, err, ErrUnsupportedKey)
}
