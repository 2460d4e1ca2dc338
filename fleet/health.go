package fleet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
)

// HealthRulesFile is the name of the file, next to the metadata and
// targets directories of a repository's storage, that holds the health
// rules of its releases. The release tool writes it at add time; the
// update server reads it. It is no TUF document and devices never see
// it: a rule can only make the server pause a release, which the online
// rollout control key may do anyway.
const HealthRulesFile = "health-rules.json"

// MaxHealthRules bounds the rules of one file, and MaxMinAttempts a
// rule's MinAttempts.
const (
	MaxHealthRules = 1 << 16
	MaxMinAttempts = 1 << 30
	fullShare      = 10000 // basis points, as manifest.FullShare
)

// HealthRule pauses a release once its failures reach FailureShare of its
// attempts, counting only when there are at least MinAttempts: "pause
// when reverted+failed >= 5% of at least 20 attempts" is {500, 20}.
type HealthRule struct {
	FailureShare int   `json:"failure_basis_points"` // 1..10000 basis points
	MinAttempts  int64 `json:"min_attempts"`         // 1..MaxMinAttempts
}

// Validate checks h's ranges.
func (h HealthRule) Validate() error {
	if h.FailureShare < 1 || h.FailureShare > fullShare {
		return fmt.Errorf("%w: health rule failure share %d basis points: want 1..%d", ErrInvalid, h.FailureShare, fullShare)
	}
	if h.MinAttempts < 1 || h.MinAttempts > MaxMinAttempts {
		return fmt.Errorf("%w: health rule minimum attempts %d: want 1..%d", ErrInvalid, h.MinAttempts, MaxMinAttempts)
	}
	return nil
}

// Tripped reports whether failures of attempts (devices that tried the
// release and reverted or failed, of all that tried it) break the rule.
// It does no I/O and is exact: no floating point.
func (h HealthRule) Tripped(attempts, failures int64) bool {
	if attempts < h.MinAttempts || attempts <= 0 || failures <= 0 {
		return false
	}
	// failures/attempts >= share/10000, in integers; both sides stay far
	// below 2^63 (attempts <= 2^62 devices would be needed to overflow).
	return failures*fullShare >= int64(h.FailureShare)*attempts
}

// String writes h the way status prints it.
func (h HealthRule) String() string {
	return fmt.Sprintf("pause when reverted+failed >= %s of at least %d attempts", shareText(h.FailureShare), h.MinAttempts)
}

func shareText(bp int) string {
	if bp%100 == 0 {
		return fmt.Sprintf("%d%%", bp/100)
	}
	return fmt.Sprintf("%d.%02d%%", bp/100, bp%100)
}

// HealthRules are the rules of a repository's releases, by target path.
type HealthRules struct {
	Releases map[string]HealthRule
}

type wireHealthRules struct {
	Format   int                   `json:"otaseal_health_rules"`
	Releases map[string]HealthRule `json:"releases"`
}

// Marshal writes the rules file, sorted by target path.
func (r *HealthRules) Marshal() ([]byte, error) {
	if len(r.Releases) > MaxHealthRules {
		return nil, fmt.Errorf("%w: %d health rules (limit %d)", ErrTooLarge, len(r.Releases), MaxHealthRules)
	}
	paths := make([]string, 0, len(r.Releases))
	for p, h := range r.Releases {
		if err := checkText("health rule target", p, MaxTargetLen, false); err != nil {
			return nil, err
		}
		if err := h.Validate(); err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var buf bytes.Buffer
	buf.WriteString("{\"otaseal_health_rules\":1,\"releases\":{")
	for i, p := range paths {
		k, _ := json.Marshal(p)
		v, _ := json.Marshal(r.Releases[p])
		if i > 0 {
			buf.WriteByte(',')
		}
		fmt.Fprintf(&buf, "\n  %s: %s", k, v)
	}
	buf.WriteString("\n}}\n")
	return buf.Bytes(), nil
}

// ParseHealthRules reads a rules file; unknown members and invalid rules
// are refused.
func ParseHealthRules(b []byte) (*HealthRules, error) {
	if len(b) > MaxHealthRules*(MaxTargetLen+128) {
		return nil, fmt.Errorf("%w: health rules file of %d bytes", ErrTooLarge, len(b))
	}
	var w wireHealthRules
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("%w: health rules: %v", ErrMalformed, err)
	}
	if w.Format != 1 {
		return nil, fmt.Errorf("%w: health rules format %d: want 1", ErrMalformed, w.Format)
	}
	if len(w.Releases) > MaxHealthRules {
		return nil, fmt.Errorf("%w: %d health rules (limit %d)", ErrTooLarge, len(w.Releases), MaxHealthRules)
	}
	for p, h := range w.Releases {
		if err := checkText("health rule target", p, MaxTargetLen, false); err != nil {
			return nil, err
		}
		if err := h.Validate(); err != nil {
			return nil, fmt.Errorf("health rule of %s: %w", clip(p), err)
		}
	}
	if w.Releases == nil {
		w.Releases = map[string]HealthRule{}
	}
	return &HealthRules{Releases: w.Releases}, nil
}
