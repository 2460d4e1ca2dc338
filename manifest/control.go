package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// Names, limits and states of the online rollout control.
const (
	// RoleRolloutControl is the reserved name of the delegated targets
	// role that holds the rollout control document. The top-level targets
	// role delegates it with no paths ("paths": []), so that it can serve
	// no target, and with its own keys: online keys, held by the update
	// server next to the snapshot and timestamp keys.
	RoleRolloutControl = "rollout-control"
	// ControlField is the member of a control document's signed object
	// that holds the controls, and ControlKey the one member inside it.
	ControlField = "custom"
	ControlKey   = "otaseal-control"
	// MaxControlEntries bounds the releases one control document names.
	MaxControlEntries = 1024
	// MaxControlReasonLen bounds a control's reason, in bytes.
	MaxControlReasonLen = 1024
	// MaxControlPathLen bounds a controlled release's target path, in
	// bytes.
	MaxControlPathLen = 1024
	// MaxControlSize bounds the control's "custom" object, in bytes:
	// MaxControlEntries entries with room for their paths and reasons.
	MaxControlSize = 4 << 20
)

// ControlState is what an online control does to one release.
type ControlState string

// The three controls. None of them can widen a release's signed schedule:
// each only holds devices back.
const (
	// ControlPaused holds the release back from every device that does
	// not run it yet, until a newer control document lifts the pause.
	ControlPaused ControlState = "paused"
	// ControlStopped holds the release back like a pause; it says the
	// rollout is abandoned, not expected to resume (withdrawing the
	// release is the offline targets role's decision).
	ControlStopped ControlState = "stopped"
	// ControlCapped lowers the release's share to ReleaseControl.CapShare
	// at most: devices whose bucket is at or above the cap wait, the
	// others follow the signed schedule.
	ControlCapped ControlState = "capped"
)

// ReleaseControl is the online control of one release.
type ReleaseControl struct {
	State ControlState
	// CapShare is the most of the fleet the release may reach, in basis
	// points (0..FullShare), with ControlCapped only. A cap above the
	// schedule's share at a given time changes nothing at that time.
	CapShare int
	// Reason is optional text for logs: one line, <= MaxControlReasonLen
	// bytes.
	Reason string
}

// Control is the signed content of a rollout control document: the
// controls it sets, by release target path. A release it does not name
// follows its signed schedule. Entries for paths that are no release are
// allowed (the release may be in a role the device does not search) and
// have no effect.
//
// A control is online authority, so everything in it narrows: the device
// takes the stricter of the signed schedule and the control, and nothing
// here can name a target, delegate, start a wave early or raise a share.
type Control struct {
	Releases map[string]ReleaseControl
}

// Validate checks c against the rules that ParseControl enforces.
func (c *Control) Validate() error {
	if len(c.Releases) > MaxControlEntries {
		return fieldError(ControlKey, RuleTooManyItems, "", fmt.Sprintf("%d (limit %d)", len(c.Releases), MaxControlEntries))
	}
	for path, rc := range c.Releases {
		if err := checkText(ControlKey+" path", path, MaxControlPathLen, false); err != nil {
			return err
		}
		if err := rc.validate(ControlKey + "[" + path + "]"); err != nil {
			return err
		}
	}
	return nil
}

func (rc *ReleaseControl) validate(name string) error {
	switch rc.State {
	case ControlPaused, ControlStopped:
		if rc.CapShare != 0 {
			return fieldError(name+".cap_basis_points", RuleUnknownField, fmt.Sprint(rc.CapShare), "only with state capped")
		}
	case ControlCapped:
		if rc.CapShare < 0 || rc.CapShare > FullShare {
			return fieldError(name+".cap_basis_points", RuleShareOutOfRange, fmt.Sprint(rc.CapShare), fmt.Sprintf("want 0..%d", FullShare))
		}
	default:
		return fieldError(name+".state", RuleUnknownControlState, string(rc.State), "want paused, stopped or capped")
	}
	if rc.Reason != "" {
		return checkText(name+".reason", rc.Reason, MaxControlReasonLen, false)
	}
	return nil
}

// ParseControl reads the "custom" object of a rollout control document:
// {"otaseal-control": {PATH: {"state": ..., "cap_basis_points": N,
// "reason": ...}}}. It is as strict as ParseCustom: unknown or repeated
// members, a cap with a state other than capped, a capped state without
// its cap, a cap above FullShare and anything over a named limit are
// refused with a *FieldError; bytes that are not JSON with ErrMalformed,
// more than MaxControlSize bytes with ErrTooLarge.
func ParseControl(custom []byte) (*Control, error) {
	if len(custom) > MaxControlSize {
		return nil, fmt.Errorf("%w: control object of %d bytes (limit %d)", ErrTooLarge, len(custom), MaxControlSize)
	}
	top, err := readObject(custom, ControlField, 1)
	if err != nil {
		return nil, err
	}
	if err := onlyFields(top, "", ControlKey); err != nil {
		return nil, err
	}
	if err := requireFields(top, "", ControlKey); err != nil {
		return nil, err
	}
	entries, err := readObject(top[ControlKey], ControlKey, 2)
	if err != nil {
		return nil, err
	}
	if len(entries) > MaxControlEntries {
		return nil, fieldError(ControlKey, RuleTooManyItems, "", fmt.Sprintf("%d (limit %d)", len(entries), MaxControlEntries))
	}
	c := &Control{Releases: make(map[string]ReleaseControl, len(entries))}
	for path, raw := range entries {
		rc, err := parseReleaseControl(ControlKey+"["+path+"]", raw)
		if err != nil {
			return nil, err
		}
		c.Releases[path] = rc
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func parseReleaseControl(name string, raw json.RawMessage) (ReleaseControl, error) {
	m, err := readObject(raw, name, 3)
	if err != nil {
		return ReleaseControl{}, err
	}
	prefix := name + "."
	// Only these three: a "start", "offset_seconds" or "basis_points"
	// here would be an online key rewriting the offline schedule.
	if err := onlyFields(m, prefix, "state", "cap_basis_points", "reason"); err != nil {
		return ReleaseControl{}, err
	}
	if err := requireFields(m, prefix, "state"); err != nil {
		return ReleaseControl{}, err
	}
	var rc ReleaseControl
	s, err := readString(prefix+"state", m["state"])
	if err != nil {
		return ReleaseControl{}, err
	}
	rc.State = ControlState(s)
	if raw, ok := m["cap_basis_points"]; ok {
		if rc.State != ControlCapped {
			return ReleaseControl{}, fieldError(prefix+"cap_basis_points", RuleUnknownField, "", "only with state capped")
		}
		n, err := readUint(prefix+"cap_basis_points", raw)
		if err != nil {
			return ReleaseControl{}, err
		}
		if n > FullShare {
			return ReleaseControl{}, fieldError(prefix+"cap_basis_points", RuleShareOutOfRange, fmt.Sprint(n), fmt.Sprintf("want 0..%d", FullShare))
		}
		rc.CapShare = int(n)
	} else if rc.State == ControlCapped {
		return ReleaseControl{}, fieldError(prefix+"cap_basis_points", RuleMissingField, "", "")
	}
	if raw, ok := m["reason"]; ok {
		if rc.Reason, err = readString(prefix+"reason", raw); err != nil {
			return ReleaseControl{}, err
		}
		if rc.Reason == "" {
			return ReleaseControl{}, fieldError(prefix+"reason", RuleInvalidText, "", "empty (omit the field)")
		}
	}
	if err := rc.validate(name); err != nil {
		return ReleaseControl{}, err
	}
	return rc, nil
}

// MarshalControl returns the canonical wire form of c's "custom" object,
// the bytes ParseControl reads.
func MarshalControl(c Control) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	entries := make(map[string]any, len(c.Releases))
	for path, rc := range c.Releases {
		obj := map[string]any{"state": string(rc.State)}
		if rc.State == ControlCapped {
			obj["cap_basis_points"] = rc.CapShare
		}
		if rc.Reason != "" {
			obj["reason"] = rc.Reason
		}
		entries[path] = obj
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(map[string]any{ControlKey: entries}); err != nil {
		return nil, err
	}
	out := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if len(out) > MaxControlSize {
		return nil, fmt.Errorf("%w: control object of %d bytes (limit %d)", ErrTooLarge, len(out), MaxControlSize)
	}
	return out, nil
}

// ControlOf returns the control in a rollout control document, refusing
// the whole document if it could do more than narrow: one that lists a
// target or delegates (RuleControlWidens), or holds a signed member other
// than the TUF ones and ControlField (RuleUnknownField). A document
// without ControlField controls nothing: an empty Control.
func ControlOf(doc *Targets) (*Control, error) {
	if len(doc.Targets) > 0 {
		paths := make([]string, 0, len(doc.Targets))
		for p := range doc.Targets {
			paths = append(paths, p)
		}
		sort.Strings(paths)
		return nil, fieldError("targets", RuleControlWidens, paths[0], fmt.Sprintf("%d targets listed", len(paths)))
	}
	if doc.Delegations != nil {
		return nil, fieldError("delegations", RuleControlWidens, "", "")
	}
	for k := range doc.UnrecognizedFields {
		if k != ControlField {
			return nil, fieldError(k, RuleUnknownField, "", "")
		}
	}
	v, ok := doc.UnrecognizedFields[ControlField]
	if !ok {
		return &Control{Releases: map[string]ReleaseControl{}}, nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, malformedJSON(ControlField, err)
	}
	return ParseControl(raw)
}

// SetControl writes c into a rollout control document, replacing any
// control it held.
func SetControl(doc *Targets, c Control) error {
	raw, err := MarshalControl(c)
	if err != nil {
		return err
	}
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	if doc.UnrecognizedFields == nil {
		doc.UnrecognizedFields = map[string]any{}
	}
	doc.UnrecognizedFields[ControlField] = v
	return nil
}

// Narrow applies the control of the release at targetPath, if any, to the
// time from which the device with rolloutID may take it by its signed
// schedule r (nil for an immediate release): the stricter of the two. It
// returns the schedule's time (Rollout.EligibleFrom), and held, the
// control that holds the device back whatever the time, or nil when the
// control leaves the schedule in force for this device.
//
// A cap applies to immediate releases too: their share is FullShare from
// the start, so a cap is their only wave. Since schedule shares never
// fall, min(share(t), cap) covers a device's bucket from the schedule's
// time on exactly when the cap covers it at all.
func (c *Control) Narrow(r *Rollout, targetPath, rolloutID string) (from time.Time, held *ReleaseControl) {
	from = r.EligibleFrom(targetPath, rolloutID)
	if c == nil {
		return from, nil
	}
	rc, ok := c.Releases[targetPath]
	if !ok {
		return from, nil
	}
	if rc.State == ControlCapped && RolloutBucket(targetPath, rolloutID) < rc.CapShare {
		return from, nil
	}
	return from, &rc
}
