package rollback

import (
	"context"
	"fmt"
	"io"

	"github.com/otaseal/otaseal/manifest"
)

// Record names used in the Store.
const (
	installRecordName   = "install"
	clockRecordName     = "clock"
	rolloutIDRecordName = "rollout-id"
	metadataPrefix      = "metadata/"
)

// StateOptions configures a State.
type StateOptions struct {
	// HardwareID is this device's hardware ID. Its floor is mirrored in
	// Counter; installs for other hardware IDs are refused. Required.
	HardwareID string
	// Counter is the monotonic hardware counter confirm advances. Required
	// unless AllowNoCounter is set.
	Counter Counter
	// AllowNoCounter runs without a hardware counter. The floors then live
	// only in the Store: whoever can rewrite it can lower them.
	AllowNoCounter bool
	// Policy is the anti-rollback policy Check, Choose and Begin apply.
	Policy InstallPolicy
	// RolloutID is the device's stable ID in staged rollouts (see
	// State.RolloutID): a serial number or a certificate subject, at
	// most MaxRolloutIDLen bytes of one-line text. "" means a random ID
	// generated at the first OpenState and kept in the Store.
	RolloutID string
	// Rand is the randomness the rollout ID is generated from; nil means
	// crypto/rand.Reader.
	Rand io.Reader
}

// State is a device's trusted state in a Store: the installed image, a
// pending install, the security-version floors, and the trusted metadata
// of each TUF role. Every change is a compare-and-swap of one record, so a
// power cut at any point leaves the state before or after the change.
// State holds no cache: each call loads what it needs, so several States
// on one Store (or a State after a crash) agree.
type State struct {
	store     Store
	opts      StateOptions
	rolloutID string
}

// Status is a snapshot of the install state.
type Status struct {
	Installed *Image // nil before Provision
	Pending   *Image // nil unless an install is between Begin and Confirm/Revert
	// Floors are the committed floors, the device's own raised to the
	// hardware counter's value: the floors the policy applies.
	Floors Floors
}

// OpenState returns the State kept in store. If a crash interrupted a Confirm
// between committing the floor and advancing the hardware counter, OpenState
// finishes it. On a device's first start it also generates the rollout ID
// (see RolloutID) unless StateOptions.RolloutID configures one.
func OpenState(ctx context.Context, store Store, opts StateOptions) (*State, error) {
	if opts.HardwareID == "" {
		return nil, fmt.Errorf("rollback: StateOptions.HardwareID is required")
	}
	if opts.Counter == nil && !opts.AllowNoCounter {
		return nil, ErrNoCounter
	}
	s := &State{store: store, opts: opts}
	rec, _, err := s.load(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.advanceCounter(ctx, rec.Floors); err != nil {
		return nil, err
	}
	if s.rolloutID, err = s.openRolloutID(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *State) load(ctx context.Context) (installRecord, uint64, error) {
	r, err := s.store.Load(ctx, installRecordName)
	if err != nil {
		return installRecord{}, 0, err
	}
	if !r.Exists() {
		return installRecord{Floors: Floors{}}, r.Seq, nil
	}
	rec, err := unmarshalInstall(r.Data)
	if err != nil {
		return installRecord{}, 0, &CorruptError{Name: installRecordName, Reason: err.Error()}
	}
	return rec, r.Seq, nil
}

func (s *State) save(ctx context.Context, seq uint64, rec installRecord) error {
	b, err := rec.marshal()
	if err != nil {
		return err
	}
	_, err = s.store.CompareAndSwap(ctx, installRecordName, seq, b)
	return err
}

// effectiveFloors raises the device's own floor to the hardware counter: a
// floors record rolled back on disk cannot undercut the counter.
func (s *State) effectiveFloors(ctx context.Context, f Floors) (Floors, error) {
	if s.opts.Counter == nil {
		return f.Raised(s.opts.HardwareID, 0), nil
	}
	v, err := s.opts.Counter.Value(ctx)
	if err != nil {
		return nil, fmt.Errorf("rollback: read counter: %w", err)
	}
	return f.Raised(s.opts.HardwareID, v), nil
}

func (s *State) advanceCounter(ctx context.Context, f Floors) error {
	if s.opts.Counter == nil {
		return nil
	}
	if err := s.opts.Counter.Advance(ctx, f[s.opts.HardwareID]); err != nil {
		return fmt.Errorf("rollback: advance counter: %w", err)
	}
	return nil
}

// Status returns the install state as stored now.
func (s *State) Status(ctx context.Context) (Status, error) {
	rec, _, err := s.load(ctx)
	if err != nil {
		return Status{}, err
	}
	floors, err := s.effectiveFloors(ctx, rec.Floors)
	if err != nil {
		return Status{}, err
	}
	return Status{Installed: rec.Installed, Pending: rec.Pending, Floors: floors}, nil
}

// Provision records the factory image on a device that has no installed
// image record, and sets its floor to that image's security version.
func (s *State) Provision(ctx context.Context, img Image) error {
	if err := img.Validate(); err != nil {
		return err
	}
	if img.HardwareID != s.opts.HardwareID {
		return fmt.Errorf("%w: %q on a %q device", ErrWrongHardware, img.HardwareID, s.opts.HardwareID)
	}
	rec, seq, err := s.load(ctx)
	if err != nil {
		return err
	}
	if rec.Installed != nil {
		return ErrAlreadyProvisioned
	}
	rec.Installed = img.clone()
	rec.Floors = rec.Floors.Raised(img.HardwareID, img.SecurityVersion)
	if err := s.save(ctx, seq, rec); err != nil {
		return err
	}
	return s.advanceCounter(ctx, rec.Floors)
}

// HardwareID returns the hardware ID the State was opened for
// (StateOptions.HardwareID): the only one whose images it lets through.
func (s *State) HardwareID() string { return s.opts.HardwareID }

// Check applies the policy to candidate against the installed image and
// the floors, without changing anything: the same decision Begin makes.
// It returns nil, a *RefusedError, or the error of reading the state.
func (s *State) Check(ctx context.Context, candidate *manifest.Firmware) error {
	installed, floors, err := s.policyInputs(ctx)
	if err != nil {
		return err
	}
	return check(s.opts.HardwareID, installed, floors, candidate, s.opts.Policy)
}

// Choose returns the index in candidates of the highest version that Check
// allows, without changing anything. When none is allowed it returns -1
// and the *RefusedError of the highest-version candidate (nil for no
// candidates), so that a caller can tell "up to date" (ErrVersionEqual)
// from "only older releases offered"; when the state cannot be read, -1
// and that error. Use it to pick a release before downloading it:
// verify.Client.Select does.
func (s *State) Choose(ctx context.Context, candidates []*manifest.Firmware) (int, error) {
	installed, floors, err := s.policyInputs(ctx)
	if err != nil {
		return -1, err
	}
	return choose(s.opts.HardwareID, installed, floors, candidates, s.opts.Policy)
}

// policyInputs loads what the policy compares a candidate with: the
// installed image and the floors in force.
func (s *State) policyInputs(ctx context.Context) (*Image, Floors, error) {
	rec, _, err := s.load(ctx)
	if err != nil {
		return nil, nil, err
	}
	floors, err := s.effectiveFloors(ctx, rec.Floors)
	if err != nil {
		return nil, nil, err
	}
	return rec.Installed, floors, nil
}

// Begin records candidate as the pending install, before anything is
// written to its slot. It re-applies the policy, refuses the slot the
// installed image runs from, and refuses a second candidate while one is
// pending. Beginning the same candidate again is a no-op, so an agent can
// retry after a power cut. Floors do not change.
func (s *State) Begin(ctx context.Context, candidate Image) error {
	if err := candidate.Validate(); err != nil {
		return err
	}
	rec, seq, err := s.load(ctx)
	if err != nil {
		return err
	}
	if rec.Installed == nil {
		return ErrNotProvisioned
	}
	if rec.Pending != nil {
		if rec.Pending.Equal(&candidate) {
			return nil
		}
		return fmt.Errorf("%w: %s in slot %q", ErrPendingExists, rec.Pending.Version, rec.Pending.Slot)
	}
	if candidate.Slot == rec.Installed.Slot {
		return fmt.Errorf("%w: %q", ErrActiveSlot, candidate.Slot)
	}
	floors, err := s.effectiveFloors(ctx, rec.Floors)
	if err != nil {
		return err
	}
	if err := check(s.opts.HardwareID, rec.Installed, floors, candidate.firmware(), s.opts.Policy); err != nil {
		return err
	}
	rec.Pending = candidate.clone()
	return s.save(ctx, seq, rec)
}

// Confirm commits the pending install: call it only after the new image
// has booted and passed its health check. In one compare-and-swap the
// pending image becomes the installed one and its hardware ID's floor rises
// to its security version; then the hardware counter advances. It returns
// the newly installed image.
//
// This is the only place a floor rises after provisioning: a release that
// fails to boot is reverted with the floors untouched, so the old image
// stays bootable.
//
// Confirm after a crash that followed a successful Confirm returns
// ErrNoPending; Status then shows the candidate installed.
func (s *State) Confirm(ctx context.Context) (Image, error) {
	rec, seq, err := s.load(ctx)
	if err != nil {
		return Image{}, err
	}
	if rec.Pending == nil {
		return Image{}, ErrNoPending
	}
	img := rec.Pending
	rec.Installed, rec.Pending = img, nil
	rec.Floors = rec.Floors.Raised(img.HardwareID, img.SecurityVersion)
	if err := s.save(ctx, seq, rec); err != nil {
		return Image{}, err
	}
	// A crash here leaves the counter behind the committed floor; OpenState
	// advances it on the next start.
	if err := s.advanceCounter(ctx, rec.Floors); err != nil {
		return Image{}, err
	}
	return *img.clone(), nil
}

// Revert drops the pending install (a failed download, boot or health
// check) and returns it. The installed image and the floors are untouched.
func (s *State) Revert(ctx context.Context) (Image, error) {
	rec, seq, err := s.load(ctx)
	if err != nil {
		return Image{}, err
	}
	if rec.Pending == nil {
		return Image{}, ErrNoPending
	}
	img := rec.Pending
	rec.Pending = nil
	if err := s.save(ctx, seq, rec); err != nil {
		return Image{}, err
	}
	return *img, nil
}

// Metadata returns the trusted metadata bytes stored for a TUF role
// ("root", "timestamp", "snapshot", "targets" or a delegated role's name).
// The bytes were verified when stored, but a caller re-verifies them at
// every start: they come from disk. Record.Seq is what SetMetadata expects.
// A role never stored loads as a Record without Data. A role whose stored
// copies are all damaged fails with ErrCorrupt; SetMetadata with oldSeq 0
// then starts it afresh (for root: from the root shipped with the device).
func (s *State) Metadata(ctx context.Context, role string) (Record, error) {
	return s.store.Load(ctx, metadataPrefix+role)
}

// SetMetadata stores the bytes of a newly verified document for role if
// the stored record is still at oldSeq, and returns the new sequence
// number. A nil data deletes the role's document (TUF's fast-forward
// recovery deletes the trusted timestamp and snapshot after a root
// rotation). The store's record limit bounds the size.
func (s *State) SetMetadata(ctx context.Context, role string, oldSeq uint64, data []byte) (uint64, error) {
	return s.store.CompareAndSwap(ctx, metadataPrefix+role, oldSeq, data)
}
