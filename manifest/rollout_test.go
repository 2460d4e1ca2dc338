package manifest

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var rolloutStart = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testRollout is 1% at once, 10% after a day, 50% after three, all after
// a week.
func testRollout() *Rollout {
	return &Rollout{Start: rolloutStart, Waves: []Wave{
		{0, 100}, {24 * time.Hour, 1000}, {72 * time.Hour, 5000}, {7 * 24 * time.Hour, FullShare},
	}}
}

const testRolloutWire = `{"start":"2026-03-01T12:00:00Z","waves":[` +
	`{"basis_points":100,"offset_seconds":0},{"basis_points":1000,"offset_seconds":86400},` +
	`{"basis_points":5000,"offset_seconds":259200},{"basis_points":10000,"offset_seconds":604800}]}`

func TestRolloutRoundTrip(t *testing.T) {
	f := testFirmware()
	f.Rollout = testRollout()
	f.Withdrawn = &Withdrawal{Reason: "bricks units with flash rev B", Advisories: []string{"OTS-2026-7"}}
	var tf TargetFile
	require.NoError(t, SetFirmware(&tf, f))
	assert.Contains(t, string(*tf.Custom), `"rollout":`+testRolloutWire)
	assert.Contains(t, string(*tf.Custom), `"withdrawn":{"advisories":["OTS-2026-7"],"reason":"bricks units with flash rev B"}`)
	got, err := FirmwareOf(&tf)
	require.NoError(t, err)
	assert.Equal(t, f, *got)
	assert.True(t, got.Rollout.Start.Equal(rolloutStart))

	// A withdrawal without advisories has no empty list on the wire.
	f.Withdrawn = &Withdrawal{Reason: "r"}
	require.NoError(t, SetFirmware(&tf, f))
	assert.Contains(t, string(*tf.Custom), `"withdrawn":{"reason":"r"}`)
	got, err = FirmwareOf(&tf)
	require.NoError(t, err)
	assert.Equal(t, f, *got)
}

// A document written before rollouts existed reads as an immediate,
// published release.
func TestRolloutAbsentIsImmediate(t *testing.T) {
	e, err := ParseCustom([]byte(firmwareJSON("notes", "")))
	require.NoError(t, err)
	assert.Nil(t, e.Firmware.Rollout)
	assert.Nil(t, e.Firmware.Withdrawn)
	assert.True(t, e.Firmware.Rollout.Eligible("a/1.0.0/fw.bin", "dev", time.Time{}))
}

func TestRolloutValidate(t *testing.T) {
	edit := func(change func(r *Rollout)) *Rollout {
		r := testRollout()
		change(r)
		return r
	}
	tests := []struct {
		name  string
		r     *Rollout
		field string
		rule  Rule
	}{
		{"zero start", edit(func(r *Rollout) { r.Start = time.Time{} }), "rollout.start", RuleMalformedTime},
		{"local start", edit(func(r *Rollout) { r.Start = r.Start.In(time.FixedZone("X", 3600)) }), "rollout.start", RuleMalformedTime},
		{"fractional start", edit(func(r *Rollout) { r.Start = r.Start.Add(time.Millisecond) }), "rollout.start", RuleMalformedTime},
		{"no waves", edit(func(r *Rollout) { r.Waves = nil }), "rollout.waves", RuleLastWaveNotFull},
		{"too many waves", edit(func(r *Rollout) { r.Waves = make([]Wave, MaxWaves+1) }), "rollout.waves", RuleTooManyItems},
		{"negative offset", edit(func(r *Rollout) { r.Waves[0].Offset = -time.Second }), "rollout.waves[0].offset_seconds", RuleNegativeNumber},
		{"offset too far", edit(func(r *Rollout) { r.Waves[3].Offset = MaxWaveOffset + time.Second }), "rollout.waves[3].offset_seconds", RuleNumberOverflow},
		{"fractional offset", edit(func(r *Rollout) { r.Waves[1].Offset += time.Millisecond }), "rollout.waves[1].offset_seconds", RuleFractionalNumber},
		{"negative share", edit(func(r *Rollout) { r.Waves[0].Share = -1 }), "rollout.waves[0].basis_points", RuleShareOutOfRange},
		{"share too large", edit(func(r *Rollout) { r.Waves[3].Share = FullShare + 1 }), "rollout.waves[3].basis_points", RuleShareOutOfRange},
		{"equal offsets", edit(func(r *Rollout) { r.Waves[2].Offset = r.Waves[1].Offset }), "rollout.waves[2].offset_seconds", RuleWaveOrder},
		{"earlier offset", edit(func(r *Rollout) { r.Waves[2].Offset = time.Hour }), "rollout.waves[2].offset_seconds", RuleWaveOrder},
		{"falling share", edit(func(r *Rollout) { r.Waves[2].Share = 500 }), "rollout.waves[2].basis_points", RuleWaveOrder},
		{"last below full", edit(func(r *Rollout) { r.Waves[3].Share = 9999 }), "rollout.waves[3].basis_points", RuleLastWaveNotFull},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assertRule(t, tc.r.Validate(), tc.field, tc.rule)
			f := testFirmware()
			f.Rollout = tc.r
			var tf TargetFile
			assertRule(t, SetFirmware(&tf, f), tc.field, tc.rule)
			assert.Nil(t, tf.Custom, "nothing written")
		})
	}
	// Equal shares in later waves are a pause written into the schedule.
	r := edit(func(r *Rollout) { r.Waves[2].Share = r.Waves[1].Share })
	assert.NoError(t, r.Validate())
	one := &Rollout{Start: rolloutStart, Waves: []Wave{{0, FullShare}}}
	assert.NoError(t, one.Validate())

	w := &Withdrawal{}
	assertRule(t, w.Validate(), "withdrawn.reason", RuleInvalidText)
	w = &Withdrawal{Reason: "x", Advisories: make([]string, MaxAdvisories+1)}
	assertRule(t, w.Validate(), "withdrawn.advisories", RuleTooManyItems)
	w = &Withdrawal{Reason: strings.Repeat("r", MaxWithdrawalReasonLen+1)}
	assertRule(t, w.Validate(), "withdrawn.reason", RuleInvalidText)
}

// rolloutWith returns the test rollout's wire form with one member of the
// rollout object replaced, as a firmware custom object.
func rolloutWith(field, value string) string {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(testRolloutWire), &m); err != nil {
		panic(err)
	}
	if value == "" {
		delete(m, field)
	} else {
		m[field] = json.RawMessage(value)
	}
	out, _ := json.Marshal(m)
	return firmwareJSON("rollout", string(out))
}

// wavesJSON spells waves as "offset:share" pairs.
func wavesJSON(pairs ...string) string {
	var parts []string
	for _, p := range pairs {
		off, share, _ := strings.Cut(p, ":")
		parts = append(parts, fmt.Sprintf(`{"offset_seconds":%s,"basis_points":%s}`, off, share))
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// rolloutProbes are the rollout and withdrawal rows of the schema's
// corruption probe (TestParseCustomErrors).
func rolloutProbes() []schemaProbe {
	tooMany := make([]string, MaxWaves+1)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf("%d:%d", i, FullShare)
	}
	return []schemaProbe{
		{"rollout not object", firmwareJSON("rollout", `[]`), "rollout", RuleWrongJSONType, nil},
		{"rollout null", firmwareJSON("rollout", `null`), "rollout", RuleWrongJSONType, nil},
		{"rollout unknown field", rolloutWith("pause", `true`), "rollout.pause", RuleUnknownField, nil},
		{"rollout missing start", rolloutWith("start", ""), "rollout.start", RuleMissingField, nil},
		{"rollout missing waves", rolloutWith("waves", ""), "rollout.waves", RuleMissingField, nil},
		{"rollout duplicate start", firmwareJSON("rollout", `{"start":"2026-03-01T12:00:00Z","start":"2027-03-01T12:00:00Z","waves":`+wavesJSON("0:10000")+`}`), "rollout.start", RuleDuplicateField, nil},
		{"start with offset", rolloutWith("start", `"2026-03-01T12:00:00+00:00"`), "rollout.start", RuleMalformedTime, nil},
		{"start with fraction", rolloutWith("start", `"2026-03-01T12:00:00.0Z"`), "rollout.start", RuleMalformedTime, nil},
		{"start lowercase", rolloutWith("start", `"2026-03-01t12:00:00z"`), "rollout.start", RuleMalformedTime, nil},
		{"start not a date", rolloutWith("start", `"tomorrow"`), "rollout.start", RuleMalformedTime, nil},
		{"start year zero", rolloutWith("start", `"0000-01-01T00:00:00Z"`), "rollout.start", RuleMalformedTime, nil},
		{"start zero time", rolloutWith("start", `"0001-01-01T00:00:00Z"`), "rollout.start", RuleMalformedTime, nil},
		{"start number", rolloutWith("start", `1772366400`), "rollout.start", RuleWrongJSONType, nil},
		{"waves not list", rolloutWith("waves", `{}`), "rollout.waves", RuleWrongJSONType, nil},
		{"no waves", rolloutWith("waves", `[]`), "rollout.waves", RuleLastWaveNotFull, nil},
		{"too many waves", rolloutWith("waves", wavesJSON(tooMany...)), "rollout.waves", RuleTooManyItems, nil},
		{"wave not object", rolloutWith("waves", `[1]`), "rollout.waves[0]", RuleWrongJSONType, nil},
		{"wave unknown field", rolloutWith("waves", `[{"offset_seconds":0,"basis_points":10000,"percent":100}]`), "rollout.waves[0].percent", RuleUnknownField, nil},
		{"wave duplicate field", rolloutWith("waves", `[{"offset_seconds":0,"basis_points":1,"basis_points":10000}]`), "rollout.waves[0].basis_points", RuleDuplicateField, nil},
		{"wave missing share", rolloutWith("waves", `[{"offset_seconds":0}]`), "rollout.waves[0].basis_points", RuleMissingField, nil},
		{"wave missing offset", rolloutWith("waves", `[{"basis_points":10000}]`), "rollout.waves[0].offset_seconds", RuleMissingField, nil},
		{"negative offset", rolloutWith("waves", wavesJSON("-1:10000")), "rollout.waves[0].offset_seconds", RuleNegativeNumber, nil},
		{"fractional offset", rolloutWith("waves", wavesJSON("1.5:10000")), "rollout.waves[0].offset_seconds", RuleFractionalNumber, nil},
		{"offset too far", rolloutWith("waves", wavesJSON(fmt.Sprint(int64(MaxWaveOffset/time.Second)+1)+":10000")), "rollout.waves[0].offset_seconds", RuleNumberOverflow, nil},
		{"offset as duration text", rolloutWith("waves", `[{"offset_seconds":"24h","basis_points":10000}]`), "rollout.waves[0].offset_seconds", RuleWrongJSONType, nil},
		{"negative share", rolloutWith("waves", wavesJSON("0:-1", "1:10000")), "rollout.waves[0].basis_points", RuleNegativeNumber, nil},
		{"share too large", rolloutWith("waves", wavesJSON("0:10001")), "rollout.waves[0].basis_points", RuleShareOutOfRange, nil},
		{"share as percent fraction", rolloutWith("waves", wavesJSON("0:0.5", "1:10000")), "rollout.waves[0].basis_points", RuleFractionalNumber, nil},
		{"offsets repeat", rolloutWith("waves", wavesJSON("0:100", "0:10000")), "rollout.waves[1].offset_seconds", RuleWaveOrder, nil},
		{"offsets fall", rolloutWith("waves", wavesJSON("0:100", "90:200", "60:10000")), "rollout.waves[2].offset_seconds", RuleWaveOrder, nil},
		{"share falls", rolloutWith("waves", wavesJSON("0:500", "60:100", "90:10000")), "rollout.waves[1].basis_points", RuleWaveOrder, nil},
		{"last below full", rolloutWith("waves", wavesJSON("0:100", "60:9999")), "rollout.waves[1].basis_points", RuleLastWaveNotFull, nil},
		{"withdrawn not object", firmwareJSON("withdrawn", `true`), "withdrawn", RuleWrongJSONType, nil},
		{"withdrawn without reason", firmwareJSON("withdrawn", `{}`), "withdrawn.reason", RuleMissingField, nil},
		{"withdrawn empty reason", firmwareJSON("withdrawn", `{"reason":""}`), "withdrawn.reason", RuleInvalidText, nil},
		{"withdrawn reason with escape", firmwareJSON("withdrawn", `{"reason":"\u001b[2J"}`), "withdrawn.reason", RuleInvalidText, nil},
		{"withdrawn unknown field", firmwareJSON("withdrawn", `{"reason":"r","until":"x"}`), "withdrawn.until", RuleUnknownField, nil},
		{"withdrawn empty advisories", firmwareJSON("withdrawn", `{"reason":"r","advisories":[]}`), "withdrawn.advisories", RuleInvalidText, nil},
		{"withdrawn advisory number", firmwareJSON("withdrawn", `{"reason":"r","advisories":[7]}`), "withdrawn.advisories", RuleWrongJSONType, nil},
		{"withdrawn duplicate reason", firmwareJSON("withdrawn", `{"reason":"r","reason":"s"}`), "withdrawn.reason", RuleDuplicateField, nil},
		{"wave nested too deep", rolloutWith("waves", `[{"offset_seconds":{"x":{}},"basis_points":10000}]`), "rollout.waves[0].offset_seconds", RuleWrongJSONType, nil},
	}
}

// TestRolloutCorruption flips every byte of a valid rollout object: each
// variant is refused or, if still valid, means a schedule that itself
// validates and writes back to the same bytes.
func TestRolloutCorruption(t *testing.T) {
	valid := []byte(firmwareJSON("rollout", testRolloutWire))
	for i := range valid {
		for _, flip := range []byte{0x01, 0x20} {
			b := append([]byte(nil), valid...)
			b[i] ^= flip
			e, err := ParseCustom(b)
			if err != nil {
				continue
			}
			require.NotNil(t, e.Firmware, "byte %d", i)
			if r := e.Firmware.Rollout; r != nil {
				assert.NoError(t, r.Validate(), "byte %d: %s", i, b)
			}
			var tf TargetFile
			require.NoError(t, SetEntry(&tf, e), "byte %d", i)
			again, err := ReadEntry(&tf)
			require.NoError(t, err)
			assert.Equal(t, e, again, "byte %d", i)
		}
	}
}

func TestFormatShareOffset(t *testing.T) {
	for bp, want := range map[int]string{10000: "100%", 1000: "10%", 1250: "12.5%", 5: "0.05%", 1: "0.01%"} {
		assert.Equal(t, want, FormatShare(bp), bp)
	}
	for d, want := range map[time.Duration]string{0: "0h", time.Hour: "1h", 36 * time.Hour: "36h", 48 * time.Hour: "2d", 90 * time.Minute: "1h30m0s"} {
		assert.Equal(t, want, FormatOffset(d), d)
	}
}

func TestCurrentWave(t *testing.T) {
	start := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	r := &Rollout{Start: start, Waves: []Wave{{Offset: 0, Share: 100}, {Offset: 24 * time.Hour, Share: 1000}, {Offset: 7 * 24 * time.Hour, Share: FullShare}}}
	for at, want := range map[time.Duration]int{-time.Second: -1, 0: 0, 24*time.Hour - time.Second: 0, 24 * time.Hour: 1, 30 * 24 * time.Hour: 2} {
		assert.Equal(t, want, r.CurrentWave(start.Add(at)), at)
	}
	assert.Equal(t, -1, (*Rollout)(nil).CurrentWave(start))
}
