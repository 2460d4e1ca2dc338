package rollback

import (
	"maps"

	"github.com/otaseal/otaseal/manifest"
)

// InstallPolicy is the anti-rollback policy a State applies in Check,
// Choose and Begin (StateOptions.Policy). The zero value is the safe policy: only
// strictly newer versions, never below the security-version floor.
type InstallPolicy struct {
	// AllowDowngrade lets a candidate with a lower version than the
	// installed one through when its security version equals the installed
	// image's (and so is at or above the floor): rolling back a feature
	// release that misbehaves, with no known vulnerability reintroduced.
	// State.Choose offers such a downgrade only when no release at or above
	// the installed version is listed any more (the operator withdrew it),
	// so that a device does not flip between two listed releases.
	// Setting it means trusting every release at that security version;
	// a lower security version stays refused whatever this says.
	AllowDowngrade bool
}

// Floors holds the committed security-version floor per hardware ID. A
// hardware ID without an entry has floor 0. Floors only rise, and only in
// Confirm (or Provision).
type Floors map[string]uint64

// Raised returns a copy of f with the floor of hardwareID raised to
// securityVersion, or left as it is if it was already higher. It never
// lowers a floor.
func (f Floors) Raised(hardwareID string, securityVersion uint64) Floors {
	out := maps.Clone(f)
	if out == nil {
		out = Floors{}
	}
	if securityVersion > out[hardwareID] {
		out[hardwareID] = securityVersion
	}
	return out
}

// check decides whether candidate may be installed on a device of
// hardwareID whose installed image is installed (nil if none is recorded)
// and whose committed floors are floors. It does no I/O. State.Check,
// State.Choose and State.Begin call it with what the State holds, so that
// the policy has one owner; callers outside the package ask the State.
//
// It returns nil or a *RefusedError unwrapping to ErrWrongHardware,
// ErrSecurityVersionLower, ErrVersionLower or ErrVersionEqual, checked in
// that order.
func check(hardwareID string, installed *Image, floors Floors, candidate *manifest.Firmware, p InstallPolicy) error {
	floor := floors[hardwareID]
	refuse := func(err error) error {
		r := &RefusedError{
			HardwareID:               hardwareID,
			Candidate:                candidate.Version,
			CandidateSecurityVersion: candidate.SecurityVersion,
			Floor:                    floor,
			Err:                      err,
		}
		if installed != nil {
			r.Installed = installed.Version
			r.InstalledSecurityVersion = installed.SecurityVersion
		}
		return r
	}
	// An image for other hardware may not even boot here; a signed image
	// for a sibling product must not be usable to brick this one.
	if !candidate.Supports(hardwareID) {
		return refuse(ErrWrongHardware)
	}
	// The replay attack: an old, validly signed image with a known hole.
	// The floor survives reinstalls of lower images and is what MCUboot's
	// security counter or Android's rollback index hold.
	if candidate.SecurityVersion < floor {
		return refuse(ErrSecurityVersionLower)
	}
	if installed == nil || installed.HardwareID != hardwareID {
		return nil
	}
	// The installed image's own security version counts as a floor too, in
	// case the floor record lags it (a device provisioned before floors).
	if candidate.SecurityVersion < installed.SecurityVersion {
		return refuse(ErrSecurityVersionLower)
	}
	switch c := candidate.Version.Compare(installed.Version); {
	case c == 0:
		return refuse(ErrVersionEqual)
	case c < 0:
		// A lower version with a higher security version is not a
		// downgrade "within the same security version": refuse it too.
		if !p.AllowDowngrade || candidate.SecurityVersion != installed.SecurityVersion {
			return refuse(ErrVersionLower)
		}
	}
	return nil
}

// choose returns the index in candidates of the highest version that check
// allows, or -1 and the refusal of the highest-version candidate when none
// is allowed (nil error for an empty list). It does no I/O.
func choose(hardwareID string, installed *Image, floors Floors, candidates []*manifest.Firmware, p InstallPolicy) (int, error) {
	// A downgrade is the way back from a release that was withdrawn. While
	// the repository still lists the installed version, or a newer one, an
	// allowed downgrade would be offered now and the newer release again
	// on the next check: the device would flip between them for ever.
	if p.AllowDowngrade && installed != nil && listsAtLeast(hardwareID, installed.Version, candidates) {
		p.AllowDowngrade = false
	}
	best, bestRefused := -1, -1
	var refusal error
	for i, c := range candidates {
		if err := check(hardwareID, installed, floors, c, p); err != nil {
			if bestRefused < 0 || c.Version.Compare(candidates[bestRefused].Version) > 0 {
				bestRefused, refusal = i, err
			}
			continue
		}
		if best < 0 || c.Version.Compare(candidates[best].Version) > 0 {
			best = i
		}
	}
	if best < 0 {
		return -1, refusal
	}
	return best, nil
}

// listsAtLeast reports whether candidates hold a release for hardwareID of
// version v or newer.
func listsAtLeast(hardwareID string, v manifest.Version, candidates []*manifest.Firmware) bool {
	for _, c := range candidates {
		if c.Supports(hardwareID) && c.Version.Compare(v) >= 0 {
			return true
		}
	}
	return false
}
