package encrypt

import (
	"crypto/hpke"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrUnwrap reports a wrapped key that does not open with this private key
// for this target and version: wrapped for another key, for another
// release, or altered.
var ErrUnwrap = errors.New("encrypt: wrapped key does not open for this key and release")

// Info returns the HPKE info string that binds a wrapped key to the
// release at target with version (see the package doc).
func Info(target, version string) []byte {
	if len(target) > math.MaxUint16 || len(version) > math.MaxUint16 {
		panic("encrypt: target or version longer than 65535 bytes")
	}
	b := []byte("otaseal key wrap v1\x00")
	b = binary.BigEndian.AppendUint16(b, uint16(len(target)))
	b = append(b, target...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(version)))
	return append(b, version...)
}

func suite() (hpke.KDF, hpke.AEAD) { return hpke.HKDFSHA256(), hpke.AES256GCM() }

// Wrap seals key for the recipient pub, bound to the release at target
// with version. The result is pub.KEM().WrappedSize() bytes.
func Wrap(pub *PublicKey, key ContentKey, target, version string) ([]byte, error) {
	kdf, aead := suite()
	return hpke.Seal(pub.pk, kdf, aead, Info(target, version), key[:])
}

// Unwrap opens a key that Wrap sealed for k's public key and the same
// target and version; ErrUnwrap otherwise.
func (k *PrivateKey) Unwrap(wrapped []byte, target, version string) (ContentKey, error) {
	var key ContentKey
	if len(wrapped) != k.kem.WrappedSize() {
		return key, fmt.Errorf("%w: %d bytes, a %v wrap is %d", ErrUnwrap, len(wrapped), k.kem, k.kem.WrappedSize())
	}
	if len(target) > math.MaxUint16 || len(version) > math.MaxUint16 {
		return key, ErrUnwrap
	}
	kdf, aead := suite()
	pt, err := hpke.Open(k.sk, kdf, aead, Info(target, version), wrapped)
	if err != nil || len(pt) != KeySize {
		return key, ErrUnwrap
	}
	copy(key[:], pt)
	return key, nil
}
