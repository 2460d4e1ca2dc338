package tufjson

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// The one-pass targets decoder. go-tuf decodes a targets document five
// times (twice into generic maps to check its type, then every object once
// into its struct and once more into a map of unrecognised fields) and
// re-encodes it through a generic map once per key to check signatures:
// 10 to 20 KB of garbage per target. This decoder reads each byte once,
// straight into go-tuf's types, and reproduces encoding/json's rules where
// they decide what a document means:
//   - member names match struct fields exactly, else case-insensitively
//     ("LENGTH" fills Length), and a name that is not exactly a field's is
//     also kept among the unrecognised fields;
//   - a repeated member: the last wins, except that maps merge (a repeated
//     "targets" or "hashes" adds to the first) and null leaves a string or
//     number as it was but empties a map, slice or pointer;
//   - unrecognised members decode as encoding/json decodes into `any`.
// The differential tests and fuzz targets of this package hold it to
// go-tuf's behaviour.

// TargetsDocument is a targets document decoded by DecodeTargets.
type TargetsDocument struct {
	// Metadata is the document in go-tuf's types. It may share memory
	// with the bytes it was decoded from; they must not change afterwards.
	Metadata *metadata.Metadata[metadata.TargetsType]

	signed  []byte   // the signed part as received
	order   []string // target paths in document order
	ordered bool     // order is strictly increasing
}

// DecodeTargets decodes a targets or delegated targets document in one
// pass into go-tuf's types, refusing what go-tuf's FromBytes refuses and,
// beyond it, an envelope whose "signed" member is missing or not an
// object, a "signatures" member that is missing or not a list, a null
// target entry (on which go-tuf v2.4.2 crashes), and an envelope whose last
// "signed" member is not the last member whose name matches "signed"
// case-insensitively (go-tuf then checks the type of one and uses the
// other). It does not check what go-tuf does not: spec versions, hash
// algorithms and other shape rules are the caller's.
func DecodeTargets(data []byte) (*TargetsDocument, error) {
	d := &targetsDecoder{s: scanner{data: data}}
	md, signed, err := d.envelope()
	if err != nil {
		if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrWrongType) && !errors.Is(err, ErrEmptyHashes) {
			// strconv's and time's errors: valid JSON, invalid values.
			err = fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		return nil, err
	}
	return &TargetsDocument{Metadata: md, signed: signed, order: d.order, ordered: d.ordered}, nil
}

// Canonical returns the canonical JSON of the signed part as go-tuf
// computes it (cjson.EncodeCanonical of the decoded value): the bytes that
// the signatures sign. It is often a slice of the decoded bytes themselves.
// It fails with ErrNotCanonical where cjson fails (a number that is not an
// int64, a role with both paths and path_hash_prefixes).
func (t *TargetsDocument) Canonical() ([]byte, error) {
	b, err := canonicalTargets(&t.Metadata.Signed, t.signed, t.order, t.ordered)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotCanonical, err)
	}
	return b, nil
}

// Member names of go-tuf's types, in the order the decoders switch on.
var (
	envelopeFields    = newFields("signed", "signatures")
	signatureFields   = newFields("keyid", "sig")
	targetsFields     = newFields("_type", "spec_version", "version", "expires", "targets", "delegations")
	targetFileFields  = newFields("length", "hashes", "custom")
	delegationsFields = newFields("keys", "roles", "succinct_roles")
	keyFields         = newFields("keytype", "scheme", "keyval")
	keyValFields      = newFields("public")
	roleFields        = newFields("name", "keyids", "threshold", "terminating", "path_hash_prefixes", "paths")
	succinctFields    = newFields("keyids", "threshold", "bit_length", "name_prefix")
)

type fields struct{ names, folded []string }

func newFields(names ...string) *fields {
	f := &fields{names: names}
	for _, n := range names {
		f.folded = append(f.folded, foldKey(n))
	}
	return f
}

// match says which field key fills (-1: none) and whether it is that
// field's exact name (only exact names are left out of the unrecognised
// fields, as go-tuf deletes them by exact name).
func (f *fields) match(key string) (int, bool) {
	for i, n := range f.names {
		if key == n {
			return i, true
		}
	}
	k := foldKey(key)
	for i, n := range f.folded {
		if k == n {
			return i, false
		}
	}
	return -1, false
}

// targetsDecoder holds the scanner and the slabs that entries are carved
// from, so that a 100,000-target document costs a few hundred allocations
// for its entries instead of several per entry.
type targetsDecoder struct {
	s     scanner
	files []metadata.TargetFiles
	raws  []json.RawMessage
	hexes []byte
	// order is the target paths in document order; ordered says they are
	// strictly increasing, so the canonical encoder need not sort them.
	order   []string
	ordered bool
}

// object decodes an object member by member. For each member it calls
// typed with the field it fills (if any); a member whose name is not
// exactly a field's is also decoded into the unrecognised fields, which
// object returns (nil when there are none).
func (d *targetsDecoder) object(fs *fields, typed func(i int, exact bool) error) (map[string]any, error) {
	s := &d.s
	if err := s.expect('{'); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	var unknown map[string]any
	err := s.members(func(key string) error {
		i, exact := fs.match(key)
		if i >= 0 {
			start := s.pos
			if err := typed(i, exact); err != nil {
				return err
			}
			if exact {
				return nil
			}
			s.pos = start
		}
		v, err := s.anyValue()
		if err != nil {
			return err
		}
		if unknown == nil {
			unknown = map[string]any{}
		}
		unknown[key] = v
		return nil
	})
	s.depth--
	return unknown, err
}

// isNull consumes a null if one is next.
func (d *targetsDecoder) isNull() bool {
	if d.s.peek() == 'n' && d.s.literal("null") == nil {
		return true
	}
	return false
}

func (d *targetsDecoder) str(dst *string) error {
	if d.isNull() {
		return nil
	}
	v, err := d.s.str()
	if err == nil {
		*dst = v
	}
	return err
}

func (d *targetsDecoder) int64(dst *int64) error {
	if d.isNull() {
		return nil
	}
	text, err := d.s.number()
	if err != nil {
		return err
	}
	n, err := parseInt(text)
	if err != nil {
		return err
	}
	*dst = n
	return nil
}

func (d *targetsDecoder) int(dst *int) error {
	n := int64(*dst)
	err := d.int64(&n)
	*dst = int(n)
	return err
}

func (d *targetsDecoder) bool(dst *bool) error {
	switch d.s.peek() {
	case 't':
		*dst = true
		return d.s.literal("true")
	case 'f':
		*dst = false
		return d.s.literal("false")
	case 'n':
		return d.s.literal("null")
	}
	return d.s.errorf("want a boolean")
}

// strings decodes into a slice the way encoding/json does: reusing dst's
// elements (a null element leaves the old one), emptying it on [], and
// dropping it on null.
func (d *targetsDecoder) strings(dst *[]string) error {
	if d.isNull() {
		*dst = nil
		return nil
	}
	if err := d.s.expect('['); err != nil {
		return err
	}
	if err := d.s.enter(); err != nil {
		return err
	}
	v, i := *dst, 0
	err := d.s.elements(func() error {
		if i >= cap(v) {
			v = append(v, "")
		} else if i >= len(v) {
			v = v[:i+1]
		}
		i++
		return d.str(&v[i-1])
	})
	d.s.depth--
	if i < len(v) {
		v = v[:i]
	}
	if i == 0 {
		v = []string{}
	}
	*dst = v
	return err
}

func (d *targetsDecoder) time(dst *time.Time) error {
	span, err := d.s.skip()
	if err != nil {
		return err
	}
	return dst.UnmarshalJSON(span)
}

// hexBytes decodes like go-tuf's HexBytes: the raw literal must be a
// quoted string of even length holding hex digits only (no escapes).
func (d *targetsDecoder) hexBytes(dst *metadata.HexBytes) error {
	span, err := d.s.skip()
	if err != nil {
		return err
	}
	if len(span) < 2 || len(span)%2 != 0 || span[0] != '"' || span[len(span)-1] != '"' {
		return fmt.Errorf("%w: invalid hex bytes", ErrMalformed)
	}
	n := (len(span) - 2) / 2
	if n == 0 {
		// go-tuf decodes "" to an empty, non-nil slice.
		*dst = metadata.HexBytes{}
		return nil
	}
	if cap(d.hexes)-len(d.hexes) < n {
		d.hexes = make([]byte, 0, max(64<<10, n))
	}
	at := len(d.hexes)
	d.hexes = d.hexes[:at+n]
	b := d.hexes[at : at+n : at+n]
	if _, err := hex.Decode(b, span[1:len(span)-1]); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	*dst = b
	return nil
}

// parseInt converts a JSON number to an int64 as encoding/json does for an
// integer field: strconv.ParseInt, so "1.0", "1e2" and out-of-range
// numbers are refused and "-0" is 0.
func parseInt(text []byte) (int64, error) {
	digits := text
	neg := len(digits) > 0 && digits[0] == '-'
	if neg {
		digits = digits[1:]
	}
	if len(digits) == 0 || len(digits) > 18 {
		return strconv.ParseInt(string(text), 10, 64)
	}
	var n int64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return strconv.ParseInt(string(text), 10, 64)
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, nil
}
