package manifest

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Limits and units of a release's rollout schedule.
const (
	// FullShare is the share of a wave that reaches every device: shares
	// are in basis points (1/100 of a percent), so that a first wave can
	// reach 0.1% or 0.01% of a large fleet.
	FullShare = 10000
	// MaxWaves bounds the waves of one rollout.
	MaxWaves = 32
	// MaxWaveOffset bounds a wave's offset from the rollout's start: ten
	// years, far beyond any schedule and far from overflowing a time.
	MaxWaveOffset = 10 * 366 * 24 * time.Hour
	// RolloutTimeLayout is the one spelling of a rollout's start: RFC 3339
	// in UTC, whole seconds, "Z".
	RolloutTimeLayout = "2006-01-02T15:04:05Z"
	// MaxWithdrawalReasonLen bounds the reason of a withdrawal, in bytes.
	MaxWithdrawalReasonLen = 1024

	fieldRollout   = "rollout"
	fieldWithdrawn = "withdrawn"
)

// Rollout is the staged schedule of a release, signed with it by the
// offline targets role: from Start, wave i reaches the devices whose
// bucket for the release is below Waves[i].Share once Waves[i].Offset has
// passed. The last wave reaches every device. A release without a Rollout
// is for every device at once.
type Rollout struct {
	Start time.Time // in UTC, whole seconds
	Waves []Wave    // 1..MaxWaves, offsets rising, shares not falling, the last FullShare
}

// Wave is one step of a rollout.
type Wave struct {
	Offset time.Duration // after Rollout.Start; whole seconds, 0..MaxWaveOffset
	Share  int           // basis points of the fleet, 0..FullShare
}

// Withdrawal marks a published release that devices must not install; a
// device that runs it logs the notice and moves to the next newer release
// it may take. The image stays published, so that an install already
// under way finishes or reverts cleanly.
type Withdrawal struct {
	Reason     string   // why, for logs; one line, <= MaxWithdrawalReasonLen bytes
	Advisories []string // optional, e.g. the CVE the release introduced
}

// Validate checks r against the schema rules that ParseCustom enforces.
func (r *Rollout) Validate() error {
	if r.Start.IsZero() || r.Start.Location() != time.UTC || r.Start.Nanosecond() != 0 {
		return fieldError("rollout.start", RuleMalformedTime, r.Start.String(), "want a UTC time in whole seconds")
	}
	if y := r.Start.Year(); y < 1 || y > 9999 {
		return fieldError("rollout.start", RuleMalformedTime, r.Start.String(), "year outside 0001..9999")
	}
	if len(r.Waves) > MaxWaves {
		return fieldError("rollout.waves", RuleTooManyItems, "", fmt.Sprintf("%d (limit %d)", len(r.Waves), MaxWaves))
	}
	if len(r.Waves) == 0 {
		return fieldError("rollout.waves", RuleLastWaveNotFull, "", "no waves")
	}
	for i, w := range r.Waves {
		name := fmt.Sprintf("rollout.waves[%d]", i)
		switch {
		case w.Offset < 0:
			return fieldError(name+".offset_seconds", RuleNegativeNumber, fmt.Sprint(int64(w.Offset/time.Second)), "")
		case w.Offset > MaxWaveOffset:
			return fieldError(name+".offset_seconds", RuleNumberOverflow, fmt.Sprint(int64(w.Offset/time.Second)), "more than MaxWaveOffset")
		case w.Offset%time.Second != 0:
			return fieldError(name+".offset_seconds", RuleFractionalNumber, w.Offset.String(), "whole seconds only")
		case w.Share < 0 || w.Share > FullShare:
			return fieldError(name+".basis_points", RuleShareOutOfRange, fmt.Sprint(w.Share), fmt.Sprintf("want 0..%d", FullShare))
		}
		// A schedule that steps back in time or in share would take the
		// release away from devices that already had it, and a reader
		// that sorts the waves would see another schedule than one that
		// does not: one order, rising.
		if i > 0 {
			prev := r.Waves[i-1]
			if w.Offset <= prev.Offset {
				return fieldError(name+".offset_seconds", RuleWaveOrder, fmt.Sprint(int64(w.Offset/time.Second)), "not after the previous wave")
			}
			if w.Share < prev.Share {
				return fieldError(name+".basis_points", RuleWaveOrder, fmt.Sprint(w.Share), "below the previous wave")
			}
		}
	}
	if last := r.Waves[len(r.Waves)-1]; last.Share != FullShare {
		return fieldError(fmt.Sprintf("rollout.waves[%d].basis_points", len(r.Waves)-1), RuleLastWaveNotFull, fmt.Sprint(last.Share), "")
	}
	return nil
}

// Validate checks w against the schema rules that ParseCustom enforces.
func (w *Withdrawal) Validate() error {
	if err := checkText("withdrawn.reason", w.Reason, MaxWithdrawalReasonLen, false); err != nil {
		return err
	}
	if len(w.Advisories) > MaxAdvisories {
		return fieldError("withdrawn.advisories", RuleTooManyItems, "", fmt.Sprintf("%d (limit %d)", len(w.Advisories), MaxAdvisories))
	}
	for _, a := range w.Advisories {
		if err := checkText("withdrawn.advisories", a, MaxAdvisoryLen, false); err != nil {
			return err
		}
	}
	return nil
}

func parseRollout(raw json.RawMessage) (*Rollout, error) {
	m, err := readObject(raw, fieldRollout, 2)
	if err != nil {
		return nil, err
	}
	if err := onlyFields(m, "rollout.", "start", "waves"); err != nil {
		return nil, err
	}
	if err := requireFields(m, "rollout.", "start", "waves"); err != nil {
		return nil, err
	}
	var r Rollout
	s, err := readString("rollout.start", m["start"])
	if err != nil {
		return nil, err
	}
	if r.Start, err = parseRolloutTime(s); err != nil {
		return nil, err
	}
	raw = m["waves"]
	if len(raw) == 0 || raw[0] != '[' {
		return nil, fieldError("rollout.waves", RuleWrongJSONType, "", "want a list of waves")
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, malformedJSON("rollout.waves", err)
	}
	if len(items) > MaxWaves {
		return nil, fieldError("rollout.waves", RuleTooManyItems, "", fmt.Sprintf("%d (limit %d)", len(items), MaxWaves))
	}
	for i, it := range items {
		w, err := parseWave(fmt.Sprintf("rollout.waves[%d]", i), it)
		if err != nil {
			return nil, err
		}
		r.Waves = append(r.Waves, w)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

func parseWave(name string, raw json.RawMessage) (Wave, error) {
	m, err := readObject(raw, name, 3)
	if err != nil {
		return Wave{}, err
	}
	prefix := name + "."
	if err := onlyFields(m, prefix, "offset_seconds", "basis_points"); err != nil {
		return Wave{}, err
	}
	if err := requireFields(m, prefix, "offset_seconds", "basis_points"); err != nil {
		return Wave{}, err
	}
	secs, err := readUint(prefix+"offset_seconds", m["offset_seconds"])
	if err != nil {
		return Wave{}, err
	}
	if secs > uint64(MaxWaveOffset/time.Second) {
		return Wave{}, fieldError(prefix+"offset_seconds", RuleNumberOverflow, fmt.Sprint(secs), "more than MaxWaveOffset")
	}
	share, err := readUint(prefix+"basis_points", m["basis_points"])
	if err != nil {
		return Wave{}, err
	}
	if share > FullShare {
		return Wave{}, fieldError(prefix+"basis_points", RuleShareOutOfRange, fmt.Sprint(share), fmt.Sprintf("want 0..%d", FullShare))
	}
	return Wave{Offset: time.Duration(secs) * time.Second, Share: int(share)}, nil
}

// parseRolloutTime accepts RolloutTimeLayout only: "2026-03-01T00:00:00Z".
// Offsets, fractions and lowercase letters are refused, so that the
// signed start means one instant and has one spelling.
func parseRolloutTime(s string) (time.Time, error) {
	t, err := time.Parse(RolloutTimeLayout, s)
	if err != nil || t.Format(RolloutTimeLayout) != s {
		return time.Time{}, fieldError("rollout.start", RuleMalformedTime, s, "want "+RolloutTimeLayout)
	}
	return t, nil
}

func parseWithdrawal(raw json.RawMessage) (*Withdrawal, error) {
	m, err := readObject(raw, fieldWithdrawn, 2)
	if err != nil {
		return nil, err
	}
	if err := onlyFields(m, "withdrawn.", "reason", "advisories"); err != nil {
		return nil, err
	}
	if err := requireFields(m, "withdrawn.", "reason"); err != nil {
		return nil, err
	}
	var w Withdrawal
	if w.Reason, err = readString("withdrawn.reason", m["reason"]); err != nil {
		return nil, err
	}
	if raw, ok := m["advisories"]; ok {
		if w.Advisories, err = readStrings("withdrawn.advisories", raw, MaxAdvisories); err != nil {
			return nil, err
		}
		if len(w.Advisories) == 0 {
			return nil, fieldError("withdrawn.advisories", RuleInvalidText, "", "empty list (omit the field)")
		}
	}
	if err := w.Validate(); err != nil {
		return nil, err
	}
	return &w, nil
}

// rolloutJSON is the wire form of r, for marshalEntry.
func rolloutJSON(r *Rollout) map[string]any {
	waves := make([]map[string]any, len(r.Waves))
	for i, w := range r.Waves {
		waves[i] = map[string]any{"offset_seconds": int64(w.Offset / time.Second), "basis_points": w.Share}
	}
	return map[string]any{"start": r.Start.Format(RolloutTimeLayout), "waves": waves}
}

// withdrawalJSON is the wire form of w, for marshalEntry.
func withdrawalJSON(w *Withdrawal) map[string]any {
	obj := map[string]any{"reason": w.Reason}
	if len(w.Advisories) > 0 {
		obj["advisories"] = w.Advisories
	}
	return obj
}

// FormatShare writes a share in basis points as a percentage: 1000 is
// "10%", 5 is "0.05%".
func FormatShare(bp int) string {
	return strconv.FormatFloat(float64(bp)/100, 'f', -1, 64) + "%"
}

// FormatOffset writes a wave's offset from the rollout's start in whole
// days ("7d") or hours ("36h") when it is one, else as time.Duration does.
func FormatOffset(d time.Duration) string {
	if d%(24*time.Hour) == 0 && d != 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return d.String()
}
