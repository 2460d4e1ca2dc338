package manifest

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func testEnvelope() *KeyEnvelope {
	return &KeyEnvelope{Target: "a/1.0.0/fw.bin", Version: MustParseVersion("1.0.0"), Recipients: testEncryption().Recipients}
}

func TestKeyEnvelopeRoundTrip(t *testing.T) {
	data, err := MarshalKeyEnvelope(testEnvelope())
	require.NoError(t, err)
	got, err := ParseKeyEnvelope(data)
	require.NoError(t, err)
	assert.Equal(t, testEnvelope(), got)

	// A release whose recipients are all in envelopes.
	enc := testEncryption()
	enc.Recipients, enc.Envelopes = nil, []string{"a/1.0.0/keys/eu.json", "a/1.0.0/keys/us.json"}
	fw := Firmware{Version: MustParseVersion("1.0.0"), SecurityVersion: 1, HardwareIDs: []string{"a"}, Encryption: enc}
	var tf TargetFile
	require.NoError(t, SetFirmware(&tf, fw))
	back, err := FirmwareOf(&tf)
	require.NoError(t, err)
	assert.Equal(t, enc, back.Encryption)
}

func TestKeyEnvelopeRefusals(t *testing.T) {
	good, err := MarshalKeyEnvelope(testEnvelope())
	require.NoError(t, err)
	swap := func(from, to string) []byte { return bytes.Replace(good, []byte(from), []byte(to), 1) }
	tests := []struct {
		name  string
		data  []byte
		field string
		rule  Rule
	}{
		{"format 2", swap(`"otaseal_key_envelope":1`, `"otaseal_key_envelope":2`), EnvelopeField, RuleUnknownAlgorithm},
		{"no format", swap(`"otaseal_key_envelope":1,`, ``), EnvelopeField, RuleMissingField},
		{"bad version", swap(`"version":"1.0.0"`, `"version":"1.0"`), "version", RuleMalformedVersion},
		{"unknown field", swap(`"target"`, `"label":"x","target"`), "label", RuleUnknownField},
		{"no recipients", swap(string(good[bytes.Index(good, []byte(`"recipients":`)):bytes.Index(good, []byte(`,"target"`))]), `"recipients":[]`), "recipients", RuleMalformedEncryption},
		{"unknown kem", swap(`"kem":"x25519"`, `"kem":"frodo"`), "recipients[1].kem", RuleUnknownAlgorithm},
		{"empty target", swap(`"target":"a/1.0.0/fw.bin"`, `"target":""`), "target", RuleInvalidText},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseKeyEnvelope(tc.data)
			assertRule(t, err, tc.field, tc.rule)
		})
	}
	_, err = ParseKeyEnvelope([]byte(`{"otaseal_key_envelope":`))
	assert.ErrorIs(t, err, ErrMalformed)
	_, err = ParseKeyEnvelope(make([]byte, MaxEnvelopeSize+1))
	assert.ErrorIs(t, err, ErrTooLarge)

	fw := func(v string) string { return firmwareJSON("encryption", encryptionWire("envelopes", v)) }
	for _, tc := range []struct {
		name, custom, field string
		rule                Rule
	}{
		{"empty envelopes", fw(`[]`), "encryption.envelopes", RuleMalformedEncryption},
		{"envelope twice", fw(`["a/k.json","a/k.json"]`), "encryption.envelopes", RuleMalformedEncryption},
		{"envelope path empty", fw(`[""]`), "encryption.envelopes", RuleInvalidText},
		{"envelopes not list", fw(`"a/k.json"`), "encryption.envelopes", RuleWrongJSONType},
		{"delta with envelopes", deltaJSON("encryption", `{"cipher":"aes-256-gcm","chunk_size":64,"plaintext":{"length":1,"sha256":"`+hexOf(sumNew)+`"},"envelopes":["k"]}`), "encryption.recipients", RuleMalformedEncryption},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCustom([]byte(tc.custom))
			assertRule(t, err, tc.field, tc.rule)
		})
	}
	// Envelopes alone are enough for a release.
	e, err := ParseCustom([]byte(firmwareJSON("encryption", strings.Replace(encryptionWire("recipients", ""), "{", `{"envelopes":["a/k.json"],`, 1))))
	require.NoError(t, err)
	assert.Equal(t, []string{"a/k.json"}, e.Firmware.Encryption.Envelopes)
}

// FuzzKeyEnvelope: no panic, every refusal classified, what is accepted
// round-trips.
func FuzzKeyEnvelope(f *testing.F) {
	good, err := MarshalKeyEnvelope(testEnvelope())
	require.NoError(f, err)
	f.Add(good)
	f.Add(bytes.Replace(good, []byte(`"otaseal_key_envelope":1`), []byte(`"otaseal_key_envelope":1.0`), 1))
	f.Add([]byte(`{"otaseal_key_envelope":1,"target":"t","version":"1.0.0","recipients":[{}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseKeyEnvelope(data)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("unclassified: %v", err)
			}
			return
		}
		out, err := MarshalKeyEnvelope(k)
		require.NoError(t, err)
		again, err := ParseKeyEnvelope(out)
		require.NoError(t, err)
		assert.Equal(t, k, again)
	})
}
