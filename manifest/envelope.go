package manifest

import (
	"encoding/json"
	"fmt"
)

// Limits of key envelopes.
const (
	// MaxEnvelopes bounds the envelope targets one release names.
	MaxEnvelopes = 64
	// MaxEnvelopeSize bounds an envelope target's bytes, checked against
	// its signed length before a device downloads it: about 4900 hybrid
	// or 38000 x25519 recipients.
	MaxEnvelopeSize = 8 << 20
	// MaxEnvelopeRecipients bounds the recipients of one envelope.
	MaxEnvelopeRecipients = 65536
	// EnvelopeField marks a key envelope's JSON object, and holds its
	// format version.
	EnvelopeField = "otaseal_key_envelope"
)

// KeyEnvelope is the content of a key-envelope target: more recipients of
// one release than its targets entry can carry, for fleets that wrap the
// content key per device. The envelope is a plain TUF target (no otaseal
// object, so every client, old devices included, treats it as an opaque
// file); its signed hashes make its content as trustworthy as the entry
// that names it in Encryption.Envelopes. Target and Version must be the
// release's: a device refuses an envelope of another release.
type KeyEnvelope struct {
	Target     string // the release's target path
	Version    Version
	Recipients []Recipient // 1..MaxEnvelopeRecipients, unique key IDs
}

// Validate checks the envelope as ParseKeyEnvelope does.
func (k *KeyEnvelope) Validate() error {
	if err := checkText("target", k.Target, MaxTargetPathLen, false); err != nil {
		return err
	}
	if k.Version.IsZero() {
		return fieldError(fieldVersion, RuleMalformedVersion, "", "zero Version")
	}
	if len(k.Recipients) == 0 {
		return fieldError("recipients", RuleMalformedEncryption, "", "an envelope holds at least one recipient")
	}
	if len(k.Recipients) > MaxEnvelopeRecipients {
		return fieldError("recipients", RuleTooManyItems, "", fmt.Sprintf("%d (limit %d)", len(k.Recipients), MaxEnvelopeRecipients))
	}
	return checkRecipients("recipients", k.Recipients)
}

// ParseKeyEnvelope reads a key envelope from the bytes of its target,
// which the caller has checked against the target's signed length and
// hashes. It is as strict as ParseCustom and never panics.
func ParseKeyEnvelope(data []byte) (*KeyEnvelope, error) {
	if len(data) > MaxEnvelopeSize {
		return nil, fmt.Errorf("%w: key envelope of %d bytes (limit %d)", ErrTooLarge, len(data), MaxEnvelopeSize)
	}
	m, err := readObject(data, "envelope", 1)
	if err != nil {
		return nil, err
	}
	if err := onlyFields(m, "", EnvelopeField, "target", fieldVersion, "recipients"); err != nil {
		return nil, err
	}
	if err := requireFields(m, "", EnvelopeField, "target", fieldVersion, "recipients"); err != nil {
		return nil, err
	}
	if string(m[EnvelopeField]) != "1" {
		return nil, fieldError(EnvelopeField, RuleUnknownAlgorithm, string(m[EnvelopeField]), "want envelope format 1")
	}
	var k KeyEnvelope
	if k.Target, err = readString("target", m["target"]); err != nil {
		return nil, err
	}
	s, err := readString(fieldVersion, m[fieldVersion])
	if err != nil {
		return nil, err
	}
	if k.Version, err = parseVersion(s); err != nil {
		return nil, fieldError(fieldVersion, RuleMalformedVersion, s, err.Error())
	}
	if k.Recipients, err = parseRecipientList("recipients", m["recipients"], MaxEnvelopeRecipients, 2); err != nil {
		return nil, err
	}
	if err := k.Validate(); err != nil {
		return nil, err
	}
	return &k, nil
}

// MarshalKeyEnvelope encodes k in its one spelling (keys sorted, no
// spaces), after Validate.
func MarshalKeyEnvelope(k *KeyEnvelope) ([]byte, error) {
	if err := k.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{
		EnvelopeField: 1,
		"target":      k.Target,
		fieldVersion:  k.Version.String(),
		"recipients":  recipientsJSON(k.Recipients),
	})
}
