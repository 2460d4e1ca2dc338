//go:build cgo

package softhsm

import (
	"crypto/elliptic"
	"testing"

	"github.com/ThalesGroup/crypto11"
)

// Key describes a key pair to generate inside a token: an ECDSA key on
// Curve, or an RSA key of RSABits when Curve is nil.
type Key struct {
	Label   string
	Curve   elliptic.Curve
	RSABits int
}

// GenerateKeys creates keys inside the token; only their public halves can
// ever leave it.
func GenerateKeys(t testing.TB, module, token, pin string, keys ...Key) {
	t.Helper()
	c, err := crypto11.Configure(&crypto11.Config{Path: module, TokenLabel: token, Pin: pin})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i, k := range keys {
		id := []byte{byte(i + 1)}
		if k.Curve != nil {
			_, err = c.GenerateECDSAKeyPairWithLabel(id, []byte(k.Label), k.Curve)
		} else {
			_, err = c.GenerateRSAKeyPairWithLabel(id, []byte(k.Label), k.RSABits)
		}
		if err != nil {
			t.Fatalf("generating %s: %v", k.Label, err)
		}
	}
}
