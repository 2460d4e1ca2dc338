package encrypt

import (
	"crypto/hpke"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
)

// KEM is the key encapsulation of a recipient key, numbered as HPKE's KEM
// IDs.
type KEM uint16

const (
	// MLKEM768X25519 is the ML-KEM-768 + X25519 hybrid (X-Wing), the
	// default: secure while either half is.
	MLKEM768X25519 KEM = 0x647a
	// X25519 is DHKEM(X25519, HKDF-SHA256), for devices too small for
	// ML-KEM; a future quantum computer can open what it wraps.
	X25519 KEM = 0x0020
)

// String returns the wire name of k, as the metadata spells it.
func (k KEM) String() string {
	switch k {
	case MLKEM768X25519:
		return "mlkem768-x25519"
	case X25519:
		return "x25519"
	}
	return fmt.Sprintf("kem(%#04x)", uint16(k))
}

// ParseKEM reads a KEM's wire name.
func ParseKEM(name string) (KEM, error) {
	for _, k := range []KEM{MLKEM768X25519, X25519} {
		if k.String() == name {
			return k, nil
		}
	}
	return 0, fmt.Errorf("%w: KEM %q", ErrUnknownAlgorithm, name)
}

// WrappedSize is the length of a content key wrapped for a key of this
// KEM: the encapsulated key followed by the sealed content key and its
// tag. It is 0 for an unknown KEM.
func (k KEM) WrappedSize() int {
	switch k {
	case MLKEM768X25519:
		return 1120 + KeySize + TagSize
	case X25519:
		return 32 + KeySize + TagSize
	}
	return 0
}

func (k KEM) hpke() (hpke.KEM, error) {
	if k.WrappedSize() == 0 {
		return nil, fmt.Errorf("%w: KEM %v", ErrUnknownAlgorithm, k)
	}
	return hpke.NewKEM(uint16(k))
}

// ErrKey reports a malformed key or key file.
var ErrKey = errors.New("encrypt: malformed recipient key")

// PublicKey is a recipient's public key: a device group's or a device's.
type PublicKey struct {
	kem KEM
	pk  hpke.PublicKey
	id  string
}

// NewPublicKey reads the serialized public key of a KEM (RFC 9180's
// SerializePublicKey).
func NewPublicKey(kem KEM, b []byte) (*PublicKey, error) {
	k, err := kem.hpke()
	if err != nil {
		return nil, err
	}
	pk, err := k.NewPublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	return newPublicKey(kem, pk), nil
}

func newPublicKey(kem KEM, pk hpke.PublicKey) *PublicKey {
	return &PublicKey{kem: kem, pk: pk, id: keyID(kem, pk.Bytes())}
}

// KEM returns the key's KEM.
func (p *PublicKey) KEM() KEM { return p.kem }

// Bytes returns the serialized key.
func (p *PublicKey) Bytes() []byte { return p.pk.Bytes() }

// KeyID returns the key's ID as recipient entries name it: lowercase hex
// of a SHA-256 over the KEM and the key.
func (p *PublicKey) KeyID() string { return p.id }

func keyID(kem KEM, pub []byte) string {
	h := sha256.New()
	h.Write([]byte("otaseal recipient v1\x00"))
	h.Write(binary.BigEndian.AppendUint16(nil, uint16(kem)))
	h.Write(pub)
	return hex.EncodeToString(h.Sum(nil))
}

// PrivateKey is a recipient's private key. One read from a file holds the
// secret in memory; NewPrivateKeyFromHPKE wraps a key whose secret stays in
// a TPM or secure element.
type PrivateKey struct {
	kem KEM
	sk  hpke.PrivateKey
	pub *PublicKey
}

// GenerateKey makes a new recipient key pair.
func GenerateKey(kem KEM) (*PrivateKey, error) {
	k, err := kem.hpke()
	if err != nil {
		return nil, err
	}
	sk, err := k.GenerateKey()
	if err != nil {
		return nil, err
	}
	return NewPrivateKeyFromHPKE(sk)
}

// NewPrivateKey reads a serialized private key (RFC 9180's
// SerializePrivateKey; for mlkem768-x25519 the 32-byte seed).
func NewPrivateKey(kem KEM, b []byte) (*PrivateKey, error) {
	k, err := kem.hpke()
	if err != nil {
		return nil, err
	}
	sk, err := k.NewPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	return NewPrivateKeyFromHPKE(sk)
}

// NewPrivateKeyFromHPKE adapts an HPKE private key, such as one
// hpke.NewHybridPrivateKey or hpke.NewDHKEMPrivateKey builds over a
// hardware-backed crypto.Decapsulator and ecdh.KeyExchanger.
func NewPrivateKeyFromHPKE(sk hpke.PrivateKey) (*PrivateKey, error) {
	kem := KEM(sk.KEM().ID())
	if kem.WrappedSize() == 0 {
		return nil, fmt.Errorf("%w: KEM %v", ErrUnknownAlgorithm, kem)
	}
	return &PrivateKey{kem: kem, sk: sk, pub: newPublicKey(kem, sk.PublicKey())}, nil
}

// Public returns the public half.
func (k *PrivateKey) Public() *PublicKey { return k.pub }

// KeyID returns the ID of the public half.
func (k *PrivateKey) KeyID() string { return k.pub.id }

// PEM block types of key files.
const (
	publicPEMType  = "OTASEAL RECIPIENT PUBLIC KEY"
	privatePEMType = "OTASEAL RECIPIENT PRIVATE KEY"
	kemHeader      = "KEM"
)

// MarshalPublicKey encodes p as PEM, its KEM in a header.
func MarshalPublicKey(p *PublicKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: publicPEMType, Headers: map[string]string{kemHeader: p.kem.String()}, Bytes: p.Bytes()})
}

// MarshalPrivateKey encodes k as PEM. Keep the file 0600.
func MarshalPrivateKey(k *PrivateKey) ([]byte, error) {
	b, err := k.sk.Bytes()
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: privatePEMType, Headers: map[string]string{kemHeader: k.kem.String()}, Bytes: b}), nil
}

// ParsePublicKey reads a public key file written by MarshalPublicKey.
func ParsePublicKey(data []byte) (*PublicKey, error) {
	kem, b, err := readPEM(data, publicPEMType)
	if err != nil {
		return nil, err
	}
	return NewPublicKey(kem, b)
}

// ParsePrivateKey reads a private key file written by MarshalPrivateKey.
func ParsePrivateKey(data []byte) (*PrivateKey, error) {
	kem, b, err := readPEM(data, privatePEMType)
	if err != nil {
		return nil, err
	}
	return NewPrivateKey(kem, b)
}

func readPEM(data []byte, typ string) (KEM, []byte, error) {
	b, rest := pem.Decode(data)
	switch {
	case b == nil:
		return 0, nil, fmt.Errorf("%w: no PEM block", ErrKey)
	case b.Type != typ:
		return 0, nil, fmt.Errorf("%w: PEM block %q, want %q", ErrKey, b.Type, typ)
	case len(b.Headers) != 1:
		return 0, nil, fmt.Errorf("%w: want exactly the %s header", ErrKey, kemHeader)
	case len(rest) > 0 && len(pemTrim(rest)) > 0:
		return 0, nil, fmt.Errorf("%w: data after the PEM block", ErrKey)
	}
	kem, err := ParseKEM(b.Headers[kemHeader])
	if err != nil {
		return 0, nil, err
	}
	return kem, b.Bytes, nil
}

func pemTrim(b []byte) []byte {
	for len(b) > 0 && (b[0] == '\n' || b[0] == '\r' || b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}
