package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"strings"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

// keyring loads signing keys named on the command line and closes the
// HSM sessions it opened.
type keyring struct {
	passEnv string // environment variable with the PEM passphrase, or ""
	closers []func() error
}

func (k *keyring) close() {
	for _, c := range k.closers {
		c()
	}
	k.closers = nil
}

func (k *keyring) passphrase() sign.PassphraseFunc {
	if k.passEnv == "" {
		return nil
	}
	return sign.PassphraseFromEnv(k.passEnv)
}

// signer loads the private key ref: a PEM file or a pkcs11: reference.
func (k *keyring) signer(ctx context.Context, ref string) (*sign.Signer, error) {
	if strings.HasPrefix(ref, "pkcs11:") {
		cfg, err := parsePKCS11(ref)
		if err != nil {
			return nil, err
		}
		s, err := sign.OpenPKCS11(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", ref, err)
		}
		k.closers = append(k.closers, s.Close)
		return s.Signer, nil
	}
	s, err := sign.LoadPEMSignerFile(ctx, ref, k.passphrase())
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", ref, err)
	}
	return s, nil
}

// signers loads every key of refs.
func (k *keyring) signers(ctx context.Context, refs []string) ([]*sign.Signer, error) {
	var out []*sign.Signer
	for _, ref := range refs {
		s, err := k.signer(ctx, ref)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// roleKeys resolves the key references of a new role (PEM files, public
// or private, or PKCS#11 keys) into its RoleKeys with threshold, and
// appends the signers among them to signers: a new role's first document
// is signed by those of its keys at hand.
func (k *keyring) roleKeys(ctx context.Context, refs []string, threshold int, signers []*sign.Signer) (sign.RoleKeys, []*sign.Signer, error) {
	rk := sign.RoleKeys{Threshold: threshold}
	for _, ref := range refs {
		key, signer, err := k.resolve(ctx, ref)
		if err != nil {
			return rk, signers, err
		}
		rk.Keys = append(rk.Keys, key)
		if signer != nil {
			signers = append(signers, signer)
		}
	}
	return rk, signers, nil
}

// resolve returns the TUF key of ref and, unless ref is a "PUBLIC KEY"
// PEM file, its signer. Public key files let the holders of offline keys
// hand over only their public halves.
func (k *keyring) resolve(ctx context.Context, ref string) (*manifest.Key, *sign.Signer, error) {
	if !strings.HasPrefix(ref, "pkcs11:") {
		data, err := os.ReadFile(ref)
		if err != nil {
			return nil, nil, err
		}
		if b, _ := pem.Decode(data); b != nil && b.Type == "PUBLIC KEY" {
			pub, err := x509.ParsePKIXPublicKey(b.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("key %s: %w", ref, err)
			}
			key, err := sign.KeyFromPublic(pub)
			if err != nil {
				return nil, nil, fmt.Errorf("key %s: %w", ref, err)
			}
			return key, nil, nil
		}
	}
	s, err := k.signer(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	return s.Key(), s, nil
}

// parsePKCS11 reads "pkcs11:module=LIB;token=T;key=LABEL;pin-env=VAR".
func parsePKCS11(ref string) (sign.PKCS11Config, error) {
	var cfg sign.PKCS11Config
	for _, part := range strings.Split(strings.TrimPrefix(ref, "pkcs11:"), ";") {
		name, value, ok := strings.Cut(part, "=")
		if !ok {
			return cfg, usageErr("pkcs11 reference %q: %q is not NAME=VALUE", ref, part)
		}
		switch name {
		case "module":
			cfg.ModulePath = value
		case "token":
			cfg.TokenLabel = value
		case "key":
			cfg.KeyLabel = value
		case "pin-env":
			cfg.PINEnv = value
		default:
			return cfg, usageErr("pkcs11 reference %q: unknown attribute %q (want module, token, key, pin-env)", ref, name)
		}
	}
	if cfg.ModulePath == "" || cfg.TokenLabel == "" || cfg.KeyLabel == "" || cfg.PINEnv == "" {
		return cfg, usageErr("pkcs11 reference %q needs module, token, key and pin-env", ref)
	}
	return cfg, nil
}

// shortID abbreviates a keyid for tables and progress lines.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
