package sign

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/otaseal/otaseal/manifest"
)

// TUF key types and signature schemes this package writes. ECDSA keys use
// the key type "ecdsa" with the curve named by the scheme, as go-tuf,
// python-tuf and tuf-js all read it.
const (
	KeyTypeEd25519 = "ed25519"
	KeyTypeECDSA   = "ecdsa"
	KeyTypeRSA     = "rsa"

	SchemeEd25519   = "ed25519"
	SchemeECDSAP256 = "ecdsa-sha2-nistp256"
	SchemeECDSAP384 = "ecdsa-sha2-nistp384"
	SchemeRSAPSS    = "rsassa-pss-sha256"
)

// MinRSABits is the smallest RSA modulus accepted for a signing key.
const MinRSABits = 2048

// KeyFromPublic returns the TUF key for pub with the scheme its curve or
// type calls for: ed25519, ecdsa-sha2-nistp256, ecdsa-sha2-nistp384 or
// rsassa-pss-sha256. Other curves and RSA keys under MinRSABits are refused
// (ErrUnsupportedKey, ErrWeakKey): a key nobody should trust is never
// written into a role.
func KeyFromPublic(pub crypto.PublicKey) (*manifest.Key, error) {
	k := &manifest.Key{}
	switch p := pub.(type) {
	case ed25519.PublicKey:
		if len(p) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: ed25519 key of %d bytes", ErrUnsupportedKey, len(p))
		}
		k.Type, k.Scheme = KeyTypeEd25519, SchemeEd25519
		k.Value.PublicKey = hex.EncodeToString(p)
		return k, nil
	case *ecdsa.PublicKey:
		switch p.Curve {
		case elliptic.P256():
			k.Scheme = SchemeECDSAP256
		case elliptic.P384():
			k.Scheme = SchemeECDSAP384
		default:
			return nil, fmt.Errorf("%w: ECDSA curve %s", ErrUnsupportedKey, p.Curve.Params().Name)
		}
		k.Type = KeyTypeECDSA
	case *rsa.PublicKey:
		if p.N.BitLen() < MinRSABits {
			return nil, fmt.Errorf("%w: RSA key of %d bits (minimum %d)", ErrWeakKey, p.N.BitLen(), MinRSABits)
		}
		k.Type, k.Scheme = KeyTypeRSA, SchemeRSAPSS
	default:
		return nil, fmt.Errorf("%w: %T", ErrUnsupportedKey, pub)
	}
	pemKey, err := cryptoutils.MarshalPublicKeyToPEM(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedKey, err)
	}
	k.Value.PublicKey = string(pemKey)
	return k, nil
}

// KeyID returns the TUF keyid of k: the hex SHA-256 of the canonical JSON
// of the key object as it appears in root or targets metadata, as the
// specification defines it. It does not use go-tuf's cached id, so a key
// modified after its id was first read still gets its true id.
func KeyID(k *manifest.Key) (string, error) {
	data, err := cjson.EncodeCanonical(k)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnsupportedKey, err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// PublicKeyOf returns the public key inside a TUF key and checks that the
// key type, scheme and key agree: an "ecdsa-sha2-nistp256" scheme on a
// P-384 key would make signers and verifiers hash differently.
func PublicKeyOf(k *manifest.Key) (crypto.PublicKey, error) {
	switch k.Type {
	case KeyTypeEd25519:
		if k.Scheme != SchemeEd25519 {
			return nil, fmt.Errorf("%w: ed25519 key with scheme %q", ErrUnsupportedKey, k.Scheme)
		}
		b, err := hex.DecodeString(k.Value.PublicKey)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: malformed ed25519 public key", ErrUnsupportedKey)
		}
		return ed25519.PublicKey(b), nil
	case KeyTypeECDSA, SchemeECDSAP256, KeyTypeRSA: // the type spellings go-tuf reads
	default:
		return nil, fmt.Errorf("%w: key type %q", ErrUnsupportedKey, k.Type)
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey([]byte(k.Value.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedKey, err)
	}
	want, err := KeyFromPublic(pub)
	if err != nil {
		return nil, err
	}
	if want.Scheme != k.Scheme || (k.Type != want.Type && k.Type != k.Scheme) {
		return nil, fmt.Errorf("%w: key type %q with scheme %q does not match the key", ErrUnsupportedKey, k.Type, k.Scheme)
	}
	return pub, nil
}

// hashOf returns the message digest a scheme signs over.
func hashOf(scheme string) crypto.Hash {
	switch scheme {
	case SchemeECDSAP384:
		return crypto.SHA384
	case SchemeEd25519:
		return crypto.Hash(0)
	}
	return crypto.SHA256
}

// VerifierOf returns a verifier for signatures made under k's scheme. It is
// the single place this package decides how a TUF signature is checked, and
// it agrees with go-tuf's VerifyDelegate for every scheme above.
func VerifierOf(k *manifest.Key) (signature.Verifier, error) {
	pub, err := PublicKeyOf(k)
	if err != nil {
		return nil, err
	}
	switch p := pub.(type) {
	case *rsa.PublicKey:
		return signature.LoadRSAPSSVerifier(p, crypto.SHA256, &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: rsa.PSSSaltLengthAuto})
	case *ecdsa.PublicKey:
		return signature.LoadECDSAVerifier(p, hashOf(k.Scheme))
	case ed25519.PublicKey:
		return signature.LoadED25519Verifier(p)
	}
	return nil, fmt.Errorf("%w: %T", ErrUnsupportedKey, pub)
}

// verifyWith reports whether sig is a valid signature of payload by k.
func verifyWith(k *manifest.Key, sig, payload []byte) error {
	v, err := VerifierOf(k)
	if err != nil {
		return err
	}
	if err := v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(payload)); err != nil {
		return ErrBadSignature
	}
	return nil
}

// samePublicKey compares two TUF keys by the public key they hold, so that
// one key listed under two spellings counts once.
func samePublicKey(a, b *manifest.Key) bool {
	pa, err1 := PublicKeyOf(a)
	pb, err2 := PublicKeyOf(b)
	if err1 != nil || err2 != nil {
		return false
	}
	da, err1 := x509.MarshalPKIXPublicKey(pa)
	db, err2 := x509.MarshalPKIXPublicKey(pb)
	return err1 == nil && err2 == nil && bytes.Equal(da, db)
}

// copyKey returns a fresh key value (go-tuf caches the keyid inside Key, so
// sharing pointers between documents is asking for surprises).
func copyKey(k *manifest.Key) *manifest.Key {
	return &manifest.Key{Type: k.Type, Scheme: k.Scheme, Value: metadata.KeyVal{PublicKey: k.Value.PublicKey}}
}
