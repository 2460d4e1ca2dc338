package sign

import (
	"fmt"
	"slices"
	"sort"

	"github.com/otaseal/otaseal/manifest"
)

// RolePolicy is who may sign one role: its keys and how many distinct ones
// must sign.
type RolePolicy struct {
	Name      string
	Threshold int
	Keys      map[string]*manifest.Key // by keyid
}

// KeyIDs returns the role's keyids in sorted order.
func (r *RolePolicy) KeyIDs() []string {
	ids := make([]string, 0, len(r.Keys))
	for id := range r.Keys {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Policy holds the role policies of a repository: the top-level roles from
// root and every delegated role from targets metadata. It answers two
// questions: may this key sign this role (Authorize), and do these
// signatures meet the role's threshold (Check).
type Policy struct {
	roles    map[string]*RolePolicy
	succinct []succinctPolicy
	// revoked[role][keyid]: keys an earlier root listed for role and the
	// current one does not. A signature from one is refused by name, so a
	// stolen, rotated-out key is reported as such rather than as a stranger.
	revoked map[string]map[string]bool
	// prevRoot is the previous root's root role during a rotation: TUF
	// 5.3.4 requires a new root to meet both its own threshold and the
	// threshold of the root it replaces.
	prevRoot *RolePolicy
}

type succinctPolicy struct {
	sr     *manifest.SuccinctRoles
	policy *RolePolicy
}

// PolicyFromRoot returns the policy of the four top-level roles. Each role's
// keys are checked: every listed keyid must be the true id of its key (a
// root that files key B under key A's id would let B sign as A), and the
// threshold must be between 1 and the number of keys.
func PolicyFromRoot(root *manifest.Root) (*Policy, error) {
	p := &Policy{roles: map[string]*RolePolicy{}, revoked: map[string]map[string]bool{}}
	for _, name := range []string{manifest.RoleRoot, manifest.RoleTargets, manifest.RoleSnapshot, manifest.RoleTimestamp} {
		r, ok := root.Roles[name]
		if !ok || r == nil {
			return nil, fmt.Errorf("%w: root has no %q role", ErrBadPolicy, name)
		}
		rp, err := rolePolicy(name, r.KeyIDs, r.Threshold, root.Keys)
		if err != nil {
			return nil, err
		}
		p.roles[name] = rp
	}
	return p, nil
}

func rolePolicy(name string, keyIDs []string, threshold int, keys map[string]*manifest.Key) (*RolePolicy, error) {
	rp := &RolePolicy{Name: name, Threshold: threshold, Keys: map[string]*manifest.Key{}}
	for _, id := range keyIDs {
		k, ok := keys[id]
		if !ok {
			return nil, fmt.Errorf("%w: role %q lists key %s that is not in the key list", ErrBadPolicy, name, shortID(id))
		}
		got, err := KeyID(k)
		if err != nil {
			return nil, err
		}
		if got != id {
			return nil, fmt.Errorf("%w: role %q lists key %s under the id of another key", ErrBadPolicy, name, shortID(got))
		}
		if _, dup := rp.Keys[id]; dup {
			return nil, fmt.Errorf("%w: role %q lists key %s twice", ErrBadPolicy, name, shortID(id))
		}
		rp.Keys[id] = k
	}
	// A threshold of 0 would accept an unsigned document; a threshold above
	// the key count can never be met and locks the role out for good.
	if threshold < 1 || threshold > len(rp.Keys) {
		return nil, fmt.Errorf("%w: role %q has threshold %d with %d keys", ErrBadPolicy, name, threshold, len(rp.Keys))
	}
	return rp, nil
}

// AddDelegations adds the roles that a targets role delegates to.
func (p *Policy) AddDelegations(d *manifest.Delegations) error {
	if d == nil {
		return nil
	}
	if d.SuccinctRoles != nil && len(d.Roles) > 0 {
		return fmt.Errorf("%w: delegations with both roles and succinct_roles", ErrBadPolicy)
	}
	for _, r := range d.Roles {
		if _, exists := p.roles[r.Name]; exists || isTopLevel(r.Name) {
			return fmt.Errorf("%w: role %q delegated twice or shadows a top-level role", ErrBadPolicy, r.Name)
		}
		rp, err := rolePolicy(r.Name, r.KeyIDs, r.Threshold, d.Keys)
		if err != nil {
			return err
		}
		p.roles[r.Name] = rp
	}
	if sr := d.SuccinctRoles; sr != nil {
		rp, err := rolePolicy(sr.NamePrefix+"-*", sr.KeyIDs, sr.Threshold, d.Keys)
		if err != nil {
			return err
		}
		p.succinct = append(p.succinct, succinctPolicy{sr: sr, policy: rp})
	}
	return nil
}

// NoteRevoked records, for each role of prev, the keys that the policy's
// current root no longer lists: signatures by those keys are then refused
// with ErrRevokedKey.
func (p *Policy) NoteRevoked(prev *manifest.Root) {
	for name, r := range prev.Roles {
		cur, ok := p.roles[name]
		if !ok || r == nil {
			continue
		}
		for _, id := range r.KeyIDs {
			if _, still := cur.Keys[id]; still {
				continue
			}
			if p.revoked[name] == nil {
				p.revoked[name] = map[string]bool{}
			}
			p.revoked[name][id] = true
		}
	}
}

// Role returns the policy of role, or ErrUnknownRole.
func (p *Policy) Role(role string) (*RolePolicy, error) {
	if rp, ok := p.roles[role]; ok {
		return rp, nil
	}
	for _, s := range p.succinct {
		if s.sr.IsDelegatedRole(role) {
			rp := *s.policy
			rp.Name = role
			return &rp, nil
		}
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownRole, role)
}

// Authorize reports whether the key keyID may sign role. The error is a
// *KeyError naming both: ErrRevokedKey for a key rotated out of the role,
// ErrWrongRole for a key of another role (a stolen timestamp key used to
// sign targets), ErrUnknownKey otherwise.
func (p *Policy) Authorize(role, keyID string) error {
	rp, err := p.Role(role)
	if err != nil {
		return err
	}
	if _, ok := rp.Keys[keyID]; ok {
		return nil
	}
	if role == manifest.RoleRoot && p.prevRoot != nil {
		if _, ok := p.prevRoot.Keys[keyID]; ok {
			return nil
		}
	}
	if p.revoked[role][keyID] {
		return &KeyError{Role: role, KeyID: keyID, OtherRole: role, Err: ErrRevokedKey}
	}
	if other := p.roleOf(keyID); other != "" {
		return &KeyError{Role: role, KeyID: keyID, OtherRole: other, Err: ErrWrongRole}
	}
	return &KeyError{Role: role, KeyID: keyID, Err: ErrUnknownKey}
}

func (p *Policy) roleOf(keyID string) string {
	names := make([]string, 0, len(p.roles))
	for n := range p.roles {
		names = append(names, n)
	}
	sort.Strings(names) // deterministic evidence
	for _, n := range names {
		if _, ok := p.roles[n].Keys[keyID]; ok {
			return n
		}
	}
	for _, s := range p.succinct {
		if _, ok := s.policy.Keys[keyID]; ok {
			return s.policy.Name
		}
	}
	return ""
}

// Report says who signed a document and whether that is enough.
type Report struct {
	Role      string
	Threshold int
	SignedBy  []string // keyids of the role with a verified signature, sorted
	Missing   []string // keyids of the role without one, sorted
	Met       bool
	// Previous is the check against the previous root's threshold during a
	// root rotation; nil otherwise. Met is true only if both are met.
	Previous *Report
}

// Check verifies each signature on payload against the policy of role and
// counts distinct keys. Every signature must verify and come from a key
// allowed for the role, and each key may sign once: a duplicate, tampered,
// unknown, revoked or wrong-role signature is a *KeyError, not silently
// skipped, because it is evidence of a mistake or an attack. Below the
// threshold the error is a *manifest.ThresholdError; the Report is filled either way.
func (p *Policy) Check(role string, payload []byte, sigs []manifest.Signature) (Report, error) {
	rp, err := p.Role(role)
	if err != nil {
		return Report{}, err
	}
	seen := map[string]bool{}
	for _, s := range sigs {
		if seen[s.KeyID] {
			return Report{}, &KeyError{Role: role, KeyID: s.KeyID, Err: ErrDuplicateSignature}
		}
		seen[s.KeyID] = true
		if err := p.Authorize(role, s.KeyID); err != nil {
			return Report{}, err
		}
		key := rp.Keys[s.KeyID]
		if key == nil && p.prevRoot != nil {
			key = p.prevRoot.Keys[s.KeyID]
		}
		if err := verifyWith(key, s.Signature, payload); err != nil {
			return Report{}, &KeyError{Role: role, KeyID: s.KeyID, Err: err}
		}
	}
	rep := tally(rp, seen)
	rep.Role = role
	if role == manifest.RoleRoot && p.prevRoot != nil {
		prev := tally(p.prevRoot, seen)
		prev.Role = manifest.RoleRoot + " (previous)"
		rep.Previous = &prev
		rep.Met = rep.Met && prev.Met
		if !prev.Met {
			return rep, &manifest.ThresholdError{Role: prev.Role, Threshold: prev.Threshold, SignedBy: prev.SignedBy, Missing: prev.Missing}
		}
	}
	if len(rep.SignedBy) < rep.Threshold {
		return rep, &manifest.ThresholdError{Role: role, Threshold: rep.Threshold, SignedBy: rep.SignedBy, Missing: rep.Missing}
	}
	return rep, nil
}

// tally counts the role's keys among the verified signers. Distinct keyids
// of one role are distinct keys (rolePolicy checked each id against its
// key), but one public key listed under two spellings is counted once.
func tally(rp *RolePolicy, verified map[string]bool) Report {
	rep := Report{Threshold: rp.Threshold}
	var counted []*manifest.Key
	for _, id := range rp.KeyIDs() {
		if !verified[id] {
			rep.Missing = append(rep.Missing, id)
			continue
		}
		k := rp.Keys[id]
		if slices.ContainsFunc(counted, func(c *manifest.Key) bool { return samePublicKey(c, k) }) {
			continue
		}
		counted = append(counted, k)
		rep.SignedBy = append(rep.SignedBy, id)
	}
	rep.Met = len(rep.SignedBy) >= rep.Threshold
	return rep
}

func isTopLevel(name string) bool {
	switch name {
	case manifest.RoleRoot, manifest.RoleTargets, manifest.RoleSnapshot, manifest.RoleTimestamp:
		return true
	}
	return false
}
