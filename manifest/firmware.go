package manifest

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"unicode/utf8"
)

// CustomKey is the key of otaseal's object inside a target's "custom" field.
// Other keys of "custom" belong to other tools and are kept as they are.
const CustomKey = "otaseal"

// Limits of the firmware schema. Every list and string read from a signed
// document has one, checked before anything is kept.
const (
	MaxOtasealSize    = 64 << 10 // bytes of the whole "custom" object
	MaxHardwareIDs    = 256
	MaxHardwareIDLen  = 128
	MaxAdvisories     = 64
	MaxAdvisoryLen    = 128
	MaxNotesLen       = 4096
	MaxTargetPathLen  = 4096
	MaxSafeInteger    = 1<<53 - 1 // the largest integer every JSON reader (JavaScript's too) keeps exactly
	sha256HexLen      = 64
	maxSchemaNesting  = 3 // otaseal object -> delta end, rollout or withdrawn object -> wave
	fieldKind         = "kind"
	fieldVersion      = "version"
	fieldSecurityVers = "security_version"
)

// Kind says what a target is.
type Kind string

const (
	KindFirmware Kind = "firmware" // a complete image
	KindDelta    Kind = "delta"    // a patch from one image to another
)

// Severity says why a release exists; devices log or show it as the
// security notice of an update.
type Severity string

const (
	SeverityFeature  Severity = "feature"
	SeverityBugfix   Severity = "bugfix"
	SeveritySecurity Severity = "security" // fixes a vulnerability; see Advisories
	SeverityCritical Severity = "critical" // install as soon as possible
)

// DeltaFormat names the patch encoding of a delta target.
type DeltaFormat string

const (
	// FormatBSDIFF40 is the classic bsdiff 4.3 format (three bzip2 streams).
	FormatBSDIFF40 DeltaFormat = "bsdiff40"
	// FormatZstdStream is otaseal's streaming format: control entries
	// and their diff and extra data in one zstd stream, applied as it
	// downloads (see package delta).
	FormatZstdStream DeltaFormat = "otaseal-zstd"
)

// Firmware describes a complete firmware image target.
type Firmware struct {
	Version         Version  // strict semver of the image
	SecurityVersion uint64   // only rises across releases of a hardware ID; at most MaxSafeInteger
	HardwareIDs     []string // hardware the image is built for; non-empty, unique
	Severity        Severity // optional
	Advisories      []string // optional, e.g. CVE IDs
	Notes           string   // optional, human readable
	// Rollout is the staged schedule of the release; nil means every
	// device may take it at once.
	Rollout *Rollout
	// Withdrawn, if not nil, marks the release as one devices must not
	// install.
	Withdrawn *Withdrawal
	// Encryption, if not nil, says the target is the image encrypted for
	// the listed recipients; nil means the target is the image itself.
	Encryption *Encryption
}

// Supports reports whether the image is built for hardwareID.
func (f *Firmware) Supports(hardwareID string) bool {
	return slices.Contains(f.HardwareIDs, hardwareID)
}

// DeltaEnd identifies one end of a delta: a firmware target by path, with
// the length and sha256 the device checks its image against.
type DeltaEnd struct {
	Path   string
	Length int64
	SHA256 []byte // 32 bytes
}

// Delta describes a patch target that turns the From image into the To
// image. A delta is untrusted transport: what it produces counts only after
// it matches the To target's signed length and hashes.
type Delta struct {
	Format DeltaFormat
	From   DeltaEnd // the installed image: its plaintext when encrypted
	To     DeltaEnd // the image the patch builds: its plaintext when encrypted
	// Encryption, if not nil, says the target is the patch encrypted with
	// the content key of the To release; it lists no recipients.
	Encryption *Encryption
}

// Entry is the typed content of one otaseal object: exactly one of
// Firmware and Delta is set, as Kind says.
type Entry struct {
	Kind     Kind
	Firmware *Firmware
	Delta    *Delta
}

// Validate checks f against the schema rules that ParseCustom enforces, so
// that nothing is written that a device would refuse to read.
func (f *Firmware) Validate() error {
	if f.Version.IsZero() {
		return fieldError(fieldVersion, RuleMalformedVersion, "", "zero Version")
	}
	if f.SecurityVersion > MaxSafeInteger {
		return fieldError(fieldSecurityVers, RuleNumberOverflow, fmt.Sprint(f.SecurityVersion), "")
	}
	if err := checkHardwareIDs(f.HardwareIDs); err != nil {
		return err
	}
	if f.Severity != "" && !knownSeverity(f.Severity) {
		return fieldError("severity", RuleUnknownSeverity, string(f.Severity), "")
	}
	if len(f.Advisories) > MaxAdvisories {
		return fieldError("advisories", RuleTooManyItems, "", fmt.Sprintf("%d (limit %d)", len(f.Advisories), MaxAdvisories))
	}
	for _, a := range f.Advisories {
		if err := checkText("advisories", a, MaxAdvisoryLen, false); err != nil {
			return err
		}
	}
	if f.Notes != "" {
		if err := checkText("notes", f.Notes, MaxNotesLen, true); err != nil {
			return err
		}
	}
	if f.Rollout != nil {
		if err := f.Rollout.Validate(); err != nil {
			return err
		}
	}
	if f.Withdrawn != nil {
		if err := f.Withdrawn.Validate(); err != nil {
			return err
		}
	}
	if f.Encryption != nil {
		return f.Encryption.Validate(false)
	}
	return nil
}

// Validate checks d against the schema rules that ParseCustom enforces.
func (d *Delta) Validate() error {
	if d.Format != FormatBSDIFF40 && d.Format != FormatZstdStream {
		return fieldError("format", RuleUnknownFormat, string(d.Format), "")
	}
	for _, e := range []struct {
		name string
		end  *DeltaEnd
	}{{"from", &d.From}, {"to", &d.To}} {
		if err := checkText(e.name+".path", e.end.Path, MaxTargetPathLen, false); err != nil {
			return err
		}
		if e.end.Length < 0 || e.end.Length > MaxSafeInteger {
			rule := RuleNegativeNumber
			if e.end.Length > 0 {
				rule = RuleNumberOverflow
			}
			return fieldError(e.name+".length", rule, fmt.Sprint(e.end.Length), "")
		}
		if len(e.end.SHA256) == 0 {
			return fieldError(e.name+".sha256", RuleMissingHash, "", "")
		}
		if len(e.end.SHA256) != sha256HexLen/2 {
			return fieldError(e.name+".sha256", RuleMalformedHash, "", fmt.Sprintf("%d bytes, want %d", len(e.end.SHA256), sha256HexLen/2))
		}
	}
	// A self-delta is pointless at best; at worst it lets a patch "update"
	// a device to the image it already runs and burn a boot attempt.
	switch {
	case d.From.Path == d.To.Path:
		return fieldError("to.path", RuleDeltaSameEnds, d.To.Path, "same as from.path")
	case bytes.Equal(d.From.SHA256, d.To.SHA256):
		return fieldError("to.sha256", RuleDeltaSameEnds, "", "same as from.sha256")
	}
	if d.Encryption != nil {
		return d.Encryption.Validate(true)
	}
	return nil
}

func knownSeverity(s Severity) bool {
	switch s {
	case SeverityFeature, SeverityBugfix, SeveritySecurity, SeverityCritical:
		return true
	}
	return false
}

func checkHardwareIDs(ids []string) error {
	const field = "hardware_ids"
	if len(ids) == 0 {
		return fieldError(field, RuleNoHardwareIDs, "", "")
	}
	if len(ids) > MaxHardwareIDs {
		return fieldError(field, RuleTooManyItems, "", fmt.Sprintf("%d (limit %d)", len(ids), MaxHardwareIDs))
	}
	seen := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		if id == "" {
			return fieldError(field, RuleEmptyHardwareID, "", "")
		}
		// Hardware IDs are matched byte for byte against what the device
		// reports: visible ASCII only, so look-alike Unicode or stray
		// whitespace cannot make an ID that never (or wrongly) matches.
		if len(id) > MaxHardwareIDLen {
			return fieldError(field, RuleInvalidText, id, fmt.Sprintf("hardware ID longer than %d bytes", MaxHardwareIDLen))
		}
		for i := 0; i < len(id); i++ {
			if id[i] < 0x21 || id[i] > 0x7e {
				return fieldError(field, RuleInvalidText, id, "hardware ID has a byte outside visible ASCII")
			}
		}
		if _, dup := seen[id]; dup {
			return fieldError(field, RuleDuplicateHardwareID, id, "")
		}
		seen[id] = struct{}{}
	}
	return nil
}

// checkText accepts valid UTF-8 without control characters, at most max
// bytes; multiline text may also hold newlines and tabs. Control bytes in a
// notice would let a publisher rewrite a device's log or terminal. The
// error names the fault, not the text: notes run to kilobytes.
func checkText(field, s string, max int, multiline bool) error {
	switch {
	case s == "":
		return fieldError(field, RuleInvalidText, "", "empty")
	case len(s) > max:
		return fieldError(field, RuleInvalidText, "", fmt.Sprintf("longer than %d bytes", max))
	case !utf8.ValidString(s):
		return fieldError(field, RuleInvalidText, "", "not UTF-8")
	}
	for _, r := range s {
		if multiline && (r == '\n' || r == '\t') {
			continue
		}
		if r < 0x20 || r == 0x7f {
			return fieldError(field, RuleInvalidText, "", fmt.Sprintf("control character %U", r))
		}
	}
	return nil
}

// clip shortens attacker-chosen text before it goes into an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// marshalEntry encodes the otaseal object with a fixed key order and no
// optional field left empty, so that a document has one spelling.
func marshalEntry(e Entry) ([]byte, error) {
	var obj map[string]any
	switch e.Kind {
	case KindFirmware:
		if e.Firmware == nil || e.Delta != nil {
			return nil, fmt.Errorf("manifest: firmware entry needs Firmware only")
		}
		f := e.Firmware
		if err := f.Validate(); err != nil {
			return nil, err
		}
		obj = map[string]any{
			fieldKind:         KindFirmware,
			fieldVersion:      f.Version.String(),
			fieldSecurityVers: f.SecurityVersion,
			"hardware_ids":    f.HardwareIDs,
		}
		if f.Severity != "" {
			obj["severity"] = f.Severity
		}
		if len(f.Advisories) > 0 {
			obj["advisories"] = f.Advisories
		}
		if f.Notes != "" {
			obj["notes"] = f.Notes
		}
		if f.Rollout != nil {
			obj[fieldRollout] = rolloutJSON(f.Rollout)
		}
		if f.Withdrawn != nil {
			obj[fieldWithdrawn] = withdrawalJSON(f.Withdrawn)
		}
		if f.Encryption != nil {
			obj[fieldEncrypt] = encryptionJSON(f.Encryption)
		}
	case KindDelta:
		if e.Delta == nil || e.Firmware != nil {
			return nil, fmt.Errorf("manifest: delta entry needs Delta only")
		}
		d := e.Delta
		if err := d.Validate(); err != nil {
			return nil, err
		}
		end := func(x DeltaEnd) map[string]any {
			return map[string]any{"path": x.Path, "length": x.Length, "sha256": hex.EncodeToString(x.SHA256)}
		}
		obj = map[string]any{fieldKind: KindDelta, "format": d.Format, "from": end(d.From), "to": end(d.To)}
		if d.Encryption != nil {
			obj[fieldEncrypt] = encryptionJSON(d.Encryption)
		}
	default:
		return nil, fieldError(fieldKind, RuleUnknownKind, string(e.Kind), "")
	}
	// encoding/json sorts map keys, which is also the canonical JSON order.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(obj); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
