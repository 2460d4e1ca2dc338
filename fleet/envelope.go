package fleet

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// signingContext is prefixed to a report's bytes before signing, so that
// a device key's signature over a report can never pass for a signature
// over anything else (a TUF document, another protocol's message).
const signingContext = "otaseal fleet report v1\x00"

// Envelope is a posted report: its bytes, the device that claims it, and
// the device's signature over them (none where mutual TLS authenticates
// the device). Its report is reachable only through Open or OpenUnsigned.
type Envelope struct {
	DeviceID  string
	payload   []byte
	signature []byte // empty: unsigned
}

type wireEnvelope struct {
	DeviceID  string `json:"device_id"`
	Payload   string `json:"payload"`
	Signature string `json:"signature,omitempty"`
}

// ErrSignature marks an envelope whose signature does not verify with the
// device's enrolled key, or that has none where one is needed.
var ErrSignature = errors.New("fleet: report signature")

// Seal encodes r and signs it with the device's key, which must be an
// ed25519 key (a file, a TPM or a secure element behind crypto.Signer).
func Seal(r *Report, key crypto.Signer) ([]byte, error) {
	if _, ok := key.Public().(ed25519.PublicKey); !ok {
		return nil, fmt.Errorf("fleet: device key is %T, want ed25519", key.Public())
	}
	payload, err := r.Marshal()
	if err != nil {
		return nil, err
	}
	sig, err := key.Sign(rand.Reader, signed(payload), crypto.Hash(0))
	if err != nil {
		return nil, fmt.Errorf("fleet: signing the report: %w", err)
	}
	return marshalEnvelope(r.DeviceID, payload, sig)
}

// SealUnsigned encodes r without a signature, for a server that
// authenticates devices by their TLS client certificate.
func SealUnsigned(r *Report) ([]byte, error) {
	payload, err := r.Marshal()
	if err != nil {
		return nil, err
	}
	return marshalEnvelope(r.DeviceID, payload, nil)
}

func signed(payload []byte) []byte {
	return append([]byte(signingContext), payload...)
}

func marshalEnvelope(device string, payload, sig []byte) ([]byte, error) {
	w := wireEnvelope{DeviceID: device, Payload: base64.StdEncoding.EncodeToString(payload)}
	if sig != nil {
		w.Signature = base64.StdEncoding.EncodeToString(sig)
	}
	b, err := json.Marshal(w)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxEnvelopeSize {
		return nil, fmt.Errorf("%w: envelope of %d bytes (limit %d)", ErrTooLarge, len(b), MaxEnvelopeSize)
	}
	return b, nil
}

// ParseEnvelope decodes a posted envelope without trusting it: the
// claimed device ID is checked for form only. It accepts only what Seal
// and SealUnsigned write.
func ParseEnvelope(b []byte) (*Envelope, error) {
	if len(b) > MaxEnvelopeSize {
		return nil, fmt.Errorf("%w: envelope of %d bytes (limit %d)", ErrTooLarge, len(b), MaxEnvelopeSize)
	}
	var w wireEnvelope
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("%w: envelope: %v", ErrMalformed, err)
	}
	if err := checkText("device_id", w.DeviceID, MaxIDLen, true); err != nil {
		return nil, err
	}
	payload, err := base64.StdEncoding.Strict().DecodeString(w.Payload)
	if err != nil || len(payload) == 0 {
		return nil, fmt.Errorf("%w: envelope payload is not base64", ErrMalformed)
	}
	var sig []byte
	if w.Signature != "" {
		if sig, err = base64.StdEncoding.Strict().DecodeString(w.Signature); err != nil || len(sig) != ed25519.SignatureSize {
			return nil, fmt.Errorf("%w: envelope signature is not a base64 ed25519 signature", ErrMalformed)
		}
	}
	again, err := marshalEnvelope(w.DeviceID, payload, sig)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(again, b) {
		return nil, fmt.Errorf("%w: envelope is not in its one encoding", ErrMalformed)
	}
	return &Envelope{DeviceID: w.DeviceID, payload: payload, signature: sig}, nil
}

// Signed reports whether the envelope carries a signature.
func (e *Envelope) Signed() bool { return len(e.signature) > 0 }

// Digest names the report's bytes (hex SHA-256): a device that resends a
// report it got no answer for sends the same digest, which the server
// answers as a duplicate rather than a replay.
func (e *Envelope) Digest() string {
	sum := sha256.Sum256(e.payload)
	return hex.EncodeToString(sum[:])
}

// Open verifies the signature with the device's enrolled key, then
// parses the report and checks that it is the envelope's device's.
func (e *Envelope) Open(pub ed25519.PublicKey) (*Report, error) {
	if len(pub) != ed25519.PublicKeySize {
		panic("fleet: Open with a public key of the wrong length")
	}
	if !e.Signed() {
		return nil, fmt.Errorf("%w: report of %s is unsigned", ErrSignature, e.DeviceID)
	}
	if !ed25519.Verify(pub, signed(e.payload), e.signature) {
		return nil, fmt.Errorf("%w: does not verify with the key enrolled for %s", ErrSignature, e.DeviceID)
	}
	return e.parse()
}

// OpenUnsigned parses the report without checking a signature. Call it
// only when the channel authenticated the device (a verified TLS client
// certificate), and check that the certificate names e.DeviceID.
func (e *Envelope) OpenUnsigned() (*Report, error) {
	return e.parse()
}

func (e *Envelope) parse() (*Report, error) {
	r, err := ParseReport(e.payload)
	if err != nil {
		return nil, err
	}
	if r.DeviceID != e.DeviceID {
		return nil, fmt.Errorf("%w: envelope of %s holds a report of %s", ErrInvalid, e.DeviceID, clip(r.DeviceID))
	}
	return r, nil
}

// Payload returns the report's bytes as posted (to store them as
// evidence); they are not verified unless Open or OpenUnsigned succeeded.
func (e *Envelope) Payload() []byte { return bytes.Clone(e.payload) }
