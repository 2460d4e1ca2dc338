package manifest

import (
	"fmt"
	"strconv"
	"strings"
)

// MaxVersionLength bounds a version string from the wire. Real firmware
// versions are a few dozen bytes; the bound keeps a hostile document from
// making every comparison walk megabytes.
const MaxVersionLength = 128

// Version is a strict Semantic Versioning 2.0.0 version: MAJOR.MINOR.PATCH
// with an optional pre-release and build metadata. There is exactly one
// spelling per value: no "v" prefix, no leading zeros, no empty identifiers.
// Versions order by semver precedence; build metadata does not take part, so
// two versions that differ only in build metadata compare equal.
//
// The zero Version is not valid; use ParseVersion.
type Version struct {
	major, minor, patch uint64
	pre                 []string // dot-separated pre-release identifiers
	build               string
	text                string
}

// ParseVersion parses s as a strict semantic version. Errors wrap
// ErrMalformedVersion. (Inside an otaseal object, ParseCustom reports the
// same fault as a *FieldError with RuleMalformedVersion instead.)
func ParseVersion(s string) (Version, error) {
	v, err := parseVersion(s)
	if err != nil {
		if len(s) > MaxVersionLength {
			s = s[:MaxVersionLength] + "..."
		}
		return Version{}, fmt.Errorf("%w %q: %v", ErrMalformedVersion, s, err)
	}
	return v, nil
}

// parseVersion is ParseVersion with an error that says only what is wrong,
// for callers that name the version themselves.
func parseVersion(s string) (Version, error) {
	if len(s) == 0 || len(s) > MaxVersionLength {
		return Version{}, fmt.Errorf("length %d outside 1..%d", len(s), MaxVersionLength)
	}
	v := Version{text: s}
	rest := s
	if i := strings.IndexByte(rest, '+'); i >= 0 {
		v.build = rest[i+1:]
		rest = rest[:i]
		if err := checkIdentifiers(v.build, false); err != nil {
			return Version{}, fmt.Errorf("build metadata: %v", err)
		}
	}
	if i := strings.IndexByte(rest, '-'); i >= 0 {
		pre := rest[i+1:]
		rest = rest[:i]
		if err := checkIdentifiers(pre, true); err != nil {
			return Version{}, fmt.Errorf("pre-release: %v", err)
		}
		v.pre = strings.Split(pre, ".")
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 {
		return Version{}, fmt.Errorf("want MAJOR.MINOR.PATCH")
	}
	nums := [3]*uint64{&v.major, &v.minor, &v.patch}
	for i, p := range parts {
		n, err := parseNumericIdentifier(p)
		if err != nil {
			return Version{}, err
		}
		*nums[i] = n
	}
	return v, nil
}

// MustParseVersion is ParseVersion for constants in programs and tests; it
// panics on a malformed version, so never give it bytes from the wire.
func MustParseVersion(s string) Version {
	v, err := ParseVersion(s)
	if err != nil {
		panic(err)
	}
	return v
}

func parseNumericIdentifier(p string) (uint64, error) {
	if p == "" {
		return 0, fmt.Errorf("empty numeric identifier")
	}
	if len(p) > 1 && p[0] == '0' {
		return 0, fmt.Errorf("leading zero in %q", p)
	}
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return 0, fmt.Errorf("non-digit in %q", p)
		}
	}
	n, err := strconv.ParseUint(p, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q overflows 64 bits", p)
	}
	return n, nil
}

// checkIdentifiers checks dot-separated identifiers of [0-9A-Za-z-]. For
// pre-release identifiers, numeric ones may not have leading zeros.
func checkIdentifiers(s string, pre bool) error {
	for _, id := range strings.Split(s, ".") {
		if id == "" {
			return fmt.Errorf("empty identifier")
		}
		numeric := true
		for i := 0; i < len(id); i++ {
			c := id[i]
			switch {
			case c >= '0' && c <= '9':
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-':
				numeric = false
			default:
				return fmt.Errorf("invalid character %q", c)
			}
		}
		if pre && numeric && len(id) > 1 && id[0] == '0' {
			return fmt.Errorf("leading zero in %q", id)
		}
	}
	return nil
}

// String returns the version exactly as it was parsed.
func (v Version) String() string { return v.text }

// IsZero reports whether v is the zero Version (not a parsed one).
func (v Version) IsZero() bool { return v.text == "" }

// Prerelease reports whether v carries a pre-release part (1.2.0-rc.1).
func (v Version) Prerelease() bool { return len(v.pre) > 0 }

// Compare returns -1, 0 or +1 as v has lower, equal or higher precedence
// than w, by the rules of Semantic Versioning 2.0.0 section 11.
func (v Version) Compare(w Version) int {
	for _, d := range [3][2]uint64{{v.major, w.major}, {v.minor, w.minor}, {v.patch, w.patch}} {
		if d[0] != d[1] {
			if d[0] < d[1] {
				return -1
			}
			return 1
		}
	}
	// A version without pre-release outranks any pre-release of it.
	switch {
	case len(v.pre) == 0 && len(w.pre) == 0:
		return 0
	case len(v.pre) == 0:
		return 1
	case len(w.pre) == 0:
		return -1
	}
	for i := 0; i < len(v.pre) && i < len(w.pre); i++ {
		if c := comparePreIdentifier(v.pre[i], w.pre[i]); c != 0 {
			return c
		}
	}
	switch {
	case len(v.pre) < len(w.pre):
		return -1
	case len(v.pre) > len(w.pre):
		return 1
	}
	return 0
}

func comparePreIdentifier(a, b string) int {
	aNum, bNum := isNumeric(a), isNumeric(b)
	switch {
	case aNum && bNum:
		// Without leading zeros, a longer digit string is a larger number;
		// comparing this way needs no 64-bit parse that could overflow.
		if len(a) != len(b) {
			if len(a) < len(b) {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	case aNum: // numeric identifiers have lower precedence than alphanumeric
		return -1
	case bNum:
		return 1
	}
	return strings.Compare(a, b)
}

func isNumeric(id string) bool {
	for i := 0; i < len(id); i++ {
		if id[i] < '0' || id[i] > '9' {
			return false
		}
	}
	return true
}

// MarshalText implements encoding.TextMarshaler.
func (v Version) MarshalText() ([]byte, error) {
	if v.IsZero() {
		return nil, fmt.Errorf("%w: zero Version", ErrMalformedVersion)
	}
	return []byte(v.text), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseVersion.
func (v *Version) UnmarshalText(b []byte) error {
	p, err := ParseVersion(string(b))
	if err != nil {
		return err
	}
	*v = p
	return nil
}
