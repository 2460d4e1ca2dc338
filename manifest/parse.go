package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Default size limits of metadata documents, per role. A device reads at
// most the limit plus one byte of a document, so an endless or oversized
// response (the "endless data" attack) costs it a bounded amount of memory.
const (
	DefaultRootLimit      = 512 << 10
	DefaultTimestampLimit = 16 << 10
	DefaultSnapshotLimit  = 2 << 20
	DefaultTargetsLimit   = 5 << 20
)

// Limits sets the largest accepted document per role, in bytes. A zero field
// takes its Default...Limit; Targets also applies to delegated roles.
type Limits struct {
	Root, Timestamp, Snapshot, Targets int64
}

// For returns the limit that applies to role, defaults filled in. Any name
// other than the top-level roles is a delegated targets role.
func (l Limits) For(role string) int64 {
	pick := func(v, def int64) int64 {
		if v > 0 {
			return v
		}
		return def
	}
	switch role {
	case RoleRoot:
		return pick(l.Root, DefaultRootLimit)
	case RoleTimestamp:
		return pick(l.Timestamp, DefaultTimestampLimit)
	case RoleSnapshot:
		return pick(l.Snapshot, DefaultSnapshotLimit)
	}
	return pick(l.Targets, DefaultTargetsLimit)
}

// ReadLimited reads all of r if it holds at most max bytes, and fails with
// ErrTooLarge as soon as it holds more, having read max+1 bytes at most.
func ReadLimited(r io.Reader, max int64) ([]byte, error) {
	if max < 0 {
		max = 0
	}
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, max)
	}
	return data, nil
}

// ParseUnverified parses a metadata document of role type T after checking
// its size against lim and its shape against what the rest of otaseal and
// go-tuf rely on. role names the document for limits and errors ("root",
// "targets", or a delegated role's name).
//
// The result is unverified: nothing in it is trustworthy until its
// signatures are checked against a trusted delegator (package verify does
// that). Errors are *MetadataError wrapping a manifest sentinel.
func ParseUnverified[T metadata.Roles](role string, data []byte, lim Limits) (*Metadata[T], error) {
	wrap := func(err error) error { return &MetadataError{Role: clip(role), Err: err} }
	if max := lim.For(role); int64(len(data)) > max {
		return nil, wrap(fmt.Errorf("%w: %d bytes (limit %d)", ErrTooLarge, len(data), max))
	}
	// go-tuf parses the document twice into generic maps and trusts shapes
	// it never checked; refuse what is not an object of two members first.
	if err := checkEnvelope(data); err != nil {
		return nil, wrap(err)
	}
	md, err := (&metadata.Metadata[T]{}).FromBytes(data)
	if err != nil {
		var wt *metadata.ErrValue
		if errors.As(err, &wt) && strings.Contains(wt.Msg, "expected metadata type") {
			return nil, wrap(fmt.Errorf("%w: %s", ErrWrongType, wt.Msg))
		}
		// go-tuf reports this one as a plain error; the test of the
		// empty-hash rule pins the message.
		if strings.Contains(err.Error(), "hashes must not be empty") {
			return nil, wrap(fmt.Errorf("%w: %v", ErrEmptyHashes, err))
		}
		translated := TranslateError(err)
		if translated == err { // encoding/json's own errors
			translated = fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		return nil, wrap(translated)
	}
	if err := checkShape(&md.Signed); err != nil {
		return nil, wrap(err)
	}
	return md, nil
}

// checkEnvelope insists on a JSON object whose "signed" member is an object
// and whose "signatures" member is a list, and refuses a null target entry:
// go-tuf v2.4.2 dereferences every entry of "targets" while decoding, so a
// single `"x": null` would crash the device's client. encoding/json, and so
// go-tuf, decodes every member whose name matches a field case-insensitively,
// repeated ones included, one after the other: "Signed", "SIGNED" or a
// second "signed" reach go-tuf as surely as the first, so each is checked.
func checkEnvelope(data []byte) error {
	top, err := objectMembers(data)
	if err != nil {
		return err
	}
	var signed, sigs json.RawMessage // the last member of exactly that name
	for _, m := range top {
		switch m.key {
		case "signed":
			signed = m.value
		case "signatures":
			sigs = m.value
		}
		if strings.EqualFold(m.key, "signed") && len(m.value) > 0 && m.value[0] == '{' {
			if err := checkTargetEntries(m.value); err != nil {
				return err
			}
		}
	}
	if len(signed) == 0 || signed[0] != '{' {
		return fmt.Errorf("%w: \"signed\" is missing or not an object", ErrMalformed)
	}
	if len(sigs) == 0 || sigs[0] != '[' {
		return fmt.Errorf("%w: \"signatures\" is missing or not a list", ErrMalformed)
	}
	return nil
}

// checkTargetEntries refuses a signed part whose "targets" map, as
// encoding/json builds it, would hold a non-object entry. encoding/json
// decodes every member matching "targets" case-insensitively into the same
// map, in order: an object adds or replaces entries, null empties the map.
func checkTargetEntries(signed []byte) error {
	members, err := objectMembers(signed)
	if err != nil {
		return err
	}
	merged := map[string]json.RawMessage{}
	for _, m := range members {
		if !strings.EqualFold(m.key, "targets") {
			continue
		}
		if string(m.value) == "null" {
			merged = map[string]json.RawMessage{}
			continue
		}
		entries, err := objectMembers(m.value)
		if err != nil {
			return err
		}
		for _, e := range entries {
			merged[e.key] = e.value
		}
	}
	for path, v := range merged {
		if len(v) == 0 || v[0] != '{' {
			return fmt.Errorf("%w: target %q is not an object", ErrMalformed, clip(path))
		}
	}
	return nil
}

type member struct {
	key   string
	value json.RawMessage
}

// objectMembers returns the members of a JSON object in order, repeated
// names included.
func objectMembers(data []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("%w: want a JSON object", ErrMalformed)
	}
	var out []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		out = append(out, member{key, v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the object", ErrMalformed)
	}
	return out, nil
}

func checkShape(signed any) error {
	switch s := signed.(type) {
	case *Root:
		return checkRoot(s)
	case *Timestamp:
		if err := checkCommon(s.SpecVersion, s.Version); err != nil {
			return err
		}
		// go-tuf v2.4.2's trustedmetadata dereferences this entry without
		// a check: a timestamp without it would crash the device's client.
		if len(s.Meta) != 1 || s.Meta["snapshot.json"] == nil {
			return ErrMissingSnapshotMeta
		}
		return checkMetaFiles(s.Meta)
	case *Snapshot:
		if err := checkCommon(s.SpecVersion, s.Version); err != nil {
			return err
		}
		return checkMetaFiles(s.Meta)
	case *Targets:
		return checkTargets(s)
	}
	return fmt.Errorf("%w: unknown role type %T", ErrWrongType, signed)
}

// checkCommon checks what every signed part has. TUF clients must refuse a
// spec_version of another major version; versions count from 1.
func checkCommon(spec string, version int64) error {
	parts := strings.Split(spec, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return fmt.Errorf("%w %q", ErrSpecVersion, clip(spec))
	}
	for _, p := range parts {
		if _, err := parseNumericIdentifier(p); err != nil {
			return fmt.Errorf("%w %q", ErrSpecVersion, clip(spec))
		}
	}
	if parts[0] != "1" {
		return fmt.Errorf("%w %q: major version 1 only", ErrSpecVersion, clip(spec))
	}
	if version < 1 {
		return fmt.Errorf("%w: version %d below 1", ErrMalformed, version)
	}
	return nil
}

func checkRoot(r *Root) error {
	if err := checkCommon(r.SpecVersion, r.Version); err != nil {
		return err
	}
	if err := checkKeys(r.Keys); err != nil {
		return err
	}
	for _, name := range []string{RoleRoot, RoleTimestamp, RoleSnapshot, RoleTargets} {
		role := r.Roles[name]
		if role == nil {
			return fmt.Errorf("%w: root defines no %s role", ErrMalformed, name)
		}
		if err := checkKeyIDs(name, role.KeyIDs, role.Threshold); err != nil {
			return err
		}
	}
	for name, role := range r.Roles {
		if role == nil {
			return fmt.Errorf("%w: root role %q is null", ErrMalformed, clip(name))
		}
	}
	return nil
}

func checkKeys(keys map[string]*Key) error {
	for id, k := range keys {
		if k == nil || k.Type == "" || k.Scheme == "" || k.Value.PublicKey == "" {
			return fmt.Errorf("%w: key %q is incomplete", ErrMalformed, clip(id))
		}
	}
	return nil
}

// checkKeyIDs refuses a role whose threshold could be met by counting one
// key twice, or never met at all.
func checkKeyIDs(role string, ids []string, threshold int) error {
	if threshold < 1 {
		return fmt.Errorf("%w: role %q has threshold %d", ErrMalformed, clip(role), threshold)
	}
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if seen[id] {
			return fmt.Errorf("%w: role %q lists key %q twice", ErrMalformed, clip(role), clip(id))
		}
		seen[id] = true
	}
	return nil
}

func checkMetaFiles(meta map[string]*MetaFile) error {
	for name, m := range meta {
		if m == nil {
			return fmt.Errorf("%w: meta entry %q is null", ErrMalformed, clip(name))
		}
		if m.Version < 1 || m.Length < 0 {
			return fmt.Errorf("%w: meta entry %q has version %d, length %d", ErrMalformed, clip(name), m.Version, m.Length)
		}
		// Hashes are optional in meta entries, but a present map must be
		// usable: go-tuf passes an empty one as verified.
		if m.Hashes != nil {
			if err := checkHashes(m.Hashes); err != nil {
				return fmt.Errorf("meta entry %q: %w", clip(name), err)
			}
		}
	}
	return nil
}

func checkTargets(t *Targets) error {
	if err := checkCommon(t.SpecVersion, t.Version); err != nil {
		return err
	}
	for path, tf := range t.Targets {
		if tf == nil {
			return fmt.Errorf("%w: target %q is null", ErrMalformed, clip(path))
		}
		if path == "" || tf.Length < 0 {
			return fmt.Errorf("%w: target %q has length %d", ErrMalformed, clip(path), tf.Length)
		}
		if err := checkHashes(tf.Hashes); err != nil {
			return fmt.Errorf("target %q: %w", clip(path), err)
		}
	}
	if d := t.Delegations; d != nil {
		return checkDelegations(d)
	}
	return nil
}

func checkDelegations(d *Delegations) error {
	if err := checkKeys(d.Keys); err != nil {
		return err
	}
	if (d.Roles != nil) == (d.SuccinctRoles != nil) {
		return fmt.Errorf("%w: delegations need exactly one of roles and succinct_roles", ErrMalformed)
	}
	names := make(map[string]bool, len(d.Roles))
	for _, r := range d.Roles {
		if r.Name == "" || names[r.Name] {
			return fmt.Errorf("%w: delegated role name %q empty or repeated", ErrMalformed, clip(r.Name))
		}
		if err := CheckDelegatedRoleName(r.Name); err != nil {
			return err
		}
		names[r.Name] = true
		if err := checkKeyIDs(r.Name, r.KeyIDs, r.Threshold); err != nil {
			return err
		}
		if (r.Paths != nil) == (r.PathHashPrefixes != nil) {
			return fmt.Errorf("%w: delegated role %q needs exactly one of paths and path_hash_prefixes", ErrMalformed, clip(r.Name))
		}
	}
	if s := d.SuccinctRoles; s != nil {
		// TAP 15: 2^bit_length bins; more than 32 bits is no catalogue.
		if s.BitLength < 1 || s.BitLength > 32 || s.NamePrefix == "" {
			return fmt.Errorf("%w: succinct_roles bit_length %d, name_prefix %q", ErrMalformed, s.BitLength, clip(s.NamePrefix))
		}
		if err := checkRoleNameBytes(s.NamePrefix); err != nil {
			return err
		}
		if err := checkKeyIDs(s.NamePrefix, s.KeyIDs, s.Threshold); err != nil {
			return err
		}
	}
	return nil
}

// CheckDelegatedRoleName refuses a name that a delegated role may not have:
// one that is empty, holds a byte outside printable ASCII (0x20-0x7e), or
// equals a top-level role's name ("root", "targets", "snapshot",
// "timestamp") in any letter case.
//
// A role's name is also the name of its file, on the repository's disk and
// in many clients' metadata directories. On a file system that folds case
// (macOS, Windows) a delegated role named "Root" is stored as root.json: a
// delegated signer would overwrite the device's trusted root with a
// targets document, and one named "Timestamp" or "Snapshot" would erase
// their rollback protection. Unicode has many more spellings that a file
// system may merge with "root" (fullwidth "ｒｏｏｔ", combining marks,
// the Kelvin sign, code points HFS+ ignores), and file systems disagree on
// which: NFKC and case folding approximate none of them exactly. Within
// ASCII, case is the only folding any file system does, so the rule is
// exact. otaseal's sign never creates other names, and the unusual names
// of the TUF conformance suite ("?", "#", "../delegatedrole") are ASCII.
func CheckDelegatedRoleName(name string) error {
	if err := checkRoleNameBytes(name); err != nil {
		return err
	}
	for _, top := range []string{RoleRoot, RoleTimestamp, RoleSnapshot, RoleTargets} {
		if strings.EqualFold(name, top) {
			return fmt.Errorf("%w: delegated role %q has the name of top-level role %q", ErrMalformed, name, top)
		}
	}
	return nil
}

// checkRoleNameBytes refuses an empty role name or bin prefix, or one with
// a byte outside printable ASCII (see CheckDelegatedRoleName).
func checkRoleNameBytes(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty delegated role name", ErrMalformed)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c > 0x7e {
			return fmt.Errorf("%w: delegated role name %q: byte %#02x at %d is not printable ASCII", ErrMalformed, clip(name), c, i)
		}
	}
	return nil
}

// hashSizes are the algorithms otaseal accepts and their digest lengths.
// Anything weaker is refused, so a hash collision in an old algorithm cannot
// stand in for an image.
var hashSizes = map[string]int{"sha256": 32, "sha512": 64}

func checkHashes(h Hashes) error {
	if len(h) == 0 {
		return ErrEmptyHashes
	}
	for alg, sum := range h {
		size, ok := hashSizes[alg]
		if !ok {
			return fmt.Errorf("%w %q", ErrUnsupportedHash, clip(alg))
		}
		if len(sum) != size {
			return fmt.Errorf("%w: %s digest of %d bytes", ErrMalformedHash, alg, len(sum))
		}
	}
	return nil
}
