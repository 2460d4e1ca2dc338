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
	assert.ErrorIs(t, SetFirmware(&tf, bad), ErrNoHardwareIDs)
	assert.Nil(t, tf.Custom, "target unchanged on error")

	raw := json.RawMessage(`[1,2]`)
	tf.Custom = &raw
	assert.ErrorIs(t, SetFirmware(&tf, testFirmware()), ErrFieldType)
	assert.Equal(t, `[1,2]`, string(*tf.Custom))

	assert.ErrorIs(t, SetEntry(&tf, Entry{Kind: "bundle"}), ErrUnknownKind)
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

func TestParseCustomErrors(t *testing.T) {
	endWith := func(path, length, sha string) string {
		return `{"path":"` + path + `","length":` + length + `,"sha256":"` + sha + `"}`
	}
	tests := []struct {
		name   string
		custom string
		want   error
	}{
		{"unknown kind", firmwareJSON("kind", `"bundle"`), ErrUnknownKind},
		{"kind not string", firmwareJSON("kind", `7`), ErrFieldType},
		{"missing kind", firmwareJSON("kind", ""), ErrMissingField},
		{"unknown format", deltaJSON("format", `"vcdiff"`), ErrUnknownFormat},
		{"malformed semver", firmwareJSON("version", `"2.4"`), ErrMalformedVersion},
		{"semver with v", firmwareJSON("version", `"v2.4.1"`), ErrMalformedVersion},
		{"version number", firmwareJSON("version", `2`), ErrFieldType},
		{"missing version", firmwareJSON("version", ""), ErrMissingField},
		{"empty hardware list", firmwareJSON("hardware_ids", `[]`), ErrNoHardwareIDs},
		{"empty hardware id", firmwareJSON("hardware_ids", `["a",""]`), ErrEmptyHardwareID},
		{"duplicate hardware id", firmwareJSON("hardware_ids", `["a","b","a"]`), ErrDuplicateHardwareID},
		{"hardware id with space", firmwareJSON("hardware_ids", `["a b"]`), ErrInvalidText},
		{"hardware id null", firmwareJSON("hardware_ids", `null`), ErrFieldType},
		{"hardware id element null", firmwareJSON("hardware_ids", `[null]`), ErrFieldType},
		{"too many hardware ids", firmwareJSON("hardware_ids", `[`+strings.Repeat(`"x",`, MaxHardwareIDs)+`"y"]`), ErrTooManyItems},
		{"negative security version", firmwareJSON("security_version", `-1`), ErrNegativeNumber},
		{"negative zero", firmwareJSON("security_version", `-0`), ErrNegativeNumber},
		{"fractional security version", firmwareJSON("security_version", `7.5`), ErrFractionalNumber},
		{"integer-valued float", firmwareJSON("security_version", `7.0`), ErrFractionalNumber},
		{"exponent", firmwareJSON("security_version", `7e0`), ErrFractionalNumber},
		{"leading zero (not JSON)", firmwareJSON("security_version", `07`), ErrMalformed},
		{"overflowing security version", firmwareJSON("security_version", `18446744073709551616`), ErrNumberOverflow},
		{"beyond 2^53", firmwareJSON("security_version", `9007199254740992`), ErrNumberOverflow},
		{"security version string", firmwareJSON("security_version", `"7"`), ErrFieldType},
		{"unknown firmware field", firmwareJSON("min_bootloader", `"1.0.0"`), ErrUnknownField},
		{"unknown delta field", deltaJSON("compression", `"none"`), ErrUnknownField},
		{"unknown end field", deltaJSON("from", `{"path":"p","length":1,"sha256":"`+hexOf(sumOld)+`","sha1":"x"}`), ErrUnknownField},
		{"unknown severity", firmwareJSON("severity", `"urgent"`), ErrUnknownSeverity},
		{"empty severity", firmwareJSON("severity", `""`), ErrUnknownSeverity},
		{"empty advisories", firmwareJSON("advisories", `[]`), ErrInvalidText},
		{"advisory with newline", firmwareJSON("advisories", `["a\nb"]`), ErrInvalidText},
		{"notes with escape", firmwareJSON("notes", `"\u001b[2J"`), ErrInvalidText},
		{"empty notes", firmwareJSON("notes", `""`), ErrInvalidText},
		{"notes too long", firmwareJSON("notes", `"`+strings.Repeat("n", MaxNotesLen+1)+`"`), ErrInvalidText},
		{"delta from equals to", deltaJSON("to", endWith("a/1.0.0/fw.bin", "10", hexOf(sumNew))), ErrDeltaSameEnds},
		{"delta same hash", deltaJSON("to", endWith("a/1.1.0/fw.bin", "10", hexOf(sumOld))), ErrDeltaSameEnds},
		{"missing hash", deltaJSON("from", `{"path":"p","length":1}`), ErrMissingHash},
		{"empty hash", deltaJSON("from", endWith("p", "1", "")), ErrMissingHash},
		{"short hash", deltaJSON("from", endWith("p", "1", "abcd")), ErrMalformedHash},
		{"uppercase hash", deltaJSON("from", endWith("p", "1", strings.ToUpper(hexOf(sumOld)))), ErrMalformedHash},
		{"negative length", deltaJSON("from", endWith("p", "-1", hexOf(sumOld))), ErrNegativeNumber},
		{"missing path", deltaJSON("from", `{"length":1,"sha256":"`+hexOf(sumOld)+`"}`), ErrMissingField},
		{"empty path", deltaJSON("from", endWith("", "1", hexOf(sumOld))), ErrInvalidText},
		{"missing from", deltaJSON("from", ""), ErrMissingField},
		{"end not object", deltaJSON("from", `"p"`), ErrFieldType},
		{"no otaseal", `{"other":{}}`, ErrNoOtaseal},
		{"otaseal not object", `{"otaseal":[]}`, ErrFieldType},
		{"custom not object", `"x"`, ErrFieldType},
		{"duplicate field", `{"otaseal":{"kind":"firmware","version":"1.0.0","security_version":9,"security_version":1,"hardware_ids":["a"]}}`, ErrDuplicateField},
		{"duplicate otaseal", `{"otaseal":{},"otaseal":{}}`, ErrDuplicateField},
		{"trailing data", firmwareJSON("notes", `"n"`) + `{}`, ErrMalformed},
		{"truncated", firmwareJSON("notes", `"n"`)[:40], ErrMalformed},
		{"too large", `{"pad":"` + strings.Repeat("x", MaxOtasealSize) + `"}`, ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCustom([]byte(tc.custom))
			require.Error(t, err)
			assert.ErrorIs(t, err, tc.want)
		})
	}
}

// Each rule has its own error: no two rows of the table above may be told
// apart only by message text.
func TestSchemaErrorsAreDistinct(t *testing.T) {
	all := []error{ErrUnknownKind, ErrUnknownFormat, ErrMalformedVersion, ErrNoHardwareIDs,
		ErrEmptyHardwareID, ErrDuplicateHardwareID, ErrNegativeNumber, ErrFractionalNumber,
		ErrNumberOverflow, ErrDeltaSameEnds, ErrMissingHash, ErrUnknownField, ErrDuplicateField}
	for i, a := range all {
		for j, b := range all {
			if i != j {
				assert.False(t, errors.Is(a, b), "%v is %v", a, b)
			}
		}
	}
	var ne *NumberError
	_, err := ParseCustom([]byte(firmwareJSON("security_version", "-3")))
	require.ErrorAs(t, err, &ne)
	assert.Equal(t, "security_version", ne.Field)
	assert.ErrorIs(t, err, ErrInvalidNumber)
	var fe *FieldError
	_, err = ParseCustom([]byte(firmwareJSON("hardware_ids", `[]`)))
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "hardware_ids", fe.Field)
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
	assert.ErrorIs(t, f.Validate(), ErrNumberOverflow)
	f = testFirmware()
	f.Version = Version{}
	assert.ErrorIs(t, f.Validate(), ErrMalformedVersion)
	f = testFirmware()
	f.Advisories = make([]string, MaxAdvisories+1)
	assert.ErrorIs(t, f.Validate(), ErrTooManyItems)
	f = testFirmware()
	f.HardwareIDs = []string{strings.Repeat("h", MaxHardwareIDLen+1)}
	assert.ErrorIs(t, f.Validate(), ErrInvalidText)
	f = testFirmware()
	f.Notes = "\xff"
	assert.ErrorIs(t, f.Validate(), ErrInvalidText)
	assert.True(t, f.Supports("acme-gw-r3"))
	assert.False(t, f.Supports("acme-gw-r9"))

	d := testDelta()
	d.From.Length = -1
	assert.ErrorIs(t, d.Validate(), ErrNegativeNumber)
	d = testDelta()
	d.To.Length = MaxSafeInteger + 1
	assert.ErrorIs(t, d.Validate(), ErrNumberOverflow)
	d = testDelta()
	d.To.SHA256 = nil
	assert.ErrorIs(t, d.Validate(), ErrMissingHash)
	d = testDelta()
	d.To.SHA256 = []byte{1}
	assert.ErrorIs(t, d.Validate(), ErrMalformedHash)
}
