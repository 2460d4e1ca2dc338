package sign

import (
	"context"
	"testing"

	"github.com/sigstore/sigstore/pkg/signature/kms/fake"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The wiring of LoadKMSSigner, exercised with sigstore's in-process fake
// KMS provider ("fakekms://", registered by importing its package): no
// network, the same kms.Get path the cloud providers take.
func TestLoadKMSSigner(t *testing.T) {
	tests := []struct {
		key        string
		wantScheme string
		wantErr    error
	}{
		{key: "p256", wantScheme: SchemeECDSAP256},
		{key: "p384", wantScheme: SchemeECDSAP384},
		{key: "ed25519", wantScheme: SchemeEd25519},
		// The fake (like a KMS key set up for it) signs RSA with PKCS#1
		// v1.5: refused, never written into metadata.
		{key: "rsa2048", wantErr: ErrSchemeMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			ctx := context.WithValue(context.Background(), fake.KmsCtxKey{}, privateKeyOf(t, tt.key))
			s, err := LoadKMSSigner(ctx, fake.ReferenceScheme+"release-key")
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantScheme, s.Scheme())
			assert.Equal(t, testSigner(t, tt.key).KeyID(), s.KeyID())
			assertGoTUFVerifies(t, s)
		})
	}
	_, err := LoadKMSSigner(context.Background(), "nosuchkms://key")
	assert.Error(t, err)
}
