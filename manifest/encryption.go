package manifest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
)

// Cipher names the AEAD of an encrypted target's chunk stream (package
// encrypt uses the same wire names).
type Cipher string

const (
	CipherAES256GCM        Cipher = "aes-256-gcm"
	CipherChaCha20Poly1305 Cipher = "chacha20-poly1305"
)

// KEM names the HPKE key encapsulation a recipient's content key is
// wrapped with (package encrypt uses the same wire names).
type KEM string

const (
	// KEMMLKEM768X25519 is the post-quantum hybrid ML-KEM-768 + X25519,
	// the default.
	KEMMLKEM768X25519 KEM = "mlkem768-x25519"
	// KEMX25519 is DHKEM(X25519, HKDF-SHA256), for constrained devices.
	KEMX25519 KEM = "x25519"
)

// Limits of the encryption member.
const (
	MinChunkSize  = 64      // bytes of plaintext per chunk, at least
	MaxChunkSize  = 1 << 20 // and at most: a device holds about two chunks
	MaxRecipients = 256     // per target; MaxOtasealSize bounds hybrid ones to about 37
	keyIDHexLen   = 64
	fieldEncrypt  = "encryption"
)

// WrappedKeySize returns the exact length of a wrapped content key for a
// recipient of KEM k: the HPKE encapsulated key, the 32-byte content key
// and a 16-byte tag. 0 means an unknown KEM.
func (k KEM) WrappedKeySize() int {
	switch k {
	case KEMMLKEM768X25519:
		return 1120 + 32 + 16
	case KEMX25519:
		return 32 + 32 + 16
	}
	return 0
}

// Encryption says that a target's bytes are ciphertext (package encrypt's
// stream format): TUF's length and hashes cover the ciphertext, so any TUF
// client verifies the download, and the plaintext's own length and sha256
// are here for the device to check what it decrypts. A firmware target's
// Recipients hold its release's content key wrapped for each device group
// or device; a delta target has none, because it is encrypted with the
// content key of its "to" release.
type Encryption struct {
	Cipher          Cipher
	ChunkSize       int
	PlaintextLength int64
	PlaintextSHA256 []byte // 32 bytes
	Recipients      []Recipient
	// Envelopes are the target paths of key envelopes (KeyEnvelope) that
	// hold more recipients of the release, for fleets whose per-device
	// wraps would not fit in the targets entry. Firmware only.
	Envelopes []string
}

// Recipient is one wrapped copy of a release's content key.
type Recipient struct {
	KeyID      string // 64 lowercase hex digits: encrypt.PublicKey.KeyID
	KEM        KEM
	WrappedKey []byte // KEM.WrappedKeySize() bytes, bound to the target path and version
}

// Recipient returns the entry for keyID, or nil.
func (e *Encryption) Recipient(keyID string) *Recipient {
	for i := range e.Recipients {
		if e.Recipients[i].KeyID == keyID {
			return &e.Recipients[i]
		}
	}
	return nil
}

func knownCipher(c Cipher) bool { return c == CipherAES256GCM || c == CipherChaCha20Poly1305 }

// Validate checks e against the schema rules that ParseCustom enforces;
// forDelta says whether e belongs to a delta target (no recipients) or a
// firmware target (at least one).
func (e *Encryption) Validate(forDelta bool) error {
	const p = fieldEncrypt + "."
	if !knownCipher(e.Cipher) {
		return fieldError(p+"cipher", RuleUnknownAlgorithm, string(e.Cipher), "")
	}
	if e.ChunkSize < MinChunkSize || e.ChunkSize > MaxChunkSize {
		return fieldError(p+"chunk_size", RuleMalformedEncryption, fmt.Sprint(e.ChunkSize), fmt.Sprintf("want %d..%d", MinChunkSize, MaxChunkSize))
	}
	if e.PlaintextLength < 0 || e.PlaintextLength > MaxSafeInteger {
		return fieldError(p+"plaintext.length", RuleNumberOverflow, fmt.Sprint(e.PlaintextLength), "")
	}
	if len(e.PlaintextSHA256) != sha256HexLen/2 {
		return fieldError(p+"plaintext.sha256", RuleMalformedHash, "", fmt.Sprintf("%d bytes, want %d", len(e.PlaintextSHA256), sha256HexLen/2))
	}
	switch {
	case forDelta && (len(e.Recipients) > 0 || len(e.Envelopes) > 0):
		return fieldError(p+"recipients", RuleMalformedEncryption, "", "a delta is encrypted with its to release's key and lists no recipients")
	case !forDelta && len(e.Recipients) == 0 && len(e.Envelopes) == 0:
		return fieldError(p+"recipients", RuleMalformedEncryption, "", "an encrypted release needs at least one recipient or envelope")
	case len(e.Recipients) > MaxRecipients:
		return fieldError(p+"recipients", RuleTooManyItems, "", fmt.Sprintf("%d (limit %d)", len(e.Recipients), MaxRecipients))
	case len(e.Envelopes) > MaxEnvelopes:
		return fieldError(p+"envelopes", RuleTooManyItems, "", fmt.Sprintf("%d (limit %d)", len(e.Envelopes), MaxEnvelopes))
	}
	seenEnv := make(map[string]bool, len(e.Envelopes))
	for _, path := range e.Envelopes {
		if err := checkText(p+"envelopes", path, MaxTargetPathLen, false); err != nil {
			return err
		}
		if seenEnv[path] {
			return fieldError(p+"envelopes", RuleMalformedEncryption, path, "envelope listed twice")
		}
		seenEnv[path] = true
	}
	return checkRecipients(p+"recipients", e.Recipients)
}

// checkRecipients checks each recipient's KEM, key ID and wrapped key
// length, and that no key ID repeats.
func checkRecipients(field string, rs []Recipient) error {
	seen := make(map[string]bool, len(rs))
	for i, r := range rs {
		name := fmt.Sprintf("%s[%d].", field, i)
		if r.KEM.WrappedKeySize() == 0 {
			return fieldError(name+"kem", RuleUnknownAlgorithm, string(r.KEM), "")
		}
		if !isLowerHex(r.KeyID, keyIDHexLen) {
			return fieldError(name+"keyid", RuleMalformedEncryption, r.KeyID, fmt.Sprintf("want %d lowercase hex digits", keyIDHexLen))
		}
		if seen[r.KeyID] {
			return fieldError(name+"keyid", RuleMalformedEncryption, r.KeyID, "recipient listed twice")
		}
		seen[r.KeyID] = true
		if len(r.WrappedKey) != r.KEM.WrappedKeySize() {
			return fieldError(name+"wrapped_key", RuleMalformedEncryption, "", fmt.Sprintf("%d bytes, a %s wrap is %d", len(r.WrappedKey), r.KEM, r.KEM.WrappedKeySize()))
		}
	}
	return nil
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// CiphertextLength is the length of the stream that encrypts the
// plaintext, which must equal the target's signed length (package encrypt's
// CiphertextSize): header, plaintext, one tag per chunk.
func (e *Encryption) CiphertextLength() int64 {
	const header, tag = 46, 16
	c := int64(e.ChunkSize)
	if c <= 0 || e.PlaintextLength < 0 {
		return -1
	}
	chunks := max(1, (e.PlaintextLength+c-1)/c)
	return header + e.PlaintextLength + tag*chunks
}

var strictBase64 = base64.StdEncoding.Strict()

func parseEncryption(raw json.RawMessage, forDelta bool) (*Encryption, error) {
	const p = fieldEncrypt + "."
	m, err := readObject(raw, fieldEncrypt, 2)
	if err != nil {
		return nil, err
	}
	// The cipher comes first, as a delta's format does: a future cipher
	// may bring other members, and "unknown algorithm" is what tells an
	// operator that the device is too old, not that the document is bad.
	if _, ok := m["cipher"]; !ok {
		return nil, fieldError(p+"cipher", RuleMissingField, "", "")
	}
	c, err := readString(p+"cipher", m["cipher"])
	if err != nil {
		return nil, err
	}
	e := Encryption{Cipher: Cipher(c)}
	if !knownCipher(e.Cipher) {
		return nil, fieldError(p+"cipher", RuleUnknownAlgorithm, c, "")
	}
	if err := onlyFields(m, p, "cipher", "chunk_size", "plaintext", "recipients", "envelopes"); err != nil {
		return nil, err
	}
	if err := requireFields(m, p, "chunk_size", "plaintext"); err != nil {
		return nil, err
	}
	if _, ok := m["envelopes"]; !forDelta && !ok {
		if err := requireFields(m, p, "recipients"); err != nil {
			return nil, err
		}
	}
	n, err := readUint(p+"chunk_size", m["chunk_size"])
	if err != nil {
		return nil, err
	}
	e.ChunkSize = int(n) // readUint caps at MaxSafeInteger; Validate checks the range
	if n > MaxChunkSize {
		e.ChunkSize = MaxChunkSize + 1
	}
	if e.PlaintextLength, e.PlaintextSHA256, err = parsePlaintext(m["plaintext"]); err != nil {
		return nil, err
	}
	if raw, ok := m["recipients"]; ok {
		if e.Recipients, err = parseRecipientList(p+"recipients", raw, MaxRecipients, 3); err != nil {
			return nil, err
		}
		// Present means meaningful: [] would be a second spelling of absent.
		if len(e.Recipients) == 0 {
			return nil, fieldError(p+"recipients", RuleMalformedEncryption, "", "empty list (omit the field)")
		}
	}
	if raw, ok := m["envelopes"]; ok {
		if e.Envelopes, err = readStrings(p+"envelopes", raw, MaxEnvelopes); err != nil {
			return nil, err
		}
		if len(e.Envelopes) == 0 {
			return nil, fieldError(p+"envelopes", RuleMalformedEncryption, "", "empty list (omit the field)")
		}
	}
	if err := e.Validate(forDelta); err != nil {
		return nil, err
	}
	return &e, nil
}

func parsePlaintext(raw json.RawMessage) (int64, []byte, error) {
	const name, prefix = fieldEncrypt + ".plaintext", fieldEncrypt + ".plaintext."
	m, err := readObject(raw, name, 3)
	if err != nil {
		return 0, nil, err
	}
	if err := onlyFields(m, prefix, "length", "sha256"); err != nil {
		return 0, nil, err
	}
	if _, ok := m["sha256"]; !ok {
		return 0, nil, fieldError(prefix+"sha256", RuleMissingHash, "", "")
	}
	if err := requireFields(m, prefix, "length"); err != nil {
		return 0, nil, err
	}
	n, err := readUint(prefix+"length", m["length"])
	if err != nil {
		return 0, nil, err
	}
	h, err := readString(prefix+"sha256", m["sha256"])
	if err != nil {
		return 0, nil, err
	}
	sum, err := decodeHex(prefix+"sha256", h, sha256HexLen)
	if err != nil {
		return 0, nil, err
	}
	return int64(n), sum, nil
}

func parseRecipientList(field string, raw json.RawMessage, max, depth int) ([]Recipient, error) {
	if len(raw) == 0 || raw[0] != '[' {
		return nil, fieldError(field, RuleWrongJSONType, "", "want a list of recipients")
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, malformedJSON(field, err)
	}
	if len(items) > max {
		return nil, fieldError(field, RuleTooManyItems, "", fmt.Sprintf("%d (limit %d)", len(items), max))
	}
	out := make([]Recipient, 0, len(items))
	for i, it := range items {
		name := fmt.Sprintf("%s[%d]", field, i)
		m, err := readObject(it, name, depth)
		if err != nil {
			return nil, err
		}
		prefix := name + "."
		// The KEM first, for the same reason as the cipher.
		if _, ok := m["kem"]; !ok {
			return nil, fieldError(prefix+"kem", RuleMissingField, "", "")
		}
		kem, err := readString(prefix+"kem", m["kem"])
		if err != nil {
			return nil, err
		}
		r := Recipient{KEM: KEM(kem)}
		if r.KEM.WrappedKeySize() == 0 {
			return nil, fieldError(prefix+"kem", RuleUnknownAlgorithm, kem, "")
		}
		if err := onlyFields(m, prefix, "keyid", "kem", "wrapped_key"); err != nil {
			return nil, err
		}
		if err := requireFields(m, prefix, "keyid", "wrapped_key"); err != nil {
			return nil, err
		}
		if r.KeyID, err = readString(prefix+"keyid", m["keyid"]); err != nil {
			return nil, err
		}
		w, err := readString(prefix+"wrapped_key", m["wrapped_key"])
		if err != nil {
			return nil, err
		}
		// One spelling: padded standard base64, nothing else.
		if r.WrappedKey, err = strictBase64.DecodeString(w); err != nil || strictBase64.EncodeToString(r.WrappedKey) != w {
			return nil, fieldError(prefix+"wrapped_key", RuleMalformedEncryption, "", "not padded standard base64")
		}
		out = append(out, r)
	}
	return out, nil
}

// encryptionJSON is the wire form of e, for marshalEntry.
func encryptionJSON(e *Encryption) map[string]any {
	obj := map[string]any{
		"cipher":     e.Cipher,
		"chunk_size": e.ChunkSize,
		"plaintext":  map[string]any{"length": e.PlaintextLength, "sha256": fmt.Sprintf("%x", e.PlaintextSHA256)},
	}
	if len(e.Recipients) > 0 {
		obj["recipients"] = recipientsJSON(e.Recipients)
	}
	if len(e.Envelopes) > 0 {
		obj["envelopes"] = e.Envelopes
	}
	return obj
}

func recipientsJSON(rs []Recipient) []map[string]any {
	out := make([]map[string]any, len(rs))
	for i, r := range rs {
		out[i] = map[string]any{"keyid": r.KeyID, "kem": r.KEM, "wrapped_key": strictBase64.EncodeToString(r.WrappedKey)}
	}
	return out
}

// ImageOf returns the length and SHA-256 of the image a firmware target
// installs: its plaintext's when the target is encrypted, else the
// target's own. This is the identity a device records for its slot and a
// delta's ends name.
func ImageOf(tf *TargetFile, fw *Firmware) (int64, []byte) {
	if fw != nil && fw.Encryption != nil {
		return fw.Encryption.PlaintextLength, bytes.Clone(fw.Encryption.PlaintextSHA256)
	}
	if tf == nil {
		return 0, nil
	}
	return tf.Length, bytes.Clone(tf.Hashes["sha256"])
}
