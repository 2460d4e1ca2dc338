package manifest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

const controlPath = "acme-gw-r2/2.4.1/firmware.bin"

func controlJSON(entry string) string {
	return fmt.Sprintf(`{"otaseal-control":{%q:%s}}`, controlPath, entry)
}

func TestParseControlAccepts(t *testing.T) {
	tests := []struct {
		in   string
		want ReleaseControl
	}{
		{controlJSON(`{"state":"paused"}`), ReleaseControl{State: ControlPaused}},
		{controlJSON(`{"state":"stopped","reason":"bricks rev B"}`), ReleaseControl{State: ControlStopped, Reason: "bricks rev B"}},
		{controlJSON(`{"state":"capped","cap_basis_points":0}`), ReleaseControl{State: ControlCapped}},
		{controlJSON(`{"state":"capped","cap_basis_points":10000}`), ReleaseControl{State: ControlCapped, CapShare: FullShare}},
	}
	for _, tt := range tests {
		got, err := ParseControl([]byte(tt.in))
		require.NoError(t, err, tt.in)
		assert.Equal(t, map[string]ReleaseControl{controlPath: tt.want}, got.Releases)
		again, err := MarshalControl(*got)
		require.NoError(t, err)
		back, err := ParseControl(again)
		require.NoError(t, err)
		assert.Equal(t, got, back)
	}
	empty, err := ParseControl([]byte(`{"otaseal-control":{}}`))
	require.NoError(t, err)
	assert.Empty(t, empty.Releases)
}

// TestParseControlRefuses: every way a control entry could say more than
// "hold back" is refused, with the rule that names it.
func TestParseControlRefuses(t *testing.T) {
	tests := []struct {
		name string
		in   string
		rule Rule
	}{
		{"cap above full share", controlJSON(`{"state":"capped","cap_basis_points":10001}`), RuleShareOutOfRange},
		{"negative cap", controlJSON(`{"state":"capped","cap_basis_points":-1}`), RuleNegativeNumber},
		{"fractional cap", controlJSON(`{"state":"capped","cap_basis_points":50.5}`), RuleFractionalNumber},
		{"cap without capped", controlJSON(`{"state":"paused","cap_basis_points":100}`), RuleUnknownField},
		{"capped without cap", controlJSON(`{"state":"capped"}`), RuleMissingField},
		{"unknown state", controlJSON(`{"state":"resumed"}`), RuleUnknownControlState},
		{"state widened", controlJSON(`{"state":"full"}`), RuleUnknownControlState},
		{"no state", controlJSON(`{"reason":"x"}`), RuleMissingField},
		{"start smuggled", controlJSON(`{"state":"capped","cap_basis_points":100,"start":"2020-01-01T00:00:00Z"}`), RuleUnknownField},
		{"offset smuggled", controlJSON(`{"state":"paused","offset_seconds":0}`), RuleUnknownField},
		{"share smuggled", controlJSON(`{"state":"paused","basis_points":10000}`), RuleUnknownField},
		{"waves smuggled", controlJSON(`{"state":"paused","waves":[]}`), RuleUnknownField},
		{"repeated state", controlJSON(`{"state":"paused","state":"capped"}`), RuleDuplicateField},
		{"empty reason", controlJSON(`{"state":"paused","reason":""}`), RuleInvalidText},
		{"multi-line reason", controlJSON(`{"state":"paused","reason":"a\nb"}`), RuleInvalidText},
		{"long reason", controlJSON(`{"state":"paused","reason":"` + strings.Repeat("r", MaxControlReasonLen+1) + `"}`), RuleInvalidText},
		{"empty path", `{"otaseal-control":{"":{"state":"paused"}}}`, RuleInvalidText},
		{"entry not an object", controlJSON(`"paused"`), RuleWrongJSONType},
		{"state not a string", controlJSON(`{"state":1}`), RuleWrongJSONType},
		{"other member", `{"otaseal-control":{},"targets":{}}`, RuleUnknownField},
		{"no control member", `{}`, RuleMissingField},
		{"control not an object", `{"otaseal-control":[]}`, RuleWrongJSONType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseControl([]byte(tt.in))
			var fe *FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tt.rule, fe.Rule, "%v", err)
			assert.ErrorIs(t, err, ErrSchema)
		})
	}
}

func TestParseControlLimits(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"otaseal-control":{`)
	for i := 0; i <= MaxControlEntries; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"p/%d":{"state":"paused"}`, i)
	}
	b.WriteString(`}}`)
	_, err := ParseControl([]byte(b.String()))
	var fe *FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, RuleTooManyItems, fe.Rule)

	_, err = ParseControl(make([]byte, MaxControlSize+1))
	assert.ErrorIs(t, err, ErrTooLarge)
	_, err = ParseControl([]byte(`{"otaseal-control":`))
	assert.ErrorIs(t, err, ErrMalformed)
}

// TestControlOfRefusesWideningDocuments: a control document that lists a
// target or delegates is refused as a whole, whatever its controls say.
func TestControlOfRefusesWideningDocuments(t *testing.T) {
	base := func() *Targets {
		doc := metadata.Targets(time.Now()).Signed
		require.NoError(t, SetControl(&doc, Control{Releases: map[string]ReleaseControl{controlPath: {State: ControlPaused}}}))
		return &doc
	}
	doc := base()
	got, err := ControlOf(doc)
	require.NoError(t, err)
	assert.Equal(t, ControlPaused, got.Releases[controlPath].State)

	tests := []struct {
		name string
		edit func(*Targets)
		rule Rule
	}{
		{"lists a firmware target", func(d *Targets) {
			d.Targets[controlPath] = &TargetFile{Length: 1, Hashes: Hashes{"sha256": make([]byte, 32)}}
		}, RuleControlWidens},
		{"delegates", func(d *Targets) {
			d.Delegations = &Delegations{Roles: []DelegatedRole{{Name: "x", Paths: []string{"*"}}}}
		}, RuleControlWidens},
		{"other signed member", func(d *Targets) { d.UnrecognizedFields["rollout"] = map[string]any{} }, RuleUnknownField},
		{"bad control", func(d *Targets) {
			d.UnrecognizedFields[ControlField] = map[string]any{ControlKey: map[string]any{controlPath: map[string]any{"state": "capped", "cap_basis_points": 20000}}}
		}, RuleShareOutOfRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := base()
			tt.edit(d)
			_, err := ControlOf(d)
			var fe *FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tt.rule, fe.Rule, "%v", err)
		})
	}

	plain := metadata.Targets(time.Now()).Signed
	got, err = ControlOf(&plain)
	require.NoError(t, err)
	assert.Empty(t, got.Releases, "a document without a control controls nothing")
}

// TestNarrowNeverWidens: over 10,000 IDs, the control never makes a device
// eligible earlier than the schedule, and a cap above the schedule's share
// leaves the schedule in force.
func TestNarrowNeverWidens(t *testing.T) {
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	r := &Rollout{Start: start, Waves: []Wave{{0, 100}, {24 * time.Hour, 1000}, {72 * time.Hour, FullShare}}}
	controls := []ReleaseControl{
		{State: ControlCapped, CapShare: FullShare},
		{State: ControlCapped, CapShare: 500},
		{State: ControlCapped, CapShare: 0},
		{State: ControlPaused},
		{State: ControlStopped},
	}
	for _, rc := range controls {
		c := &Control{Releases: map[string]ReleaseControl{controlPath: rc}}
		eligible := 0
		for i := 0; i < 10000; i++ {
			id := fmt.Sprintf("dev-%d", i)
			from, held := c.Narrow(r, controlPath, id)
			assert.Equal(t, r.EligibleFrom(controlPath, id), from, "the control never moves the schedule")
			if held == nil {
				eligible++
				assert.Less(t, RolloutBucket(controlPath, id), max(rc.CapShare, 0))
			}
		}
		switch rc.State {
		case ControlCapped:
			assert.InDelta(t, rc.CapShare, eligible, 100, "cap %d", rc.CapShare)
		default:
			assert.Zero(t, eligible, "%s holds every device", rc.State)
		}
	}
	// A cap applies to an immediate release: it is its only wave.
	c := &Control{Releases: map[string]ReleaseControl{controlPath: {State: ControlCapped, CapShare: 1000}}}
	held := 0
	for i := 0; i < 10000; i++ {
		if _, h := c.Narrow(nil, controlPath, fmt.Sprintf("dev-%d", i)); h != nil {
			held++
		}
	}
	assert.InDelta(t, 9000, held, 100)
	// Another release is untouched; so is everything under a nil control.
	from, h := c.Narrow(r, "acme-gw-r2/2.5.0/firmware.bin", "dev-1")
	assert.Nil(t, h)
	assert.Equal(t, r.EligibleFrom("acme-gw-r2/2.5.0/firmware.bin", "dev-1"), from)
	_, h = (*Control)(nil).Narrow(r, controlPath, "dev-1")
	assert.Nil(t, h)
}

func TestMarshalControlValidates(t *testing.T) {
	for _, rc := range []ReleaseControl{
		{State: "resumed"},
		{State: ControlCapped, CapShare: FullShare + 1},
		{State: ControlPaused, CapShare: 5},
		{State: ControlPaused, Reason: "a\x00b"},
	} {
		_, err := MarshalControl(Control{Releases: map[string]ReleaseControl{controlPath: rc}})
		assert.True(t, errors.Is(err, ErrSchema), "%+v: %v", rc, err)
	}
}
