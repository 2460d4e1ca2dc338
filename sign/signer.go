package sign

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"io"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"

	"github.com/otaseal/otaseal/manifest"
)

// Signer is one signing key that knows its TUF key, keyid and scheme. It
// wraps a sigstore signature.Signer, so a PEM file, an HSM and a cloud KMS
// key are used the same way.
//
// Every signature a Signer makes is verified under its TUF scheme before it
// is returned: a signer that hashes with the wrong function or pads RSA the
// PKCS#1 v1.5 way produces an error here, never a document that no client
// can verify.
type Signer struct {
	s     signature.Signer
	key   *manifest.Key
	keyID string
}

// probeMessage is signed once when a Signer is made, so that a misconfigured
// signer (wrong hash for the curve, RSA PKCS#1 v1.5 instead of PSS) is
// refused before it touches any document.
var probeMessage = []byte("otaseal sign: scheme probe v1")

// NewSigner wraps s. It derives the TUF key from s's public key, then signs
// a probe message and verifies it under that key's scheme, returning
// ErrSchemeMismatch if they disagree. ctx bounds the probe (an HSM or KMS
// call).
func NewSigner(ctx context.Context, s signature.Signer) (*Signer, error) {
	pub, err := s.PublicKey(options.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("sign: reading signer's public key: %w", err)
	}
	key, err := KeyFromPublic(pub)
	if err != nil {
		return nil, err
	}
	id, err := KeyID(key)
	if err != nil {
		return nil, err
	}
	out := &Signer{s: s, key: key, keyID: id}
	if _, err := out.SignPayload(ctx, probeMessage); err != nil {
		return nil, err
	}
	return out, nil
}

// KeyID returns the TUF keyid of the signer's key.
func (s *Signer) KeyID() string { return s.keyID }

// Scheme returns the TUF signature scheme of the signer's key.
func (s *Signer) Scheme() string { return s.key.Scheme }

// Key returns a copy of the signer's TUF public key.
func (s *Signer) Key() *manifest.Key { return copyKey(s.key) }

// SignPayload signs payload (canonical JSON of a document's signed part)
// and verifies the signature before returning it.
func (s *Signer) SignPayload(ctx context.Context, payload []byte) (manifest.Signature, error) {
	sig, err := s.s.SignMessage(bytes.NewReader(payload), options.WithContext(ctx))
	if err != nil {
		return manifest.Signature{}, fmt.Errorf("sign: key %s: signing: %w", shortID(s.keyID), err)
	}
	if err := verifyWith(s.key, sig, payload); err != nil {
		return manifest.Signature{}, &KeyError{KeyID: s.keyID, Err: fmt.Errorf("%w (scheme %s)", ErrSchemeMismatch, s.key.Scheme)}
	}
	return manifest.Signature{KeyID: s.keyID, Signature: sig}, nil
}

// SignMessage makes Signer a sigstore signature.Signer itself, so it can be
// handed to any tool that takes one: it reads the message (at most
// maxPayload bytes), signs it and verifies the result like SignPayload.
func (s *Signer) SignMessage(message io.Reader, opts ...signature.SignOption) ([]byte, error) {
	msg, err := readLimited(message, maxPayload)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	for _, o := range opts {
		o.ApplyContext(&ctx)
	}
	sig, err := s.SignPayload(ctx, msg)
	if err != nil {
		return nil, err
	}
	return sig.Signature, nil
}

// PublicKey returns the signer's public key (signature.Signer).
func (s *Signer) PublicKey(...signature.PublicKeyOption) (crypto.PublicKey, error) {
	return PublicKeyOf(s.key)
}

var _ signature.Signer = (*Signer)(nil)

// SignerFromPrivateKey returns a Signer for an in-memory private key
// (ed25519, ECDSA P-256 or P-384, RSA of at least MinRSABits bits), with the
// hash and padding its TUF scheme requires.
func SignerFromPrivateKey(ctx context.Context, priv crypto.PrivateKey) (*Signer, error) {
	var (
		s   signature.Signer
		err error
	)
	switch k := priv.(type) {
	case ed25519.PrivateKey:
		s, err = signature.LoadED25519Signer(k)
	case *ed25519.PrivateKey:
		s, err = signature.LoadED25519Signer(*k)
	case *ecdsa.PrivateKey:
		pk, kerr := KeyFromPublic(&k.PublicKey)
		if kerr != nil {
			return nil, kerr
		}
		s, err = signature.LoadECDSASigner(k, hashOf(pk.Scheme))
	case *rsa.PrivateKey:
		if k.N.BitLen() < MinRSABits {
			return nil, fmt.Errorf("%w: RSA key of %d bits (minimum %d)", ErrWeakKey, k.N.BitLen(), MinRSABits)
		}
		// Not sigstore's RSAPSSSigner: it writes into its shared
		// PSSOptions on every call, a data race for a Signer used from
		// several goroutines.
		return SignerFromCryptoSigner(ctx, k, nil)
	default:
		return nil, fmt.Errorf("%w: %T", ErrUnsupportedKey, priv)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedKey, err)
	}
	return NewSigner(ctx, s)
}

// SignerFromCryptoSigner returns a Signer for a crypto.Signer whose private
// key lives elsewhere (an HSM through PKCS#11, a TPM, an agent). It hashes
// the payload itself with the scheme's hash and passes only the digest (or,
// for ed25519, the message) to cs, so the private key never leaves cs.
// random is the entropy source for ECDSA and RSA-PSS; nil means
// crypto/rand.
func SignerFromCryptoSigner(ctx context.Context, cs crypto.Signer, random io.Reader) (*Signer, error) {
	if random == nil {
		random = rand.Reader
	}
	key, err := KeyFromPublic(cs.Public())
	if err != nil {
		return nil, err
	}
	return NewSigner(ctx, &cryptoSigner{cs: cs, scheme: key.Scheme, rand: random})
}

// cryptoSigner adapts a crypto.Signer to sigstore's signature.Signer.
type cryptoSigner struct {
	cs     crypto.Signer
	scheme string
	rand   io.Reader
}

func (c *cryptoSigner) PublicKey(...signature.PublicKeyOption) (crypto.PublicKey, error) {
	return c.cs.Public(), nil
}

func (c *cryptoSigner) SignMessage(message io.Reader, _ ...signature.SignOption) ([]byte, error) {
	h := hashOf(c.scheme)
	if h == crypto.Hash(0) { // ed25519 signs the message itself
		msg, err := io.ReadAll(io.LimitReader(message, maxPayload+1))
		if err != nil {
			return nil, err
		}
		if len(msg) > maxPayload {
			return nil, fmt.Errorf("%w: payload over %d bytes", ErrTooLarge, maxPayload)
		}
		return c.cs.Sign(c.rand, msg, crypto.Hash(0))
	}
	hh := h.New()
	if _, err := io.Copy(hh, message); err != nil {
		return nil, err
	}
	var opts crypto.SignerOpts = h
	if c.scheme == SchemeRSAPSS {
		opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: h}
	}
	return c.cs.Sign(c.rand, hh.Sum(nil), opts)
}

// maxPayload bounds a document this package signs in memory (canonical JSON
// of one role). Catalogues bigger than this belong in hash-bin delegations.
const maxPayload = 64 << 20
