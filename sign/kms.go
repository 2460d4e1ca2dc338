package sign

import (
	"context"
	"crypto"
	"fmt"

	"github.com/sigstore/sigstore/pkg/signature/kms"
	"github.com/sigstore/sigstore/pkg/signature/options"
)

// LoadKMSSigner returns a Signer for a cloud KMS key named by a sigstore
// KMS URI: "awskms://...", "gcpkms://...", "azurekms://...",
// "hashivault://...". The private key stays in the KMS.
//
// This package links no cloud SDK. A program enables a provider by
// importing it for its side effect, for example
//
//	import _ "github.com/sigstore/sigstore/pkg/signature/kms/aws"
//	import _ "github.com/sigstore/sigstore/pkg/signature/kms/gcp"
//	import _ "github.com/sigstore/sigstore/pkg/signature/kms/azure"
//	import _ "github.com/sigstore/sigstore/pkg/signature/kms/hashivault"
//
// (each is its own Go module at the sigstore version this module uses) and
// configures credentials the provider's usual way (environment, instance
// role). Without the import, loading fails with sigstore's
// ProviderNotFoundError.
//
// The digest is chosen from the key: SHA-384 for a P-384 key, SHA-256
// otherwise. As with every Signer, a probe signature must verify under the
// key's TUF scheme, so a KMS RSA key configured for PKCS#1 v1.5 is refused
// with ErrSchemeMismatch rather than used.
func LoadKMSSigner(ctx context.Context, uri string) (*Signer, error) {
	sv, err := kms.Get(ctx, uri, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("sign: KMS key: %w", err)
	}
	pub, err := sv.PublicKey(options.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("sign: KMS key: %w", err)
	}
	key, err := KeyFromPublic(pub)
	if err != nil {
		return nil, err
	}
	if h := hashOf(key.Scheme); h != crypto.SHA256 && h != crypto.Hash(0) {
		if sv, err = kms.Get(ctx, uri, h); err != nil {
			return nil, fmt.Errorf("sign: KMS key: %w", err)
		}
	}
	return NewSigner(ctx, sv)
}
