package manifest

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// ErrFieldType reports a JSON value of the wrong type (a number where a
// string belongs, null for a list, ...).
var ErrFieldType = errors.New("manifest: field has the wrong JSON type")

// ParseCustom reads the otaseal object from the raw JSON of a target's
// "custom" field. It is strict, because the object is signed data a device
// acts on: unknown or duplicate fields, values of the wrong type, numbers
// with more than one spelling and text over its limit are all errors, each
// with its own sentinel. It never panics, whatever the input.
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
		return Entry{}, &FieldError{Field: fieldKind, Err: ErrMissingField}
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
	return Entry{}, &FieldError{Field: fieldKind, Err: fmt.Errorf("%w %q", ErrUnknownKind, clip(kind))}
}

func parseFirmware(m map[string]json.RawMessage) (*Firmware, error) {
	if err := onlyFields(m, "", fieldVersion, fieldSecurityVers, "hardware_ids", "severity", "advisories", "notes"); err != nil {
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
	if f.Version, err = ParseVersion(s); err != nil {
		return nil, &FieldError{Field: fieldVersion, Err: err}
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
			return nil, &FieldError{Field: "severity", Err: fmt.Errorf("%w \"\"", ErrUnknownSeverity)}
		}
		f.Severity = Severity(s)
	}
	if raw, ok := m["advisories"]; ok {
		if f.Advisories, err = readStrings("advisories", raw, MaxAdvisories); err != nil {
			return nil, err
		}
		if len(f.Advisories) == 0 {
			return nil, &FieldError{Field: "advisories", Err: fmt.Errorf("%w: empty list (omit the field)", ErrInvalidText)}
		}
	}
	if raw, ok := m["notes"]; ok {
		if f.Notes, err = readString("notes", raw); err != nil {
			return nil, err
		}
		if f.Notes == "" {
			return nil, &FieldError{Field: "notes", Err: fmt.Errorf("%w: empty (omit the field)", ErrInvalidText)}
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
		return nil, &FieldError{Field: "format", Err: ErrMissingField}
	}
	format, err := readString("format", m["format"])
	if err != nil {
		return nil, err
	}
	d := Delta{Format: DeltaFormat(format)}
	if d.Format != FormatBSDIFF40 && d.Format != FormatZstdStream {
		return nil, &FieldError{Field: "format", Err: fmt.Errorf("%w %q", ErrUnknownFormat, clip(format))}
	}
	if err := onlyFields(m, "", "format", "from", "to"); err != nil {
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
		return DeltaEnd{}, &FieldError{Field: prefix + "sha256", Err: ErrMissingHash}
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
		return DeltaEnd{}, &FieldError{Field: prefix + "sha256", Err: ErrMissingHash}
	}
	if e.SHA256, err = decodeHex(h, sha256HexLen); err != nil {
		return DeltaEnd{}, &FieldError{Field: prefix + "sha256", Err: err}
	}
	return e, nil
}

// decodeHex accepts exactly n lowercase hex digits: one spelling per hash.
func decodeHex(s string, n int) ([]byte, error) {
	if len(s) != n {
		return nil, fmt.Errorf("%w: %d hex digits, want %d", ErrMalformedHash, len(s), n)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return nil, fmt.Errorf("%w: not lowercase hex", ErrMalformedHash)
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
		return nil, &FieldError{Field: field, Err: ErrFieldType}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, &FieldError{Field: field, Err: fmt.Errorf("%w: %v", ErrMalformed, err)}
	}
	if tok != json.Delim('{') {
		return nil, &FieldError{Field: field, Err: fmt.Errorf("%w: want an object", ErrFieldType)}
	}
	m := make(map[string]json.RawMessage)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, &FieldError{Field: field, Err: fmt.Errorf("%w: %v", ErrMalformed, err)}
		}
		key, _ := tok.(string) // object keys are always strings
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, &FieldError{Field: field, Err: fmt.Errorf("%w: %v", ErrMalformed, err)}
		}
		if _, dup := m[key]; dup {
			return nil, &FieldError{Field: clip(key), Err: ErrDuplicateField}
		}
		m[key] = raw
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, &FieldError{Field: field, Err: fmt.Errorf("%w: %v", ErrMalformed, err)}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &FieldError{Field: field, Err: fmt.Errorf("%w: data after the object", ErrMalformed)}
	}
	return m, nil
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
			return &FieldError{Field: prefix + clip(k), Err: ErrUnknownField}
		}
	}
	return nil
}

func requireFields(m map[string]json.RawMessage, prefix string, names ...string) error {
	for _, n := range names {
		if _, ok := m[n]; !ok {
			return &FieldError{Field: prefix + n, Err: ErrMissingField}
		}
	}
	return nil
}

func readString(field string, raw json.RawMessage) (string, error) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", &FieldError{Field: field, Err: fmt.Errorf("%w: want a string", ErrFieldType)}
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", &FieldError{Field: field, Err: fmt.Errorf("%w: %v", ErrMalformed, err)}
	}
	return s, nil
}

func readStrings(field string, raw json.RawMessage, max int) ([]string, error) {
	if len(raw) == 0 || raw[0] != '[' {
		return nil, &FieldError{Field: field, Err: fmt.Errorf("%w: want a list of strings", ErrFieldType)}
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, &FieldError{Field: field, Err: fmt.Errorf("%w: %v", ErrMalformed, err)}
	}
	if len(items) > max {
		return nil, &FieldError{Field: field, Err: fmt.Errorf("%w: %d (limit %d)", ErrTooManyItems, len(items), max)}
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
		return 0, &FieldError{Field: field, Err: fmt.Errorf("%w: want a number", ErrFieldType)}
	}
	if s[0] == '-' {
		return 0, &NumberError{Field: field, Value: s, Reason: ErrNegativeNumber}
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, &NumberError{Field: field, Value: s, Reason: ErrFractionalNumber}
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > MaxSafeInteger {
		return 0, &NumberError{Field: field, Value: s, Reason: ErrNumberOverflow}
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
