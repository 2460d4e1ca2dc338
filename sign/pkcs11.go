//go:build cgo

package sign

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/ThalesGroup/crypto11"
)

// PKCS11Config locates a signing key in a PKCS#11 token (an HSM, a smart
// card, SoftHSM2 in tests).
type PKCS11Config struct {
	ModulePath string // the vendor's PKCS#11 library, e.g. SoftHSM2's libsofthsm2.so
	TokenLabel string
	KeyLabel   string // CKA_LABEL of the key pair
	// PINEnv names the environment variable holding the user PIN. The PIN
	// is never a field: it must not end up in config files or logs.
	PINEnv string
}

// PKCS11Signer is a Signer whose private key stays inside a PKCS#11
// token: only digests go in and signatures come out. Close it to end the
// token session.
type PKCS11Signer struct {
	*Signer
	ctx *crypto11.Context
}

// OpenPKCS11 logs in to the token and returns a Signer for the key pair
// labelled cfg.KeyLabel (ECDSA P-256/P-384 or RSA of at least MinRSABits;
// RSA signs with PSS through the token). As every Signer, it signs a probe
// first, so a token that cannot produce the key's TUF scheme is refused
// before it signs any document.
func OpenPKCS11(ctx context.Context, cfg PKCS11Config) (*PKCS11Signer, error) {
	if cfg.ModulePath == "" || cfg.TokenLabel == "" || cfg.KeyLabel == "" || cfg.PINEnv == "" {
		return nil, fmt.Errorf("sign: PKCS#11: module path, token label, key label and PIN variable are all required")
	}
	pin, ok := os.LookupEnv(cfg.PINEnv)
	if !ok || pin == "" {
		return nil, fmt.Errorf("%w: PKCS#11 PIN variable %s is not set", ErrPassphrase, cfg.PINEnv)
	}
	c11, err := crypto11.Configure(&crypto11.Config{Path: cfg.ModulePath, TokenLabel: cfg.TokenLabel, Pin: pin})
	if err != nil {
		return nil, fmt.Errorf("sign: PKCS#11 token %q: %w", cfg.TokenLabel, err)
	}
	kp, err := c11.FindKeyPair(nil, []byte(cfg.KeyLabel))
	if err == nil && kp == nil {
		err = fmt.Errorf("no key pair labelled %q", cfg.KeyLabel)
	}
	if err != nil {
		c11.Close()
		return nil, fmt.Errorf("sign: PKCS#11 token %q: %w", cfg.TokenLabel, err)
	}
	s, err := SignerFromCryptoSigner(ctx, kp, nil)
	if err != nil {
		c11.Close()
		return nil, err
	}
	return &PKCS11Signer{Signer: s, ctx: c11}, nil
}

// Close ends the token session.
func (p *PKCS11Signer) Close() error { return p.ctx.Close() }

var _ io.Closer = (*PKCS11Signer)(nil)
