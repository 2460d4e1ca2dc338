package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/rollback"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Select's two answers when there is nothing to install. Neither wraps the
// other: a device that is up to date is fine, while a device whose hardware
// ID has no release in the repository is most likely misconfigured (or its
// releases were never published) and should say so.
var (
	// ErrNoUpdate reports that the repository has releases for the
	// device's hardware ID, but none newer than the installed one (or
	// allowed by the rollback policy). It wraps the policy's refusal of the
	// newest release, if there was one, so that a caller can tell "up to
	// date" (rollback.ErrVersionEqual) from "only older or lower-security
	// releases offered" (rollback.ErrVersionLower,
	// rollback.ErrSecurityVersionLower).
	ErrNoUpdate = errors.New("verify: no update")
	// ErrNoReleases reports that the trusted targets hold no release at
	// all for the device's hardware ID.
	ErrNoReleases = errors.New("verify: no releases for this hardware ID")
)

// Update is the release chosen for a device and the cheapest verified way
// to get it.
type Update struct {
	// Release is the firmware target to install; its Firmware says the
	// version, security version, severity and advisories to log or show.
	Release manifest.Release
	// Role is the TUF role that signed the release.
	Role string
	// Patch, if not nil, is a delta target from the installed image
	// (matched by its sha256) to Release: download it instead of the image.
	Patch *manifest.Patch
	// HardwareID is the device hardware ID the release was selected for
	// (DeviceState.HardwareID); Image records it.
	HardwareID string
	// Notices say why newer releases were passed over for this one
	// (*NotEligibleError, *WithdrawnError), and hold a *WithdrawnError
	// with Installed set when the device runs a withdrawn release. An
	// agent logs each.
	Notices []error
}

// Image returns the record of the update as the image of slot: what
// rollback.State.Begin takes before a byte is written to slot, so that the
// state's pending record describes exactly the signed release (its path,
// versions, length and sha256).
func (u *Update) Image(slot string) rollback.Image {
	fw := u.Release.Firmware
	img := rollback.Image{HardwareID: u.HardwareID, TargetPath: u.Release.Path, Slot: slot}
	if fw != nil {
		img.Version, img.SecurityVersion = fw.Version, fw.SecurityVersion
	}
	if u.Release.File != nil {
		// An encrypted release is recorded by its plaintext: that is what
		// the slot holds and what a later delta names as its base.
		img.Length, img.SHA256 = manifest.ImageOf(u.Release.File, u.Release.Firmware)
	}
	return img
}

// DeviceState is what Select asks of a device's trusted state: its
// hardware, its installed image and its rollback policy.
// *rollback.State implements it; Select holds no policy of its own, so it
// never offers a release that the state's Begin would refuse, and a device
// cannot ask for another hardware's releases.
type DeviceState interface {
	// HardwareID is the device's hardware ID; Select looks only at
	// releases under "HARDWAREID/".
	HardwareID() string
	// Status reports the installed image (nil on a device never
	// provisioned), whose hash picks a delta.
	Status(ctx context.Context) (rollback.Status, error)
	// Choose returns the index of the candidate to install, or -1 with
	// the *rollback.RefusedError of the newest candidate (nil for none)
	// when the policy allows none of them, or -1 with any other error when
	// the state cannot be read.
	Choose(ctx context.Context, candidates []*manifest.Firmware) (int, error)
	// RolloutID is the device's stable place in staged rollouts
	// (manifest.RolloutBucket).
	RolloutID() string
}

// Select chooses what device should install: the newest release for its
// hardware that its rollback policy allows and that is neither withdrawn
// nor, by its staged rollout, still closed to this device; and a delta to
// it from the installed image if the repository has one. With nothing to
// install it returns ErrNoReleases when no release names the device's
// hardware ID, and ErrNoUpdate when none of them is one the policy allows.
//
// Rollout and withdrawal come after the policy: when they hold back the
// newest release the policy allows, Select takes the newest release above
// the installed version that they let through, and says in
// Update.Notices why the newer ones were skipped. When they let none
// through, the error lists the reasons, the release that opens first
// leading: a *NotEligibleError (ErrNotEligible) whose Until is when to
// check again, and a *WithdrawnError (ErrWithdrawn) for each withdrawn
// release. Rollouts are judged by the trusted clock's proven time (see
// ProvenClock) and the device's RolloutID; the floors never move here.
// A device running a withdrawn release finds a *WithdrawnError with
// Installed set in Update.Notices, or joined to the error.
//
// Releases are found in the top-level targets and in delegated roles whose
// path patterns can cover "HARDWAREID/...", the layout otaseal publishes
// (HARDWAREID/VERSION/FILE); when none are, in the hardware ID's release
// index (manifest.ReleaseIndex), which makes a hash-binned catalogue
// searchable: then every entry used is checked against the bin that signs
// its path. The chosen release is then resolved again
// through FindTarget, so that a role further down the graph can never
// override the role the TUF delegation order trusts for that path.
func (c *Client) Select(ctx context.Context, device DeviceState) (*Update, error) {
	if c.trusted == nil {
		return nil, ErrNotRefreshed
	}
	hardwareID := device.HardwareID()
	var all []found
	err := c.walkFor(ctx, hardwareID, func(role string, doc *manifest.Targets) error {
		rels, err := manifest.FirmwareFor(doc, hardwareID)
		if err != nil {
			return &RoleError{Role: role, Err: err}
		}
		for _, r := range rels {
			all = append(all, found{rel: r, role: role, doc: doc})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(all) == 0 {
		// A hash-binned catalogue: search its release index.
		if all, err = c.releasesFromIndex(ctx, hardwareID); err != nil {
			return nil, err
		}
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("%w: %q", ErrNoReleases, hardwareID)
	}
	status, err := device.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("verify: device state: %w", err)
	}
	rels := make([]manifest.Release, len(all))
	for i := range all {
		rels[i] = all[i].rel
	}
	notice := installedNotice(rels, status.Installed)
	best, err := choose(ctx, device, rels)
	if err != nil {
		return nil, withNotice(err, notice)
	}
	ctl, err := c.rolloutControl(ctx)
	if err != nil {
		return nil, withNotice(err, notice)
	}
	g := gate{id: device.RolloutID(), now: c.rolloutNow(), ctl: ctl}
	chosen := all[best]
	if held := holdBack(chosen.rel, g); held != nil {
		chosen, err = chooseOpen(ctx, device, all, status, g, held, chosen.rel.Firmware.Version)
		if err != nil {
			return nil, withNotice(err, notice)
		}
	}
	// The authoritative entry for the path is the one the delegation
	// order finds; it must be the one we chose.
	tf, role, err := c.FindTarget(ctx, chosen.rel.Path)
	if err != nil {
		return nil, err
	}
	if chosen.indexed {
		if role, err = c.checkIndexed(ctx, chosen.rel.Path, chosen.rel.File); err != nil {
			return nil, err
		}
	} else if role != chosen.role || tf.Length != chosen.rel.File.Length || !tf.Hashes.Equal(chosen.rel.File.Hashes) {
		return nil, &RoleError{Role: chosen.role, Err: fmt.Errorf("%w: %s is served by %s, not %s", manifest.ErrRepository, chosen.rel.Path, role, chosen.role)}
	}
	patch, err := patchFrom(chosen.doc, chosen.rel.Path, tf, status.Installed)
	if err != nil {
		return nil, &RoleError{Role: role, Err: err}
	}
	if patch != nil && chosen.indexed {
		if _, err := c.checkIndexed(ctx, patch.Path, patch.File); err != nil {
			return nil, err
		}
	}
	u := &Update{Release: chosen.rel, Role: role, Patch: patch, HardwareID: hardwareID, Notices: chosen.notices}
	if notice != nil {
		u.Notices = append(u.Notices, notice)
	}
	return u, nil
}

// found is a release, the role that signed it and the document it is in.
type found struct {
	rel     manifest.Release
	role    string
	doc     *manifest.Targets
	notices []error // why newer releases were passed over for it
	// indexed: found in a release index, to be checked against the role
	// that signs its path.
	indexed bool
}

// choose asks the device's policy for the newest release it allows and
// returns its index in rels.
func choose(ctx context.Context, device DeviceState, rels []manifest.Release) (int, error) {
	candidates := make([]*manifest.Firmware, len(rels))
	for i := range rels {
		candidates[i] = rels[i].Firmware
	}
	best, err := device.Choose(ctx, candidates)
	var refused *rollback.RefusedError
	switch {
	case err != nil && !errors.As(err, &refused):
		return -1, fmt.Errorf("verify: device state: %w", err)
	case err != nil:
		return -1, fmt.Errorf("%w: %w", ErrNoUpdate, err)
	case best < 0:
		return -1, ErrNoUpdate
	case best >= len(rels):
		return -1, fmt.Errorf("verify: device state chose candidate %d of %d", best, len(rels))
	}
	return best, nil
}

// chooseOpen is Select's second choice, once rollout or withdrawal held
// back newest, the release the policy chose: the newest release the policy
// allows among those they let through, with why the ones above it were
// skipped. With none, the error is the skipped ones' reasons.
func chooseOpen(ctx context.Context, device DeviceState, all []found, status rollback.Status, g gate, held error, newest manifest.Version) (found, error) {
	var open []found
	var openRels, allRels []manifest.Release
	for _, f := range all {
		allRels = append(allRels, f.rel)
		if holdBack(f.rel, g) == nil {
			open = append(open, f)
			openRels = append(openRels, f.rel)
		}
	}
	floor := status.Floors[device.HardwareID()]
	var above *manifest.Version
	if status.Installed != nil {
		above = &status.Installed.Version
	}
	best := -1
	if len(openRels) > 0 {
		var err error
		best, err = choose(ctx, device, openRels)
		if err != nil && !errors.Is(err, ErrNoUpdate) {
			return found{}, err
		}
	}
	// held leads the reasons if the policy's bounds left it out (a
	// downgrade the policy allows is below the installed version).
	reasons := func(above *manifest.Version) []error {
		r := skipped(allRels, g, above, newest, floor)
		if len(r) == 0 {
			r = []error{held}
		}
		return r
	}
	if best < 0 {
		return found{}, errors.Join(reasons(above)...)
	}
	chosen := open[best]
	chosen.notices = reasons(&chosen.rel.Firmware.Version)
	return chosen, nil
}

// patchFrom returns the delta in doc from the installed image to the
// release at path, whose trusted entry is tf, or nil if there is none
// worth taking.
func patchFrom(doc *manifest.Targets, path string, tf *manifest.TargetFile, installed *rollback.Image) (*manifest.Patch, error) {
	if installed == nil || len(installed.SHA256) == 0 {
		return nil, nil
	}
	patches, err := manifest.DeltasTo(doc, path, installed.SHA256)
	if err != nil {
		return nil, err
	}
	for i := range patches {
		p := patches[i]
		// A patch only pays when it is smaller than the image itself,
		// and must come from exactly the installed image.
		if p.File.Length < tf.Length && p.Delta.From.Length == installed.Length && bytes.Equal(p.Delta.From.SHA256, installed.SHA256) {
			return &p, nil
		}
	}
	return nil, nil
}

// walkFor visits, in delegation order, the top-level targets and every
// delegated role (by path patterns) that may hold paths under
// "hardwareID/", calling fn with each trusted document. Terminating flags
// do not cut this enumeration short: Select resolves its choice through
// FindTarget, which honours them.
func (c *Client) walkFor(ctx context.Context, hardwareID string, fn func(role string, doc *manifest.Targets) error) error {
	return c.walk(ctx, hardwareID, func(role string, doc *manifest.Targets) ([]metadata.RoleResult, bool, error) {
		if err := fn(role, doc); err != nil {
			return nil, true, err
		}
		if doc.Delegations == nil {
			return nil, false, nil
		}
		var children []metadata.RoleResult
		for _, r := range doc.Delegations.Roles {
			if coversHardware(r.Paths, hardwareID) {
				children = append(children, metadata.RoleResult{Name: r.Name})
			}
		}
		return children, false, nil
	})
}

// coversHardware reports whether a path pattern's first component matches
// hardwareID, so that the role may hold releases for it. Hash-prefix and
// succinct delegations cannot be enumerated without fetching every bin and
// are not searched here.
func coversHardware(patterns []string, hardwareID string) bool {
	for _, p := range patterns {
		first, _, _ := strings.Cut(p, "/")
		if ok, _ := path.Match(first, hardwareID); ok {
			return true
		}
	}
	return false
}
