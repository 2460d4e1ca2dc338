package sign

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
)

// KeyAlgorithm names a kind of signing key to generate. Each maps to one
// TUF scheme (KeyFromPublic).
type KeyAlgorithm string

const (
	KeyEd25519   KeyAlgorithm = "ed25519"    // scheme ed25519
	KeyECDSAP256 KeyAlgorithm = "ecdsa-p256" // scheme ecdsa-sha2-nistp256
	KeyECDSAP384 KeyAlgorithm = "ecdsa-p384" // scheme ecdsa-sha2-nistp384
	KeyRSA       KeyAlgorithm = "rsa"        // scheme rsassa-pss-sha256
)

// DefaultRSABits is the modulus size GenerateKey uses for KeyRSA when
// given none.
const DefaultRSABits = 3072

// ErrKeyExists reports that a key to be created already exists: a key
// is never replaced, since whatever it signed would stop verifying.
var ErrKeyExists = errors.New("sign: key already exists")

// ParseKeyAlgorithm reads an algorithm name as KeyAlgorithm spells it.
func ParseKeyAlgorithm(s string) (KeyAlgorithm, error) {
	switch a := KeyAlgorithm(s); a {
	case KeyEd25519, KeyECDSAP256, KeyECDSAP384, KeyRSA:
		return a, nil
	}
	return "", fmt.Errorf("%w: %q (want ed25519, ecdsa-p256, ecdsa-p384 or rsa)", ErrUnsupportedKey, s)
}

// GenerateKey returns a new private key of alg from crypto/rand. rsaBits
// is the RSA modulus size (0: DefaultRSABits; below MinRSABits is
// ErrWeakKey) and must be 0 for other algorithms.
func GenerateKey(alg KeyAlgorithm, rsaBits int) (crypto.Signer, error) {
	if err := checkRSABits(alg, rsaBits); err != nil {
		return nil, err
	}
	switch alg {
	case KeyEd25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	case KeyECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case KeyRSA:
		return rsa.GenerateKey(rand.Reader, orDefaultBits(rsaBits))
	}
	return nil, fmt.Errorf("%w: %q", ErrUnsupportedKey, alg)
}

func orDefaultBits(bits int) int {
	if bits == 0 {
		return DefaultRSABits
	}
	return bits
}

func checkRSABits(alg KeyAlgorithm, bits int) error {
	switch {
	case alg != KeyRSA && bits != 0:
		return fmt.Errorf("%w: a key size is only for rsa keys, not %s", ErrUnsupportedKey, alg)
	case alg == KeyRSA && bits != 0 && bits < MinRSABits:
		return fmt.Errorf("%w: RSA key of %d bits (minimum %d)", ErrWeakKey, bits, MinRSABits)
	case alg == KeyRSA && bits > 8192:
		return fmt.Errorf("%w: RSA key of %d bits (at most 8192)", ErrUnsupportedKey, bits)
	}
	return nil
}
