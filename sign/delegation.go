package sign

import (
	"fmt"
	"slices"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/otaseal/otaseal/manifest"
)

// Delegation hands part of a targets role's namespace to another role, e.g.
// one per hardware vendor ("acme-gw-r2/*"), so that a vendor's key can sign
// only its own images.
type Delegation struct {
	Name string
	// Paths are TUF path patterns; at least one. As in every TUF client,
	// "*" matches within one path segment only: "acme/*/*" covers
	// "acme/1.0.0/firmware.bin", "acme/*" does not.
	Paths []string
	// Terminating stops clients searching other delegations for a path this
	// role matches: without it, a later, less trusted role could supply an
	// image for "acme/..." that the vendor never listed.
	Terminating bool
	Keys        RoleKeys
}

// MaxHashBinBits bounds a hash-bin delegation to 2^14 bins.
const MaxHashBinBits = 14

// AddDelegation delegates paths from role parent to d.Name and creates the
// new, empty role. Both are signed at the next Publish, parent by its own
// keys and the new role by d's.
func (r *Repository) AddDelegation(parent string, d Delegation) error {
	if err := checkRoleName(d.Name); err != nil {
		return err
	}
	if len(d.Paths) == 0 {
		return fmt.Errorf("%w: delegation %q has no paths", ErrBadPolicy, d.Name)
	}
	role := manifest.DelegatedRole{Name: d.Name, Threshold: d.Keys.Threshold, Paths: d.Paths, Terminating: d.Terminating}
	return r.delegate(parent, role, d.Keys)
}

// delegate adds role, with keys, to parent's delegations and creates its
// empty document; both are published at the next Publish.
func (r *Repository) delegate(parent string, role manifest.DelegatedRole, keys RoleKeys) error {
	pmd, ok := r.targets[parent]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownRole, parent)
	}
	if _, exists := r.targets[role.Name]; exists {
		return fmt.Errorf("%w: %q", ErrRoleExists, role.Name)
	}
	dl := pmd.Signed.Delegations
	if dl != nil && dl.SuccinctRoles != nil {
		// TUF allows roles or succinct roles in one delegation, not both.
		return fmt.Errorf("%w: %q already delegates to hash bins, which a named delegation cannot join", ErrBadPolicy, parent)
	}
	next := &manifest.Delegations{Keys: map[string]*manifest.Key{}}
	if dl != nil {
		for id, k := range dl.Keys {
			next.Keys[id] = k
		}
		next.Roles = append(next.Roles, dl.Roles...)
	}
	ids, err := addKeys(next.Keys, keys)
	if err != nil {
		return fmt.Errorf("delegation %q: %w", role.Name, err)
	}
	role.KeyIDs = ids
	next.Roles = append(next.Roles, role)
	if err := (&Policy{roles: map[string]*RolePolicy{}}).AddDelegations(next); err != nil {
		return err
	}
	pmd.Signed.Delegations = next
	r.targets[role.Name] = metadata.Targets(r.opts.now())
	r.markDirty(parent)
	r.markDirty(role.Name)
	return nil
}

// AddHashBins delegates all of parent's remaining namespace to 2^bits
// succinct hash-bin roles named "prefix-XX" (TAP 15): a target belongs to
// the bin given by the first bits of the SHA-256 of its path. A catalogue
// of thousands of images then costs each client one small bin document
// instead of one huge targets file, and publishing one image re-signs one
// bin. All bins share keys and threshold. parent must not delegate
// otherwise (TUF allows either path delegations or succinct roles).
func (r *Repository) AddHashBins(parent, prefix string, bits int, keys RoleKeys) error {
	if err := checkRoleName(prefix); err != nil {
		return err
	}
	if bits < 1 || bits > MaxHashBinBits {
		return fmt.Errorf("%w: %d hash-bin bits (1..%d)", ErrBadPolicy, bits, MaxHashBinBits)
	}
	pmd, ok := r.targets[parent]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownRole, parent)
	}
	if dl := pmd.Signed.Delegations; dl != nil && (len(dl.Roles) > 0 || dl.SuccinctRoles != nil) {
		return fmt.Errorf("%w: %q already delegates", ErrBadPolicy, parent)
	}
	if len(pmd.Signed.Targets) > 0 {
		// Targets listed in parent would shadow their bins for clients.
		return fmt.Errorf("%w: %q lists targets; move them first", ErrBadPolicy, parent)
	}
	sr := &manifest.SuccinctRoles{NamePrefix: prefix, BitLength: bits, Threshold: keys.Threshold, KeyIDs: []string{}}
	next := &manifest.Delegations{Keys: map[string]*manifest.Key{}, SuccinctRoles: sr}
	for _, k := range keys.Keys {
		if _, err := PublicKeyOf(k); err != nil {
			return fmt.Errorf("hash bins %q: %w", prefix, err)
		}
		id, err := KeyID(k)
		if err != nil {
			return err
		}
		next.Keys[id] = copyKey(k)
		sr.KeyIDs = append(sr.KeyIDs, id)
	}
	if err := (&Policy{roles: map[string]*RolePolicy{}}).AddDelegations(next); err != nil {
		return err
	}
	for _, name := range sr.GetRoles() {
		if _, exists := r.targets[name]; exists {
			return fmt.Errorf("%w: %q", ErrRoleExists, name)
		}
	}
	pmd.Signed.Delegations = next
	r.markDirty(parent)
	for _, name := range sr.GetRoles() {
		r.targets[name] = metadata.Targets(r.opts.now())
		r.markDirty(name)
	}
	return nil
}

// checkRoleName keeps role names to characters that are safe in a file
// name and a URL on every system, since a role's metadata is stored and
// fetched as "ROLE.json", and refuses a top-level role's name in any letter
// case: a case-insensitive file system (macOS, Windows) would store a role
// named "Root" as root.json, on the repository's disk and on devices
// (manifest.CheckDelegatedRoleName, which devices apply too).
func checkRoleName(name string) error {
	if name == "" || len(name) > 128 || name[0] == '.' || name[0] == '-' {
		return fmt.Errorf("%w: role name %q: 1 to 128 bytes, not starting with \".\" or \"-\"", ErrBadName, clipText(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("%w: role name %q: only A-Z, a-z, 0-9, \"-\", \"_\" and \".\" are allowed", ErrBadName, clipText(name))
		}
	}
	if name == manifest.RoleRolloutControl {
		return fmt.Errorf("%w: role name %q is reserved for AddRolloutControl", ErrBadName, name)
	}
	if manifest.CheckDelegatedRoleName(name) != nil {
		return fmt.Errorf("%w: role name %q is reserved: a top-level role's name in any letter case (case-insensitive file systems store \"Root\" as root.json)", ErrBadName, name)
	}
	return nil
}

// SetDelegationKeys replaces the keys and threshold of the delegated role
// role, or of every bin of the hash-bin delegation whose prefix is role. It
// is how a compromised delegated key (a vendor's) is revoked: the
// delegating role is re-signed by its own keys and the role (each bin) by
// the new keys at the next Publish, after which clients no longer accept
// documents signed by the old key. Signatures by a removed key are refused
// as ErrRevokedKey by this Repository's Policy.
func (r *Repository) SetDelegationKeys(role string, keys RoleKeys) error {
	for parent, pmd := range r.targets {
		d := pmd.Signed.Delegations
		if d == nil {
			continue
		}
		var oldIDs []string
		var affected []string
		next := &manifest.Delegations{Keys: map[string]*manifest.Key{}}
		switch {
		case d.SuccinctRoles != nil && d.SuccinctRoles.NamePrefix == role:
			sr := *d.SuccinctRoles
			oldIDs = sr.KeyIDs
			ids, err := addKeys(next.Keys, keys)
			if err != nil {
				return err
			}
			sr.KeyIDs, sr.Threshold = ids, keys.Threshold
			next.SuccinctRoles = &sr
			affected = sr.GetRoles()
		default:
			found := false
			for _, dr := range d.Roles {
				if dr.Name == role {
					found = true
					oldIDs = dr.KeyIDs
					ids, err := addKeys(next.Keys, keys)
					if err != nil {
						return err
					}
					dr.KeyIDs, dr.Threshold = ids, keys.Threshold
				}
				next.Roles = append(next.Roles, dr)
			}
			if !found {
				continue
			}
			affected = []string{role}
			// Keep the keys the other roles still use.
			for _, dr := range next.Roles {
				for _, id := range dr.KeyIDs {
					if _, ok := next.Keys[id]; !ok {
						next.Keys[id] = d.Keys[id]
					}
				}
			}
		}
		if err := (&Policy{roles: map[string]*RolePolicy{}}).AddDelegations(next); err != nil {
			return err
		}
		pmd.Signed.Delegations = next
		r.markDirty(parent)
		for _, name := range affected {
			r.markDirty(name)
			for _, id := range oldIDs {
				if _, still := next.Keys[id]; !still || !containsID(next, name, id) {
					if r.revokedDelegated[name] == nil {
						r.revokedDelegated[name] = map[string]bool{}
					}
					r.revokedDelegated[name][id] = true
				}
			}
		}
		return nil
	}
	return fmt.Errorf("%w %q: not a delegated role or hash-bin prefix", ErrUnknownRole, role)
}

func addKeys(into map[string]*manifest.Key, keys RoleKeys) ([]string, error) {
	ids := []string{}
	for _, k := range keys.Keys {
		if _, err := PublicKeyOf(k); err != nil {
			return nil, err
		}
		id, err := KeyID(k)
		if err != nil {
			return nil, err
		}
		into[id] = copyKey(k)
		ids = append(ids, id)
	}
	return ids, nil
}

// containsID reports whether role (a named role or a bin) lists keyid in d.
func containsID(d *manifest.Delegations, role, keyID string) bool {
	if d.SuccinctRoles != nil && d.SuccinctRoles.IsDelegatedRole(role) {
		return slices.Contains(d.SuccinctRoles.KeyIDs, keyID)
	}
	for _, dr := range d.Roles {
		if dr.Name == role {
			return slices.Contains(dr.KeyIDs, keyID)
		}
	}
	return false
}

// TargetsRoles returns the names of every targets role the repository
// holds in the order a TUF client searching for a path meets them:
// "targets" first, then depth first each delegated role followed by its
// own delegations (path delegations in their listed order, hash bins in
// bin order).
func (r *Repository) TargetsRoles() []string {
	var out []string
	stack := []string{manifest.RoleTargets}
	seen := map[string]bool{}
	for len(stack) > 0 {
		role := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		md, ok := r.targets[role]
		if seen[role] || !ok {
			continue
		}
		seen[role] = true
		out = append(out, role)
		d := md.Signed.Delegations
		if d == nil {
			continue
		}
		children := make([]string, 0, len(d.Roles))
		for _, dr := range d.Roles {
			children = append(children, dr.Name)
		}
		if d.SuccinctRoles != nil {
			children = append(children, d.SuccinctRoles.GetRoles()...)
		}
		for i := len(children) - 1; i >= 0; i-- {
			stack = append(stack, children[i])
		}
	}
	return out
}
