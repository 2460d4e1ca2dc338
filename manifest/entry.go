package manifest

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
)

// ParseCustom reads the otaseal object from the raw JSON of a target's
// "custom" field. It is strict, because the object is signed data a device
// acts on: unknown or duplicate fields, values of the wrong type, numbers
// with more than one spelling and text over its limit are all errors: a
// *FieldError naming the field and the rule (ErrSchema to errors.Is),
// ErrNoOtaseal, ErrTooLarge, or ErrMalformed for bytes that are not JSON.
// It never panics, whatever the input.
func ParseCustom(custom []byte) (Entry, error) {
	if len(custom) > MaxOtasealSize {
		return Entry{}, fmt.Errorf("%w: custom object of %d bytes (limit %d)", ErrTooLarge, len(custom), MaxOtasealSize)
	}
	members, err := readObject(custom, "custom", 0)
	if err != nil {
		return Entry{}, err
	}
	raw, ok := members[CustomKey]
	if !ok {
		return Entry{}, ErrNoOtaseal
	}
	return parseOtaseal(raw)
}

func parseOtaseal(raw json.RawMessage) (Entry, error) {
	m, err := readObject(raw, CustomKey, 1)
	if err != nil {
		return Entry{}, err
	}
	kindRaw, ok := m[fieldKind]
	if !ok {
		return Entry{}, fieldError(fieldKind, RuleMissingField, "", "")
	}
	kind, err := readString(fieldKind, kindRaw)
	if err != nil {
		return Entry{}, err
	}
	delete(m, fieldKind)
	switch Kind(kind) {
	case KindFirmware:
		f, err := parseFirmware(m)
		if err != nil {
			return Entry{}, err
		}
		return Entry{Kind: KindFirmware, Firmware: f}, nil
	case KindDelta:
		d, err := parseDelta(m)
		if err != nil {
			return Entry{}, err
		}
		return Entry{Kind: KindDelta, Delta: d}, nil
	}
	return Entry{}, fieldError(fieldKind, RuleUnknownKind, kind, "")
}

func parseFirmware(m map[string]json.RawMessage) (*Firmware, error) {
	if err := onlyFields(m, "", fieldVersion, fieldSecurityVers, "hardware_ids", "severity", "advisories", "notes", fieldRollout, fieldWithdrawn, fieldEncrypt); err != nil {
		return nil, err
	}
	if err := requireFields(m, "", fieldVersion, fieldSecurityVers, "hardware_ids"); err != nil {
		return nil, err
	}
	var f Firmware
	s, err := readString(fieldVersion, m[fieldVersion])
	if err != nil {
		return nil, err
	}
	if f.Version, err = parseVersion(s); err != nil {
		return nil, fieldError(fieldVersion, RuleMalformedVersion, s, err.Error())
	}
	if f.SecurityVersion, err = readUint(fieldSecurityVers, m[fieldSecurityVers]); err != nil {
		return nil, err
	}
	if f.HardwareIDs, err = readStrings("hardware_ids", m["hardware_ids"], MaxHardwareIDs); err != nil {
		return nil, err
	}
	if raw, ok := m["severity"]; ok {
		s, err := readString("severity", raw)
		if err != nil {
			return nil, err
		}
		// Present means meaningful: "" would be a second spelling of absent.
		if s == "" {
			return nil, fieldError("severity", RuleUnknownSeverity, "", "empty (omit the field)")
		}
		f.Severity = Severity(s)
	}
	if raw, ok := m["advisories"]; ok {
		if f.Advisories, err = readStrings("advisories", raw, MaxAdvisories); err != nil {
			return nil, err
		}
		if len(f.Advisories) == 0 {
			return nil, fieldError("advisories", RuleInvalidText, "", "empty list (omit the field)")
		}
	}
	if raw, ok := m["notes"]; ok {
		if f.Notes, err = readString("notes", raw); err != nil {
			return nil, err
		}
		if f.Notes == "" {
			return nil, fieldError("notes", RuleInvalidText, "", "empty (omit the field)")
		}
	}
	if raw, ok := m[fieldRollout]; ok {
		if f.Rollout, err = parseRollout(raw); err != nil {
			return nil, err
		}
	}
	if raw, ok := m[fieldWithdrawn]; ok {
		if f.Withdrawn, err = parseWithdrawal(raw); err != nil {
			return nil, err
		}
	}
	if raw, ok := m[fieldEncrypt]; ok {
		if f.Encryption, err = parseEncryption(raw, false); err != nil {
			return nil, err
		}
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

func parseDelta(m map[string]json.RawMessage) (*Delta, error) {
	// The format comes first: a future format may carry other fields, and
	// "unknown format" is the error that tells an operator what happened.
	if _, ok := m["format"]; !ok {
		return nil, fieldError("format", RuleMissingField, "", "")
	}
	format, err := readString("format", m["format"])
	if err != nil {
		return nil, err
	}
	d := Delta{Format: DeltaFormat(format)}
	if d.Format != FormatBSDIFF40 && d.Format != FormatZstdStream {
		return nil, fieldError("format", RuleUnknownFormat, format, "")
	}
	if err := onlyFields(m, "", "format", "from", "to", fieldEncrypt); err != nil {
		return nil, err
	}
	if err := requireFields(m, "", "from", "to"); err != nil {
		return nil, err
	}
	if d.From, err = parseDeltaEnd("from", m["from"]); err != nil {
		return nil, err
	}
	if d.To, err = parseDeltaEnd("to", m["to"]); err != nil {
		return nil, err
	}
	if raw, ok := m[fieldEncrypt]; ok {
		if d.Encryption, err = parseEncryption(raw, true); err != nil {
			return nil, err
		}
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return &d, nil
}

func parseDeltaEnd(name string, raw json.RawMessage) (DeltaEnd, error) {
	m, err := readObject(raw, name, 2)
	if err != nil {
		return DeltaEnd{}, err
	}
	prefix := name + "."
	if err := onlyFields(m, prefix, "path", "length", "sha256"); err != nil {
		return DeltaEnd{}, err
	}
	if _, ok := m["sha256"]; !ok {
		return DeltaEnd{}, fieldError(prefix+"sha256", RuleMissingHash, "", "")
	}
	if err := requireFields(m, prefix, "path", "length"); err != nil {
		return DeltaEnd{}, err
	}
	var e DeltaEnd
	if e.Path, err = readString(prefix+"path", m["path"]); err != nil {
		return DeltaEnd{}, err
	}
	n, err := readUint(prefix+"length", m["length"])
	if err != nil {
		return DeltaEnd{}, err
	}
	e.Length = int64(n) // readUint caps at MaxSafeInteger
	h, err := readString(prefix+"sha256", m["sha256"])
	if err != nil {
		return DeltaEnd{}, err
	}
	if h == "" {
		return DeltaEnd{}, fieldError(prefix+"sha256", RuleMissingHash, "", "")
	}
	if e.SHA256, err = decodeHex(prefix+"sha256", h, sha256HexLen); err != nil {
		return DeltaEnd{}, err
	}
	return e, nil
}

// decodeHex accepts exactly n lowercase hex digits: one spelling per hash.
func decodeHex(field, s string, n int) ([]byte, error) {
	if len(s) != n {
		return nil, fieldError(field, RuleMalformedHash, s, fmt.Sprintf("%d hex digits, want %d", len(s), n))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return nil, fieldError(field, RuleMalformedHash, s, "not lowercase hex")
		}
	}
	return hex.DecodeString(s)
}

// readObject decodes one JSON object into its members, refusing duplicate
// keys: encoding/json would keep the last of two "security_version" members
// while another reader keeps the first, and a signed document must mean one
// thing to every reader.
func readObject(data []byte, field string, depth int) (map[string]json.RawMessage, error) {
	if depth > maxSchemaNesting {
		return nil, fieldError(field, RuleWrongJSONType, "", "nested too deep")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, malformedJSON(field, err)
	}
	if tok != json.Delim('{') {
		return nil, fieldError(field, RuleWrongJSONType, "", "want an object")
	}
	m := make(map[string]json.RawMessage)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, malformedJSON(field, err)
		}
		key, _ := tok.(string) // object keys are always strings
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, malformedJSON(field, err)
		}
		if _, dup := m[key]; dup {
			name := key
			if depth >= 2 { // a nested object: "from.length", as elsewhere
				name = field + "." + key
			}
			return nil, fieldError(name, RuleDuplicateField, "", "")
		}
		m[key] = raw
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, malformedJSON(field, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, malformedJSON(field, fmt.Errorf("data after the object"))
	}
	return m, nil
}

// malformedJSON reports bytes that are not JSON at all. That is no rule of
// the firmware schema but the class every parser here calls ErrMalformed;
// inside a parsed TUF document it cannot happen, since go-tuf has read the
// custom object as JSON already.
func malformedJSON(field string, err error) error {
	return fmt.Errorf("%w: %s object: %v", ErrMalformed, field, err)
}

func onlyFields(m map[string]json.RawMessage, prefix string, allowed ...string) error {
	for k := range m {
		known := false
		for _, a := range allowed {
			known = known || k == a
		}
		if !known {
			// Signed data we would silently ignore is data we cannot vouch
			// for: a newer publisher's "min_bootloader" must not be dropped.
			return fieldError(prefix+k, RuleUnknownField, "", "")
		}
	}
	return nil
}

func requireFields(m map[string]json.RawMessage, prefix string, names ...string) error {
	for _, n := range names {
		if _, ok := m[n]; !ok {
			return fieldError(prefix+n, RuleMissingField, "", "")
		}
	}
	return nil
}

func readString(field string, raw json.RawMessage) (string, error) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", fieldError(field, RuleWrongJSONType, "", "want a string")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", malformedJSON(field, err)
	}
	return s, nil
}

func readStrings(field string, raw json.RawMessage, max int) ([]string, error) {
	if len(raw) == 0 || raw[0] != '[' {
		return nil, fieldError(field, RuleWrongJSONType, "", "want a list of strings")
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, malformedJSON(field, err)
	}
	if len(items) > max {
		return nil, fieldError(field, RuleTooManyItems, "", fmt.Sprintf("%d (limit %d)", len(items), max))
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		s, err := readString(field, it)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// readUint accepts a JSON integer in its one canonical spelling, 0 to
// MaxSafeInteger (raw is valid JSON, so it has no leading zeros). "7.0", "7e0" and "-0" are refused: a number that reads
// differently in another JSON library is not a security counter.
func readUint(field string, raw json.RawMessage) (uint64, error) {
	s := string(raw)
	if len(s) == 0 || !(s[0] == '-' || s[0] >= '0' && s[0] <= '9') {
		return 0, fieldError(field, RuleWrongJSONType, "", "want a number")
	}
	if s[0] == '-' {
		return 0, fieldError(field, RuleNegativeNumber, s, "")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fieldError(field, RuleFractionalNumber, s, "")
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > MaxSafeInteger {
		return 0, fieldError(field, RuleNumberOverflow, s, "")
	}
	return n, nil
}

// ReadEntry returns the typed otaseal object of a target, or ErrNoOtaseal
// for a plain TUF target without one.
func ReadEntry(tf *TargetFile) (Entry, error) {
	if tf == nil || tf.Custom == nil {
		return Entry{}, ErrNoOtaseal
	}
	return ParseCustom(*tf.Custom)
}

// FirmwareOf returns the firmware facts of a firmware target; ErrWrongKind
// for a delta target.
func FirmwareOf(tf *TargetFile) (*Firmware, error) {
	e, err := ReadEntry(tf)
	if err != nil {
		return nil, err
	}
	if e.Kind != KindFirmware {
		return nil, fmt.Errorf("%w: %s, want %s", ErrWrongKind, e.Kind, KindFirmware)
	}
	return e.Firmware, nil
}

// DeltaOf returns the delta facts of a delta target; ErrWrongKind for a
// firmware target.
func DeltaOf(tf *TargetFile) (*Delta, error) {
	e, err := ReadEntry(tf)
	if err != nil {
		return nil, err
	}
	if e.Kind != KindDelta {
		return nil, fmt.Errorf("%w: %s, want %s", ErrWrongKind, e.Kind, KindDelta)
	}
	return e.Delta, nil
}

// SetFirmware validates f and stores it as the target's otaseal object,
// keeping any other keys of "custom".
func SetFirmware(tf *TargetFile, f Firmware) error {
	return SetEntry(tf, Entry{Kind: KindFirmware, Firmware: &f})
}

// SetDelta validates d and stores it as the target's otaseal object,
// keeping any other keys of "custom".
func SetDelta(tf *TargetFile, d Delta) error {
	return SetEntry(tf, Entry{Kind: KindDelta, Delta: &d})
}

// SetEntry validates e and stores it as the target's otaseal object,
// keeping any other keys of "custom". On error tf is unchanged.
func SetEntry(tf *TargetFile, e Entry) error {
	obj, err := marshalEntry(e)
	if err != nil {
		return err
	}
	members := map[string]json.RawMessage{}
	if tf.Custom != nil && len(*tf.Custom) > 0 && string(*tf.Custom) != "null" {
		if members, err = readObject(*tf.Custom, "custom", 0); err != nil {
			return err
		}
	}
	members[CustomKey] = obj
	out, err := json.Marshal(members)
	if err != nil {
		return err
	}
	if len(out) > MaxOtasealSize {
		return fmt.Errorf("%w: custom object of %d bytes (limit %d)", ErrTooLarge, len(out), MaxOtasealSize)
	}
	msg := json.RawMessage(out)
	tf.Custom = &msg
	return nil
}
