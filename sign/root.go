package sign

import (
	"fmt"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/otaseal/otaseal/manifest"
)

// RoleKeys lists the keys of one role and how many must sign.
type RoleKeys struct {
	Keys      []*manifest.Key
	Threshold int
}

// RootSpec is the content of a root document: the keys and threshold of
// each top-level role, and whether the repository uses consistent
// snapshots.
type RootSpec struct {
	Roles map[string]RoleKeys // root, targets, snapshot, timestamp
	// AllowInPlaceMetadata turns consistent snapshots off: metadata and
	// target files are then overwritten under fixed names, so a client
	// refreshing while a publish is in progress (or after one failed
	// halfway) can see a snapshot and a targets file that do not match,
	// and a cache can serve a stale mix. The zero value keeps consistent
	// snapshots on, which makes every publish atomic for clients.
	AllowInPlaceMetadata bool
}

// NewRoot returns an unsigned version-1 root for spec, expiring at expires.
// The role policies are validated as PolicyFromRoot does, so a root that
// could never be signed or verified is refused before any ceremony.
func NewRoot(spec RootSpec, expires time.Time) (*manifest.Metadata[manifest.Root], error) {
	root := metadata.Root(expires.UTC().Truncate(time.Second))
	root.Signed.ConsistentSnapshot = !spec.AllowInPlaceMetadata
	if err := applyRoles(&root.Signed, spec.Roles); err != nil {
		return nil, err
	}
	return root, nil
}

func applyRoles(root *manifest.Root, roles map[string]RoleKeys) error {
	for name := range roles {
		if !isTopLevel(name) {
			return fmt.Errorf("%w: root cannot hold role %q", ErrBadPolicy, name)
		}
	}
	keys := map[string]*manifest.Key{}
	newRoles := map[string]*manifest.Role{}
	for _, name := range []string{manifest.RoleRoot, manifest.RoleTargets, manifest.RoleSnapshot, manifest.RoleTimestamp} {
		rk, ok := roles[name]
		if !ok {
			return fmt.Errorf("%w: no keys for role %q", ErrBadPolicy, name)
		}
		r := &manifest.Role{Threshold: rk.Threshold, KeyIDs: []string{}}
		for _, k := range rk.Keys {
			if _, err := PublicKeyOf(k); err != nil {
				return fmt.Errorf("role %q: %w", name, err)
			}
			id, err := KeyID(k)
			if err != nil {
				return err
			}
			keys[id] = copyKey(k)
			r.KeyIDs = append(r.KeyIDs, id)
		}
		newRoles[name] = r
	}
	candidate := *root
	candidate.Keys, candidate.Roles = keys, newRoles
	if _, err := PolicyFromRoot(&candidate); err != nil {
		return err
	}
	root.Keys, root.Roles = keys, newRoles
	return nil
}

// NextRoot returns an unsigned successor of prev: version prev+1, expiring
// at expires, with the role keys of spec. Sign it with RotationPolicy(prev,
// next) so that both the old and the new root keys meet their thresholds.
//
// To revoke a compromised key of any role, leave it out of spec: clients
// that accept the new root stop trusting it, and Policy reports its
// signatures as ErrRevokedKey. Rotating the timestamp or snapshot keys is
// also how a repository recovers from a fast-forward attack (TUF 5.3.11):
// clients that see those keys change discard their trusted timestamp and
// snapshot, so the inflated versions an attacker signed stop mattering.
func NextRoot(prev *manifest.Metadata[manifest.Root], spec RootSpec, expires time.Time) (*manifest.Metadata[manifest.Root], error) {
	next := metadata.Root(expires.UTC().Truncate(time.Second))
	next.Signed.Version = prev.Signed.Version + 1
	next.Signed.ConsistentSnapshot = !spec.AllowInPlaceMetadata
	if err := applyRoles(&next.Signed, spec.Roles); err != nil {
		return nil, err
	}
	return next, nil
}

// SpecOf returns the RootSpec of a root document, to edit for NextRoot.
func SpecOf(root *manifest.Root) RootSpec {
	spec := RootSpec{Roles: map[string]RoleKeys{}, AllowInPlaceMetadata: !root.ConsistentSnapshot}
	for name, r := range root.Roles {
		rk := RoleKeys{Threshold: r.Threshold}
		for _, id := range r.KeyIDs {
			if k, ok := root.Keys[id]; ok {
				rk.Keys = append(rk.Keys, copyKey(k))
			}
		}
		spec.Roles[name] = rk
	}
	return spec
}

// Without returns the keys of rk other than those with the given keyid.
func (rk RoleKeys) Without(keyID string) RoleKeys {
	out := RoleKeys{Threshold: rk.Threshold}
	for _, k := range rk.Keys {
		if id, err := KeyID(k); err == nil && id == keyID {
			continue
		}
		out.Keys = append(out.Keys, k)
	}
	return out
}

// VerifyRootRotation checks that next may replace prev (TUF 5.3.4): next's
// version is exactly prev's plus one, and next is signed by a threshold of
// prev's root keys and a threshold of its own. It uses this package's
// Policy (which names the keys) and then go-tuf's VerifyDelegate (what
// clients run), so a root this accepts is one clients accept.
func VerifyRootRotation(prev, next *manifest.Metadata[manifest.Root]) (Report, error) {
	if next.Signed.Version != prev.Signed.Version+1 {
		return Report{}, fmt.Errorf("%w: version %d does not follow %d", ErrRootRotation, next.Signed.Version, prev.Signed.Version)
	}
	p, err := RotationPolicy(&prev.Signed, &next.Signed)
	if err != nil {
		return Report{}, err
	}
	payload, err := Payload(next)
	if err != nil {
		return Report{}, err
	}
	rep, err := p.Check(manifest.RoleRoot, payload, next.Signatures)
	if err != nil {
		return rep, err
	}
	if err := prev.VerifyDelegate(manifest.RoleRoot, next); err != nil {
		return rep, fmt.Errorf("%w: previous root: %v", ErrRootRotation, manifest.TranslateError(err))
	}
	if err := next.VerifyDelegate(manifest.RoleRoot, next); err != nil {
		return rep, fmt.Errorf("%w: new root: %v", ErrRootRotation, manifest.TranslateError(err))
	}
	return rep, nil
}

// StageRoot returns an unsigned successor of the current root with the
// role keys of spec and a fresh expiry, for a signing ceremony. Sign it with
// RotationPolicy(current, next) and give it to SetRoot.
func (r *Repository) StageRoot(spec RootSpec) (*manifest.Metadata[manifest.Root], error) {
	return NextRoot(r.root, spec, r.opts.now().Add(orDefault(r.opts.RootExpiry, DefaultRootExpiry)))
}

// SetRoot stages next, a signed successor of the current root, for the next
// Publish. If the rotation replaces the targets, snapshot or timestamp
// keys, pass the old keys to Publish as well as the new: the documents
// then carry both and verify under either root, and the root is written
// after the timestamp. Without the old keys the root is written just
// before the timestamp, and a client refreshing between the two writes
// fails until the timestamp lands, moments later. It must follow the current root by exactly one version and meet
// both the old and the new root thresholds (VerifyRootRotation). If the
// targets keys changed, the targets role is re-signed at Publish; snapshot
// and timestamp always are, with the new keys.
func (r *Repository) SetRoot(next *manifest.Metadata[manifest.Root]) error {
	// One root per Publish: every version must be written as
	// VERSION.root.json, since clients walk the chain one by one.
	if r.rootPending {
		return fmt.Errorf("%w: publish the staged root first", ErrRootRotation)
	}
	if _, err := VerifyRootRotation(r.root, next); err != nil {
		return err
	}
	if next.Signed.ConsistentSnapshot != r.root.Signed.ConsistentSnapshot {
		return fmt.Errorf("%w: switching consistent snapshots on a live repository renames every file", ErrRootRotation)
	}
	if !sameRole(r.root.Signed.Roles[manifest.RoleTargets], next.Signed.Roles[manifest.RoleTargets]) {
		r.markDirty(manifest.RoleTargets)
	}
	r.prevRoot, r.root = r.root, next
	r.rootPending = true
	return nil
}

func sameRole(a, b *manifest.Role) bool {
	if a == nil || b == nil || a.Threshold != b.Threshold || len(a.KeyIDs) != len(b.KeyIDs) {
		return false
	}
	ids := map[string]bool{}
	for _, id := range a.KeyIDs {
		ids[id] = true
	}
	for _, id := range b.KeyIDs {
		if !ids[id] {
			return false
		}
	}
	return true
}

// DeviceRoot returns the root document to build into devices as their
// first trusted root, and the storage name it is published under
// ("metadata/N.root.json"): the newest published root. Devices then follow
// later rotations from the repository on their own. A root staged by
// SetRoot is not returned before it is published.
func (r *Repository) DeviceRoot() (name string, data []byte, err error) {
	root := r.root
	if r.rootPending && !r.rootAdopted {
		root = r.prevRoot
	}
	if root == nil || r.timestamp == nil {
		return "", nil, fmt.Errorf("%w: nothing published yet", ErrNotInitialized)
	}
	data, err = root.ToBytes(false)
	if err != nil {
		return "", nil, err
	}
	return fmt.Sprintf("%s/%d.root.json", MetadataDir, root.Signed.Version), data, nil
}
