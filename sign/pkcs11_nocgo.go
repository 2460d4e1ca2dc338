//go:build !cgo

package sign

import (
	"context"
	"fmt"

	"github.com/otaseal/otaseal/manifest"
)

// PKCS11Config locates a signing key in a PKCS#11 token; see the cgo build.
type PKCS11Config struct {
	ModulePath string
	TokenLabel string
	KeyLabel   string
	PINEnv     string
}

// PKCS11Signer is unavailable without cgo: PKCS#11 modules are C
// libraries.
type PKCS11Signer struct {
	*Signer
}

// OpenPKCS11 reports that this build has no PKCS#11 support (it needs cgo).
func OpenPKCS11(ctx context.Context, cfg PKCS11Config) (*PKCS11Signer, error) {
	return nil, fmt.Errorf("%w: PKCS#11 needs a cgo build", ErrUnsupportedKey)
}

// Close does nothing.
func (p *PKCS11Signer) Close() error { return nil }

// GeneratePKCS11Key reports that this build has no PKCS#11 support (it
// needs cgo).
func GeneratePKCS11Key(ctx context.Context, cfg PKCS11Config, alg KeyAlgorithm, rsaBits int) (*manifest.Key, error) {
	return nil, fmt.Errorf("%w: PKCS#11 needs a cgo build", ErrUnsupportedKey)
}
