package sign

import (
	"fmt"

	"github.com/otaseal/otaseal/manifest"
)

// AddRolloutControl delegates the reserved role
// manifest.RoleRolloutControl from the top-level targets role, with no
// paths ("paths": []) and keys: the online keys an update server holds
// beside the snapshot and timestamp keys, to pause, cap or stop rollouts.
// The role can serve no target, and its document can only narrow what
// the offline targets role signed (see manifest.Control). Setting it up
// re-signs the top-level targets role at the next Publish, so it needs the
// offline targets key once; changing a control later does not.
func (r *Repository) AddRolloutControl(keys RoleKeys) error {
	// Paths is empty, not nil: "paths": [] is written, the one shape every
	// TUF client reads as a role trusted for no target.
	role := manifest.DelegatedRole{Name: manifest.RoleRolloutControl, Threshold: keys.Threshold, Paths: []string{}}
	return r.delegate(manifest.RoleTargets, role, keys)
}

// RolloutControl returns the control the repository holds, staged changes
// included, or ErrUnknownRole when AddRolloutControl was never called.
func (r *Repository) RolloutControl() (*manifest.Control, error) {
	md, ok := r.targets[manifest.RoleRolloutControl]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownRole, manifest.RoleRolloutControl)
	}
	return manifest.ControlOf(&md.Signed)
}

// SetRolloutControl stages rc as the control of the firmware release at
// targetPath: pause, stop or cap it. Publish then signs the control
// document with the control keys, and the snapshot and timestamp with
// theirs; no offline key is needed. targetPath must be a firmware target
// of this repository (ErrNoTarget otherwise), so that a typo does not
// leave the release running while the operator believes it paused.
func (r *Repository) SetRolloutControl(targetPath string, rc manifest.ReleaseControl) error {
	tf, _, ok := r.findTarget(targetPath)
	if !ok {
		return fmt.Errorf("%w: %q", ErrNoTarget, targetPath)
	}
	if _, err := manifest.FirmwareOf(tf); err != nil {
		return fmt.Errorf("sign: rollout control of %q: %w", targetPath, err)
	}
	return r.editControl(func(c *manifest.Control) { c.Releases[targetPath] = rc })
}

// ClearRolloutControl stages the removal of the control of targetPath, if
// any: the release follows its signed schedule again (resume).
func (r *Repository) ClearRolloutControl(targetPath string) error {
	return r.editControl(func(c *manifest.Control) { delete(c.Releases, targetPath) })
}

// RenewRolloutControl stages the control document unchanged, so that the
// next Publish signs a new version with a new expiry. An update server
// holding the control keys calls it before the document expires: a
// delegated control that has expired makes every device refuse to select
// (fail closed), which halts all updates.
func (r *Repository) RenewRolloutControl() error {
	return r.editControl(func(*manifest.Control) {})
}

// editControl applies edit to the control document and stages it, or
// changes nothing when the result breaks the schema.
func (r *Repository) editControl(edit func(*manifest.Control)) error {
	c, err := r.RolloutControl()
	if err != nil {
		return err
	}
	edit(c)
	md := r.targets[manifest.RoleRolloutControl]
	if err := manifest.SetControl(&md.Signed, *c); err != nil {
		return err
	}
	r.markDirty(manifest.RoleRolloutControl)
	return nil
}

// checkControl refuses to sign a rollout control document that could do
// more than narrow, however it came to be staged.
func checkControl(role string, md *manifest.Metadata[manifest.Targets]) error {
	if role != manifest.RoleRolloutControl {
		return nil
	}
	if _, err := manifest.ControlOf(&md.Signed); err != nil {
		return fmt.Errorf("sign: rollout control document: %w", err)
	}
	return nil
}
