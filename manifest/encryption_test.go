package manifest

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	testKeyID  = strings.Repeat("ab", 32)
	testKeyID2 = strings.Repeat("cd", 32)
)

func testEncryption() *Encryption {
	return &Encryption{
		Cipher: CipherAES256GCM, ChunkSize: 65536, PlaintextLength: 10, PlaintextSHA256: sumNew[:],
		Recipients: []Recipient{
			{KeyID: testKeyID, KEM: KEMMLKEM768X25519, WrappedKey: bytes.Repeat([]byte{1}, KEMMLKEM768X25519.WrappedKeySize())},
			{KeyID: testKeyID2, KEM: KEMX25519, WrappedKey: bytes.Repeat([]byte{2}, KEMX25519.WrappedKeySize())},
		},
	}
}

// encryptionWire is a firmware encryption member with one field replaced
// (value "" removes it).
func encryptionWire(field, value string) string {
	m := map[string]string{
		"cipher":     `"aes-256-gcm"`,
		"chunk_size": `65536`,
		"plaintext":  `{"length":10,"sha256":"` + hexOf(sumNew) + `"}`,
		"recipients": `[` + recipientWire("", "") + `]`,
	}
	if value == "" {
		delete(m, field)
	} else {
		m[field] = value
	}
	var parts []string
	for k, v := range m {
		parts = append(parts, `"`+k+`":`+v)
	}
	return `{` + strings.Join(parts, ",") + `}`
}

func recipientWire(field, value string) string {
	m := map[string]string{
		"keyid":       `"` + testKeyID + `"`,
		"kem":         `"x25519"`,
		"wrapped_key": `"` + base64.StdEncoding.EncodeToString(make([]byte, KEMX25519.WrappedKeySize())) + `"`,
	}
	if value == "" {
		delete(m, field)
	} else {
		m[field] = value
	}
	var parts []string
	for k, v := range m {
		parts = append(parts, `"`+k+`":`+v)
	}
	return `{` + strings.Join(parts, ",") + `}`
}

func TestEncryptionRoundTrip(t *testing.T) {
	fw := Firmware{Version: MustParseVersion("1.0.0"), SecurityVersion: 1, HardwareIDs: []string{"a"}, Encryption: testEncryption()}
	var tf TargetFile
	require.NoError(t, SetFirmware(&tf, fw))
	got, err := FirmwareOf(&tf)
	require.NoError(t, err)
	assert.Equal(t, fw.Encryption, got.Encryption)
	assert.Contains(t, string(*tf.Custom), `"cipher":"aes-256-gcm"`)
	n, sum := ImageOf(&tf, got)
	assert.Equal(t, int64(10), n)
	assert.Equal(t, sumNew[:], sum)
	assert.Equal(t, int64(46+10+16), got.Encryption.CiphertextLength())
	assert.NotNil(t, got.Encryption.Recipient(testKeyID2))
	assert.Nil(t, got.Encryption.Recipient(strings.Repeat("00", 32)))

	d := Delta{Format: FormatZstdStream,
		From: DeltaEnd{Path: "a/1.0.0/fw.bin", Length: 9, SHA256: sumOld[:]}, To: DeltaEnd{Path: "a/1.1.0/fw.bin", Length: 10, SHA256: sumNew[:]},
		Encryption: &Encryption{Cipher: CipherChaCha20Poly1305, ChunkSize: 4096, PlaintextLength: 5, PlaintextSHA256: sumOld[:]}}
	var dtf TargetFile
	require.NoError(t, SetDelta(&dtf, d))
	gotD, err := DeltaOf(&dtf)
	require.NoError(t, err)
	assert.Equal(t, &d, gotD)
}

// TestEncryptionOldDocuments: a document without the member reads as it
// always did, an unencrypted release.
func TestEncryptionOldDocuments(t *testing.T) {
	e, err := ParseCustom([]byte(firmwareJSON("notes", "")))
	require.NoError(t, err)
	assert.Nil(t, e.Firmware.Encryption)
}

// TestEncryptionUnknownVersusMalformed: an algorithm this version does not
// know and a member that is broken are different errors, so that an
// operator can tell an old device from a bad document.
func TestEncryptionUnknownVersusMalformed(t *testing.T) {
	_, err := ParseCustom([]byte(firmwareJSON("encryption", encryptionWire("cipher", `"aes-512-ocb"`))))
	assertRule(t, err, "encryption.cipher", RuleUnknownAlgorithm)
	_, err = ParseCustom([]byte(firmwareJSON("encryption", encryptionWire("recipients", `[`+recipientWire("kem", `"mlkem1024-p384"`)+`]`))))
	assertRule(t, err, "encryption.recipients[0].kem", RuleUnknownAlgorithm)
	_, err = ParseCustom([]byte(firmwareJSON("encryption", encryptionWire("chunk_size", `1`))))
	assertRule(t, err, "encryption.chunk_size", RuleMalformedEncryption)
	var fe *FieldError
	require.True(t, errors.As(err, &fe))
	assert.NotEqual(t, RuleUnknownAlgorithm, fe.Rule)
}

func encryptionProbes() []schemaProbe {
	fw := func(field, value string) string { return firmwareJSON("encryption", encryptionWire(field, value)) }
	rec := func(field, value string) string { return fw("recipients", `[`+recipientWire(field, value)+`]`) }
	return []schemaProbe{
		{"unknown cipher", fw("cipher", `"aes-128-ctr"`), "encryption.cipher", RuleUnknownAlgorithm, nil},
		{"unknown kem", rec("kem", `"kyber512"`), "encryption.recipients[0].kem", RuleUnknownAlgorithm, nil},
		{"missing cipher", fw("cipher", ""), "encryption.cipher", RuleMissingField, nil},
		{"cipher not string", fw("cipher", `2`), "encryption.cipher", RuleWrongJSONType, nil},
		{"unknown encryption field", fw("iv", `"00"`), "encryption.iv", RuleUnknownField, nil},
		{"missing recipients", fw("recipients", ""), "encryption.recipients", RuleMissingField, nil},
		{"no recipients", fw("recipients", `[]`), "encryption.recipients", RuleMalformedEncryption, nil},
		{"recipients not list", fw("recipients", `{}`), "encryption.recipients", RuleWrongJSONType, nil},
		{"chunk size too small", fw("chunk_size", `63`), "encryption.chunk_size", RuleMalformedEncryption, nil},
		{"chunk size too large", fw("chunk_size", `1048577`), "encryption.chunk_size", RuleMalformedEncryption, nil},
		{"chunk size huge", fw("chunk_size", `9007199254740991`), "encryption.chunk_size", RuleMalformedEncryption, nil},
		{"chunk size fraction", fw("chunk_size", `64.5`), "encryption.chunk_size", RuleFractionalNumber, nil},
		{"plaintext hash short", fw("plaintext", `{"length":1,"sha256":"ab"}`), "encryption.plaintext.sha256", RuleMalformedHash, nil},
		{"plaintext hash missing", fw("plaintext", `{"length":1}`), "encryption.plaintext.sha256", RuleMissingHash, nil},
		{"plaintext negative", fw("plaintext", `{"length":-1,"sha256":"`+hexOf(sumNew)+`"}`), "encryption.plaintext.length", RuleNegativeNumber, nil},
		{"plaintext extra", fw("plaintext", `{"length":1,"sha256":"`+hexOf(sumNew)+`","sha512":""}`), "encryption.plaintext.sha512", RuleUnknownField, nil},
		{"keyid short", rec("keyid", `"abcd"`), "encryption.recipients[0].keyid", RuleMalformedEncryption, nil},
		{"keyid uppercase", rec("keyid", `"`+strings.ToUpper(testKeyID)+`"`), "encryption.recipients[0].keyid", RuleMalformedEncryption, nil},
		{"wrapped key short", rec("wrapped_key", `"AAAA"`), "encryption.recipients[0].wrapped_key", RuleMalformedEncryption, nil},
		{"wrapped key not base64", rec("wrapped_key", `"!!!!"`), "encryption.recipients[0].wrapped_key", RuleMalformedEncryption, nil},
		{"wrapped key unpadded", rec("wrapped_key", `"`+strings.TrimRight(base64.StdEncoding.EncodeToString(make([]byte, 79)), "=")+`"`), "encryption.recipients[0].wrapped_key", RuleMalformedEncryption, nil},
		{"wrapped key for the other kem", rec("kem", `"mlkem768-x25519"`), "encryption.recipients[0].wrapped_key", RuleMalformedEncryption, nil},
		{"recipient extra field", rec("label", `"group a"`), "encryption.recipients[0].label", RuleUnknownField, nil},
		{"recipient missing kem", rec("kem", ""), "encryption.recipients[0].kem", RuleMissingField, nil},
		{"recipient twice", fw("recipients", `[`+recipientWire("", "")+`,`+recipientWire("", "")+`]`), "encryption.recipients[1].keyid", RuleMalformedEncryption, nil},
		{"encryption not object", firmwareJSON("encryption", `[]`), "encryption", RuleWrongJSONType, nil},
		{"delta with recipients", deltaJSON("encryption", encryptionWire("", "")), "encryption.recipients", RuleMalformedEncryption, nil},
	}
}

func TestEncryptionProbes(t *testing.T) {
	for _, tc := range encryptionProbes() {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCustom([]byte(tc.custom))
			assertRule(t, err, tc.field, tc.rule)
		})
	}
}

// FuzzEncryptionMember fuzzes the encryption member inside a firmware and
// a delta object: no panic, every refusal classified, and what is accepted
// round-trips.
func FuzzEncryptionMember(f *testing.F) {
	f.Add([]byte(encryptionWire("", "")))
	f.Add([]byte(encryptionWire("recipients", "")))
	f.Add([]byte(encryptionWire("recipients", `[`+recipientWire("kem", `"mlkem768-x25519"`)+`]`)))
	for _, p := range encryptionProbes() {
		i := strings.Index(p.custom, `"encryption":`)
		if i >= 0 {
			f.Add([]byte(p.custom[i+len(`"encryption":`) : len(p.custom)-2]))
		}
	}
	f.Fuzz(func(t *testing.T, member []byte) {
		for _, doc := range []string{firmwareJSON("encryption", string(member)), deltaJSON("encryption", string(member))} {
			e, err := ParseCustom([]byte(doc))
			if err != nil {
				var fe *FieldError
				if !errors.As(err, &fe) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
					t.Fatalf("unclassified: %v", err)
				}
				continue
			}
			var tf TargetFile
			require.NoError(t, SetEntry(&tf, e))
			again, err := ReadEntry(&tf)
			require.NoError(t, err)
			assert.Equal(t, e, again)
		}
	})
}
