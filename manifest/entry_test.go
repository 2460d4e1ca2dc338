package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	sumOld = sha256.Sum256([]byte("old image"))
	sumNew = sha256.Sum256([]byte("new image"))
)

func hexOf(b [32]byte) string { return strings.ToLower(HexBytes(b[:]).String()) }

func testFirmware() Firmware {
	return Firmware{
		Version:         MustParseVersion("2.4.1"),
		SecurityVersion: 7,
		HardwareIDs:     []string{"acme-gw-r2", "acme-gw-r3"},
		Severity:        SeveritySecurity,
		Advisories:      []string{"CVE-2026-0001"},
		Notes:           "fixes remote unlock bypass\nand more",
	}
}

func testDelta() Delta {
	return Delta{
		Format: FormatBSDIFF40,
		From:   DeltaEnd{Path: "acme-gw-r2/2.3.0/firmware.bin", Length: 9123456, SHA256: sumOld[:]},
		To:     DeltaEnd{Path: "acme-gw-r2/2.4.1/firmware.bin", Length: 9234567, SHA256: sumNew[:]},
	}
}

func TestEntryRoundTrip(t *testing.T) {
	tf := TargetFile{Length: 1, Hashes: Hashes{"sha256": sumNew[:]}}
	// Another tool's member of custom survives.
	other := json.RawMessage(`{"vendor":{"build":"ci-77"}}`)
	tf.Custom = &other

	require.NoError(t, SetFirmware(&tf, testFirmware()))
	got, err := FirmwareOf(&tf)
	require.NoError(t, err)
	assert.Equal(t, testFirmware(), *got)
	assert.Contains(t, string(*tf.Custom), `"vendor":{"build":"ci-77"}`)
	_, err = DeltaOf(&tf)
	assert.ErrorIs(t, err, ErrWrongKind)

	require.NoError(t, SetDelta(&tf, testDelta()))
	d, err := DeltaOf(&tf)
	require.NoError(t, err)
	assert.Equal(t, testDelta(), *d)
	_, err = FirmwareOf(&tf)
	assert.ErrorIs(t, err, ErrWrongKind)

	// Minimal firmware: optional fields absent on the wire, not empty.
	min := Firmware{Version: MustParseVersion("1.0.0"), HardwareIDs: []string{"x"}}
	require.NoError(t, SetFirmware(&tf, min))
	assert.NotContains(t, string(*tf.Custom), "severity")
	assert.NotContains(t, string(*tf.Custom), "advisories")
	got, err = FirmwareOf(&tf)
	require.NoError(t, err)
	assert.Equal(t, min, *got)
}

func TestEntryWireForm(t *testing.T) {
	var tf TargetFile
	require.NoError(t, SetFirmware(&tf, testFirmware()))
	want := `{"otaseal":{"advisories":["CVE-2026-0001"],"hardware_ids":["acme-gw-r2","acme-gw-r3"],` +
		`"kind":"firmware","notes":"fixes remote unlock bypass\nand more","security_version":7,` +
		`"severity":"security","version":"2.4.1"}}`
	assert.Equal(t, want, string(*tf.Custom))
}

func TestReadEntryPlainTarget(t *testing.T) {
	_, err := ReadEntry(&TargetFile{})
	assert.ErrorIs(t, err, ErrNoOtaseal)
	_, err = ReadEntry(nil)
	assert.ErrorIs(t, err, ErrNoOtaseal)
	raw := json.RawMessage(`{"other":1}`)
	_, err = FirmwareOf(&TargetFile{Custom: &raw})
	assert.ErrorIs(t, err, ErrNoOtaseal)
}

func TestSetEntryRefusesInvalid(t *testing.T) {
	bad := testFirmware()
	bad.HardwareIDs = nil
	tf := TargetFile{}
	assertRule(t, SetFirmware(&tf, bad), "hardware_ids", RuleNoHardwareIDs)
	assert.Nil(t, tf.Custom, "target unchanged on error")

	raw := json.RawMessage(`[1,2]`)
	tf.Custom = &raw
	assertRule(t, SetFirmware(&tf, testFirmware()), "custom", RuleWrongJSONType)
	assert.Equal(t, `[1,2]`, string(*tf.Custom))

	assertRule(t, SetEntry(&tf, Entry{Kind: "bundle"}), "kind", RuleUnknownKind)
	assert.Error(t, SetEntry(&tf, Entry{Kind: KindFirmware}))
	assert.Error(t, SetEntry(&tf, Entry{Kind: KindDelta}))
}

// firmwareJSON returns a valid firmware otaseal object with one member
// replaced (value != "") or removed (value == "").
func firmwareJSON(field, value string) string {
	m := map[string]string{
		"kind": `"firmware"`, "version": `"2.4.1"`, "security_version": `7`,
		"hardware_ids": `["acme-gw-r2"]`, "severity": `"security"`,
		"advisories": `["CVE-2026-0001"]`, "notes": `"n"`,
	}
	if value == "" {
		delete(m, field)
	} else {
		m[field] = value
	}
	return object(m)
}

func deltaJSON(field, value string) string {
	end := func(p string, s [32]byte) string {
		return `{"path":"` + p + `","length":10,"sha256":"` + hexOf(s) + `"}`
	}
	m := map[string]string{
		"kind": `"delta"`, "format": `"otaseal-zstd"`,
		"from": end("a/1.0.0/fw.bin", sumOld), "to": end("a/1.1.0/fw.bin", sumNew),
	}
	if value == "" {
		delete(m, field)
	} else {
		m[field] = value
	}
	return object(m)
}

func object(m map[string]string) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, `"`+k+`":`+v)
	}
	return `{"otaseal":{` + strings.Join(parts, ",") + `}}`
}

// assertRule checks that err is a *FieldError for field breaking rule, and
// so a schema error.
func assertRule(t *testing.T, err error, field string, rule Rule) {
	t.Helper()
	var fe *FieldError
	if assert.ErrorAs(t, err, &fe) {
		assert.Equal(t, rule, fe.Rule, "rule of %v", err)
		assert.Equal(t, field, fe.Field, "field of %v", err)
	}
	assert.ErrorIs(t, err, ErrSchema)
}

// schemaProbe is one row of TestParseCustomErrors: an otaseal object that
// breaks one rule.
type schemaProbe struct {
	name   string
	custom string
	field  string
	rule   Rule  // a schema rule, or
	err    error // a sentinel for what is no schema error
}

// TestParseCustomErrors is the schema's corruption probe: each row breaks
// one rule and must be refused for that rule, on that field.
func TestParseCustomErrors(t *testing.T) {
	endWith := func(path, length, sha string) string {
		return `{"path":"` + path + `","length":` + length + `,"sha256":"` + sha + `"}`
	}
	tests := []schemaProbe{
		{"unknown kind", firmwareJSON("kind", `"bundle"`), "kind", RuleUnknownKind, nil},
		{"kind not string", firmwareJSON("kind", `7`), "kind", RuleWrongJSONType, nil},
		{"missing kind", firmwareJSON("kind", ""), "kind", RuleMissingField, nil},
		{"unknown format", deltaJSON("format", `"vcdiff"`), "format", RuleUnknownFormat, nil},
		{"malformed semver", firmwareJSON("version", `"2.4"`), "version", RuleMalformedVersion, nil},
		{"semver with v", firmwareJSON("version", `"v2.4.1"`), "version", RuleMalformedVersion, nil},
		{"version number", firmwareJSON("version", `2`), "version", RuleWrongJSONType, nil},
		{"missing version", firmwareJSON("version", ""), "version", RuleMissingField, nil},
		{"empty hardware list", firmwareJSON("hardware_ids", `[]`), "hardware_ids", RuleNoHardwareIDs, nil},
		{"empty hardware id", firmwareJSON("hardware_ids", `["a",""]`), "hardware_ids", RuleEmptyHardwareID, nil},
		{"duplicate hardware id", firmwareJSON("hardware_ids", `["a","b","a"]`), "hardware_ids", RuleDuplicateHardwareID, nil},
		{"hardware id with space", firmwareJSON("hardware_ids", `["a b"]`), "hardware_ids", RuleInvalidText, nil},
		{"hardware id null", firmwareJSON("hardware_ids", `null`), "hardware_ids", RuleWrongJSONType, nil},
		{"hardware id element null", firmwareJSON("hardware_ids", `[null]`), "hardware_ids", RuleWrongJSONType, nil},
		{"too many hardware ids", firmwareJSON("hardware_ids", `[`+strings.Repeat(`"x",`, MaxHardwareIDs)+`"y"]`), "hardware_ids", RuleTooManyItems, nil},
		{"negative security version", firmwareJSON("security_version", `-1`), "security_version", RuleNegativeNumber, nil},
		{"negative zero", firmwareJSON("security_version", `-0`), "security_version", RuleNegativeNumber, nil},
		{"fractional security version", firmwareJSON("security_version", `7.5`), "security_version", RuleFractionalNumber, nil},
		{"integer-valued float", firmwareJSON("security_version", `7.0`), "security_version", RuleFractionalNumber, nil},
		{"exponent", firmwareJSON("security_version", `7e0`), "security_version", RuleFractionalNumber, nil},
		{"leading zero (not JSON)", firmwareJSON("security_version", `07`), "", 0, ErrMalformed},
		{"overflowing security version", firmwareJSON("security_version", `18446744073709551616`), "security_version", RuleNumberOverflow, nil},
		{"beyond 2^53", firmwareJSON("security_version", `9007199254740992`), "security_version", RuleNumberOverflow, nil},
		{"security version string", firmwareJSON("security_version", `"7"`), "security_version", RuleWrongJSONType, nil},
		{"unknown firmware field", firmwareJSON("min_bootloader", `"1.0.0"`), "min_bootloader", RuleUnknownField, nil},
		{"unknown delta field", deltaJSON("compression", `"none"`), "compression", RuleUnknownField, nil},
		{"unknown end field", deltaJSON("from", `{"path":"p","length":1,"sha256":"`+hexOf(sumOld)+`","sha1":"x"}`), "from.sha1", RuleUnknownField, nil},
		{"unknown severity", firmwareJSON("severity", `"urgent"`), "severity", RuleUnknownSeverity, nil},
		{"empty severity", firmwareJSON("severity", `""`), "severity", RuleUnknownSeverity, nil},
		{"empty advisories", firmwareJSON("advisories", `[]`), "advisories", RuleInvalidText, nil},
		{"advisory with newline", firmwareJSON("advisories", `["a\nb"]`), "advisories", RuleInvalidText, nil},
		{"notes with escape", firmwareJSON("notes", `"\u001b[2J"`), "notes", RuleInvalidText, nil},
		{"empty notes", firmwareJSON("notes", `""`), "notes", RuleInvalidText, nil},
		{"notes too long", firmwareJSON("notes", `"`+strings.Repeat("n", MaxNotesLen+1)+`"`), "notes", RuleInvalidText, nil},
		{"delta from equals to", deltaJSON("to", endWith("a/1.0.0/fw.bin", "10", hexOf(sumNew))), "to.path", RuleDeltaSameEnds, nil},
		{"delta same hash", deltaJSON("to", endWith("a/1.1.0/fw.bin", "10", hexOf(sumOld))), "to.sha256", RuleDeltaSameEnds, nil},
		{"missing hash", deltaJSON("from", `{"path":"p","length":1}`), "from.sha256", RuleMissingHash, nil},
		{"empty hash", deltaJSON("from", endWith("p", "1", "")), "from.sha256", RuleMissingHash, nil},
		{"short hash", deltaJSON("from", endWith("p", "1", "abcd")), "from.sha256", RuleMalformedHash, nil},
		{"uppercase hash", deltaJSON("from", endWith("p", "1", strings.ToUpper(hexOf(sumOld)))), "from.sha256", RuleMalformedHash, nil},
		{"negative length", deltaJSON("from", endWith("p", "-1", hexOf(sumOld))), "from.length", RuleNegativeNumber, nil},
		{"missing path", deltaJSON("from", `{"length":1,"sha256":"`+hexOf(sumOld)+`"}`), "from.path", RuleMissingField, nil},
		{"empty path", deltaJSON("from", endWith("", "1", hexOf(sumOld))), "from.path", RuleInvalidText, nil},
		{"missing from", deltaJSON("from", ""), "from", RuleMissingField, nil},
		{"end not object", deltaJSON("from", `"p"`), "from", RuleWrongJSONType, nil},
		{"no otaseal", `{"other":{}}`, "", 0, ErrNoOtaseal},
		{"otaseal not object", `{"otaseal":[]}`, "otaseal", RuleWrongJSONType, nil},
		{"custom not object", `"x"`, "custom", RuleWrongJSONType, nil},
		{"duplicate field", `{"otaseal":{"kind":"firmware","version":"1.0.0","security_version":9,"security_version":1,"hardware_ids":["a"]}}`, "security_version", RuleDuplicateField, nil},
		{"duplicate end field", deltaJSON("to", `{"path":"p","length":1,"length":2,"sha256":"`+hexOf(sumNew)+`"}`), "to.length", RuleDuplicateField, nil},
		{"duplicate otaseal", `{"otaseal":{},"otaseal":{}}`, "otaseal", RuleDuplicateField, nil},
		{"trailing data", firmwareJSON("notes", `"n"`) + `{}`, "", 0, ErrMalformed},
		{"truncated", firmwareJSON("notes", `"n"`)[:40], "", 0, ErrMalformed},
		{"too large", `{"pad":"` + strings.Repeat("x", MaxOtasealSize) + `"}`, "", 0, ErrTooLarge},
	}
	tests = append(tests, rolloutProbes()...)
	tests = append(tests, encryptionProbes()...)
	probed := map[Rule]bool{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCustom([]byte(tc.custom))
			require.Error(t, err)
			if tc.err != nil {
				assert.ErrorIs(t, err, tc.err)
				assert.NotErrorIs(t, err, ErrSchema)
				return
			}
			assertRule(t, err, tc.field, tc.rule)
			probed[tc.rule] = true
		})
	}
	for r := RuleUnknownKind; int(r) < len(ruleNames); r++ {
		if r == RuleUnknownControlState || r == RuleControlWidens {
			continue // rollout control rules: TestParseControlRefuses, TestControlOfRefusesWideningDocuments
		}
		assert.True(t, probed[r], "no probe breaks %v", r)
	}
}

// Rules are told apart by value and by name: no two may differ only in a
// message's wording, and none is left unnamed.
func TestRuleNames(t *testing.T) {
	seen := map[string]Rule{}
	for r := RuleUnknownKind; int(r) < len(ruleNames); r++ {
		name := r.String()
		assert.NotEmpty(t, name)
		assert.NotContains(t, name, "rule(", "%d has no name", int(r))
		if prev, dup := seen[name]; dup {
			t.Errorf("%d and %d are both named %q", int(prev), int(r), name)
		}
		seen[name] = r
	}
	assert.Equal(t, "rule(0)", Rule(0).String())
	assert.Equal(t, "rule(999)", Rule(999).String())
}

func TestFieldErrorMessage(t *testing.T) {
	_, err := ParseCustom([]byte(firmwareJSON("security_version", "-3")))
	assert.EqualError(t, err, `manifest: otaseal field "security_version": negative number "-3"`)
	_, err = ParseCustom([]byte(firmwareJSON("hardware_ids", `["a","a"]`)))
	assert.EqualError(t, err, `manifest: otaseal field "hardware_ids": duplicate hardware ID "a"`)
	_, err = ParseCustom([]byte(firmwareJSON("notes", `"\u001b[2J"`)))
	assert.EqualError(t, err, `manifest: otaseal field "notes": invalid text: control character U+001B`)

	// A hostile spelling is kept and shown clipped, and control bytes quoted.
	long := strings.Repeat("9", 1000)
	_, err = ParseCustom([]byte(firmwareJSON("security_version", long)))
	var fe *FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, RuleNumberOverflow, fe.Rule)
	assert.True(t, strings.HasPrefix(long, strings.TrimSuffix(fe.Value, "...")), "Value is the spelling: %q", fe.Value)
	assert.Less(t, len(fe.Value), 100)
	assert.Less(t, len(err.Error()), 200)
	fe = &FieldError{Field: "kind", Rule: RuleUnknownKind, Value: "\x1b[2J" + long}
	assert.NotContains(t, fe.Error(), "\x1b")
	assert.Less(t, len(fe.Error()), 200, "clipped even when built outside this package")
	assert.False(t, errors.Is(fe, ErrMalformed), "a schema error is no other class")
}

func TestParseCustomValid(t *testing.T) {
	e, err := ParseCustom([]byte(firmwareJSON("security_version", `0`)))
	require.NoError(t, err)
	assert.Equal(t, KindFirmware, e.Kind)
	assert.Equal(t, uint64(0), e.Firmware.SecurityVersion)
	e, err = ParseCustom([]byte(firmwareJSON("security_version", `9007199254740991`)))
	require.NoError(t, err)
	assert.Equal(t, uint64(MaxSafeInteger), e.Firmware.SecurityVersion)

	e, err = ParseCustom([]byte(deltaJSON("format", `"bsdiff40"`)))
	require.NoError(t, err)
	require.Equal(t, KindDelta, e.Kind)
	assert.Equal(t, FormatBSDIFF40, e.Delta.Format)
	assert.Equal(t, sumOld[:], e.Delta.From.SHA256)
	assert.Equal(t, int64(10), e.Delta.To.Length)

	// Whitespace and key order are free; meaning is not.
	spaced := bytes.ReplaceAll([]byte(firmwareJSON("notes", "")), []byte(","), []byte(" ,\n\t"))
	_, err = ParseCustom(spaced)
	assert.NoError(t, err)
}

func TestValidateDirect(t *testing.T) {
	f := testFirmware()
	f.SecurityVersion = MaxSafeInteger + 1
	assertRule(t, f.Validate(), "security_version", RuleNumberOverflow)
	f = testFirmware()
	f.Version = Version{}
	assertRule(t, f.Validate(), "version", RuleMalformedVersion)
	f = testFirmware()
	f.Advisories = make([]string, MaxAdvisories+1)
	assertRule(t, f.Validate(), "advisories", RuleTooManyItems)
	f = testFirmware()
	f.Advisories = []string{""}
	assertRule(t, f.Validate(), "advisories", RuleInvalidText)
	f = testFirmware()
	f.HardwareIDs = []string{strings.Repeat("h", MaxHardwareIDLen+1)}
	assertRule(t, f.Validate(), "hardware_ids", RuleInvalidText)
	f = testFirmware()
	f.Notes = "\xff"
	assertRule(t, f.Validate(), "notes", RuleInvalidText)
	f = testFirmware()
	f.Severity = "urgent"
	assertRule(t, f.Validate(), "severity", RuleUnknownSeverity)
	assert.True(t, f.Supports("acme-gw-r3"))
	assert.False(t, f.Supports("acme-gw-r9"))

	d := testDelta()
	d.From.Length = -1
	assertRule(t, d.Validate(), "from.length", RuleNegativeNumber)
	d = testDelta()
	d.To.Length = MaxSafeInteger + 1
	assertRule(t, d.Validate(), "to.length", RuleNumberOverflow)
	d = testDelta()
	d.To.SHA256 = nil
	assertRule(t, d.Validate(), "to.sha256", RuleMissingHash)
	d = testDelta()
	d.To.SHA256 = []byte{1}
	assertRule(t, d.Validate(), "to.sha256", RuleMalformedHash)
	d = testDelta()
	d.Format = "vcdiff"
	assertRule(t, d.Validate(), "format", RuleUnknownFormat)
	d = testDelta()
	d.To.Path = "a\nb"
	assertRule(t, d.Validate(), "to.path", RuleInvalidText)
}
