package verify

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/otaseal/otaseal/encrypt"
	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/rollback"
)

// Reasons Check gives for having nothing to install, beside ErrNoUpdate
// (up to date, or only older releases offered) and ErrNoReleases (nothing
// published for this hardware ID). An agent logs each as its own line.
var (
	// ErrNotEligible: a newer release exists but its staged rollout has
	// not reached this device yet, by the trusted clock. Select returns
	// it as a *NotEligibleError saying until when.
	ErrNotEligible = errors.New("verify: release not yet eligible for this device")
	// ErrWithdrawn: a newer release (or the installed one) was withdrawn
	// by its publisher. Select returns it as a *WithdrawnError carrying
	// the reason and advisories.
	ErrWithdrawn = errors.New("verify: release withdrawn")
	// ErrPaused: a newer release is held back by the repository's online
	// rollout control (paused, stopped, or capped below this device's
	// place). Select returns it as a *PausedError; the release may come
	// back at a later refresh.
	ErrPaused = errors.New("verify: release held back by rollout control")
)

// Errors of the update cycle.
var (
	// ErrNotBegun: Install was called for an update the state has no
	// pending record of. Writing a slot the state does not know about is
	// how a device ends up offering the same update for ever.
	ErrNotBegun = errors.New("verify: no pending record for this update (call Begin first)")
	// ErrBootedSlot: the slot the device booted holds neither the
	// installed nor the pending image by the state's records.
	ErrBootedSlot = errors.New("verify: booted slot is neither the installed nor the pending one")
	// ErrSlotContent: a slot does not hold the image its record describes.
	ErrSlotContent = errors.New("verify: slot does not hold the image recorded for it")
	// ErrStateChanged: the state changed while Install ran, so that the
	// install is no longer pending or its slot now runs the installed
	// image (then the error also wraps rollback.ErrActiveSlot). Install
	// wrote nothing; the record belongs to whoever changed it, so the
	// agent must not Revert it.
	ErrStateChanged = errors.New("verify: device state changed during the install")
)

// Cycle is a device's update cycle bound to its trusted state: each step
// reads the state it needs and changes it with one compare-and-swap, so a
// new Cycle on the same state after a power cut carries on where the old
// one stopped. The steps, in the order an agent calls them:
//
//	Provision       once, at the factory: the image in the first slot
//	Resume(booted)  at every start: what the last run left pending
//	Check           refresh and select; a sentinel when nothing is to do
//	Begin           record the update as pending in the inactive slot
//	Install         write the slot: the delta first, then the full image
//	(reboot into the new slot, Resume says ResumeTrial, health check)
//	Confirm/Revert  commit (the floor rises) or drop the pending image
//
// The Client, State and Slots calls underneath stay available for agents
// that need another order. A Cycle is not safe for concurrent use.
type Cycle struct {
	Client *Client
	State  *rollback.State
	Slots  Slots
	// ScratchDir is InstallOptions.ScratchDir for bsdiff40 patches.
	ScratchDir string
}

// ResumeAction is what Resume found and did.
type ResumeAction int

const (
	// ResumeRunning: nothing is pending and the installed image booted;
	// call Check.
	ResumeRunning ResumeAction = iota + 1
	// ResumeTrial: the pending image booted. Run the health check, then
	// Confirm, or Revert and reboot into the installed slot.
	ResumeTrial
	// ResumeReverted: an install was pending but the installed image
	// booted: the install was cut short, or the new image failed to boot
	// and the bootloader fell back. Resume dropped the pending record with
	// the floors untouched; the next Check offers the update again.
	ResumeReverted
)

func (a ResumeAction) String() string {
	switch a {
	case ResumeRunning:
		return "running"
	case ResumeTrial:
		return "trial"
	case ResumeReverted:
		return "reverted"
	}
	return fmt.Sprintf("ResumeAction(%d)", int(a))
}

// Provision records, on a device never provisioned, that slot holds the
// signed release at targetPath: the factory image, taken from the
// repository rather than described by hand. It refreshes, looks the
// release up, checks that it is firmware for the state's hardware ID and
// that slot holds exactly its bytes (ErrSlotContent otherwise), then calls
// rollback.State.Provision, which sets the floor to its security version.
// A device already provisioned gets rollback.ErrAlreadyProvisioned.
// rollback.State.Provision stays for a factory without the repository.
func (c *Cycle) Provision(ctx context.Context, targetPath, slot string) (rollback.Image, error) {
	if err := c.Client.Refresh(ctx); err != nil {
		return rollback.Image{}, err
	}
	tf, role, err := c.Client.FindTarget(ctx, targetPath)
	if err != nil {
		return rollback.Image{}, err
	}
	fw, err := manifest.FirmwareOf(tf)
	if err != nil {
		return rollback.Image{}, &TargetError{Path: targetPath, Err: err}
	}
	hw := c.State.HardwareID()
	if !fw.Supports(hw) {
		return rollback.Image{}, &TargetError{Path: targetPath, Err: fmt.Errorf("%w: not for %q", rollback.ErrWrongHardware, hw)}
	}
	u := &Update{Release: manifest.Release{Path: targetPath, File: tf, Firmware: fw}, Role: role, HardwareID: hw}
	img := u.Image(slot)
	ok, err := c.SlotHolds(img)
	if err != nil {
		return rollback.Image{}, err
	}
	if !ok {
		return rollback.Image{}, fmt.Errorf("%w: slot %q, %s", ErrSlotContent, slot, targetPath)
	}
	return img, c.State.Provision(ctx, img)
}

// Resume reads the state after a start in which the device booted the
// slot named booted, and returns what to do with the image it concerns:
// the installed image (ResumeRunning), or the pending one (ResumeTrial,
// ResumeReverted). Calling it again gives the same answer.
func (c *Cycle) Resume(ctx context.Context, booted string) (ResumeAction, rollback.Image, error) {
	st, err := c.State.Status(ctx)
	if err != nil {
		return 0, rollback.Image{}, err
	}
	if st.Installed == nil {
		return 0, rollback.Image{}, rollback.ErrNotProvisioned
	}
	switch {
	case st.Pending != nil && booted == st.Pending.Slot:
		return ResumeTrial, *st.Pending, nil
	case booted != st.Installed.Slot:
		return 0, rollback.Image{}, fmt.Errorf("%w: booted %q, installed %q", ErrBootedSlot, booted, st.Installed.Slot)
	case st.Pending == nil:
		return ResumeRunning, *st.Installed, nil
	}
	img, err := c.State.Revert(ctx)
	if err != nil {
		return 0, rollback.Image{}, err
	}
	return ResumeReverted, img, nil
}

// Check refreshes the trusted metadata and selects the update the state
// allows (Client.Refresh, then Client.Select with the state). When there
// is nothing to install, the error says why: ErrNoUpdate, ErrNoReleases,
// ErrNotEligible (a *NotEligibleError: sleep until its Until) or
// ErrWithdrawn; see Select for the notices of an update. Any other
// error is a failure to check. With an install pending it refuses with
// rollback.ErrPendingExists: Resume decides about that one first.
func (c *Cycle) Check(ctx context.Context) (*Update, error) {
	st, err := c.State.Status(ctx)
	if err != nil {
		return nil, err
	}
	if p := st.Pending; p != nil {
		return nil, fmt.Errorf("%w: %s in slot %q: Resume first", rollback.ErrPendingExists, p.Version, p.Slot)
	}
	if err := c.Client.Refresh(ctx); err != nil {
		return nil, err
	}
	return c.Client.Select(ctx, c.State)
}

// Begin records u as the pending install into slot, before a byte is
// written there (rollback.State.Begin with u.Image(slot)), and returns the
// record. Beginning the same update in the same slot again is a no-op.
//
// An encrypted update that none of the Client's DecryptionKeys can open is
// refused here (ErrNoDecryptionKey), before the state changes.
func (c *Cycle) Begin(ctx context.Context, u *Update, slot string) (rollback.Image, error) {
	if err := c.Client.Decryptable(ctx, u); err != nil {
		return rollback.Image{}, err
	}
	img := u.Image(slot)
	if err := c.State.Begin(ctx, img); err != nil {
		return rollback.Image{}, err
	}
	return img, nil
}

// InstallReport says how Install got the image.
type InstallReport struct {
	Slot string // the slot written, the pending record's
	// Patch is the delta target the image was built from, or "" when the
	// full image was downloaded.
	Patch string
	// PatchErr is why the delta was given up for the full image; nil when
	// none was tried or it worked.
	PatchErr error
	// Downloaded counts the bytes received, patch and image together.
	Downloaded int64
}

// Install writes u into the slot of the state's pending record, which must
// be u's (ErrNotBegun otherwise). It builds the image from u.Patch when
// there is one, reading the installed image's slot; if that fails for any
// reason but ctx's, it rewrites the slot with the full image, logging the
// patch's failure to the Client's Logger. Before it opens the slot for
// writing, each time, it reads the state again and refuses with
// ErrStateChanged if the install is no longer pending there, or if that
// slot now holds the installed image: the running image is never opened
// for writing. Every byte is checked as Client.Install checks it; on error
// the slot must not be booted, and Install may simply be called again.
func (c *Cycle) Install(ctx context.Context, u *Update) (InstallReport, error) {
	st, err := c.State.Status(ctx)
	if err != nil {
		return InstallReport{}, err
	}
	if st.Pending == nil {
		return InstallReport{}, ErrNotBegun
	}
	if want := u.Image(st.Pending.Slot); !st.Pending.Equal(&want) {
		return InstallReport{}, fmt.Errorf("%w: pending is %s (%s), update is %s (%s)", ErrNotBegun,
			st.Pending.TargetPath, st.Pending.Version, want.TargetPath, want.Version)
	}
	rep := InstallReport{Slot: st.Pending.Slot}
	want := *st.Pending
	// The key first: a device that cannot decrypt must not truncate its
	// slot to find out.
	key, err := c.Client.contentKey(ctx, u)
	if err != nil {
		return rep, err
	}
	if u.Patch != nil && st.Installed != nil {
		err := c.installPatch(ctx, u, want, st.Installed, key, &rep.Downloaded)
		if err == nil {
			rep.Patch = u.Patch.Path
			return rep, nil
		}
		if ctx.Err() != nil || errors.Is(err, ErrStateChanged) {
			return rep, err
		}
		rep.PatchErr = err
		c.Client.log.Warn("delta refused; fetching the full image", "patch", u.Patch.Path, "err", err)
	}
	full := *u
	full.Patch = nil
	opts := InstallOptions{Downloaded: &rep.Downloaded, contentKey: key}
	err = c.writeSlot(ctx, want, func(w io.Writer) error { return c.Client.Install(ctx, &full, w, opts) })
	return rep, err
}

func (c *Cycle) installPatch(ctx context.Context, u *Update, want rollback.Image, installed *rollback.Image, key *encrypt.ContentKey, downloaded *int64) error {
	r, err := c.Slots.Open(installed.Slot)
	if err != nil {
		return err
	}
	defer r.Close()
	opts := InstallOptions{Installed: r, InstalledSize: installed.Length, ScratchDir: c.ScratchDir, Downloaded: downloaded, contentKey: key}
	return c.writeSlot(ctx, want, func(w io.Writer) error { return c.Client.Install(ctx, u, w, opts) })
}

// writeSlot opens want's slot from its start, fills it with write, and
// makes it durable; but first it checks the state again (mayWrite).
func (c *Cycle) writeSlot(ctx context.Context, want rollback.Image, write func(io.Writer) error) error {
	if err := c.mayWrite(ctx, want); err != nil {
		return err
	}
	w, err := c.Slots.Create(want.Slot)
	if err != nil {
		return err
	}
	err = write(w)
	if s, ok := w.(interface{ Sync() error }); ok && err == nil {
		err = s.Sync()
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return err
}

// mayWrite checks, against the state as it is now, that the install of
// want is still pending and that its slot is not the installed image's.
// The state Install read when it began is not enough: a patch takes
// minutes to download, and meanwhile another agent on the same state may
// finish this install and confirm the slot. Two agents on one state
// directory once emptied the running slot that way, when the full-image
// fallback of one truncated the slot the other had just confirmed.
func (c *Cycle) mayWrite(ctx context.Context, want rollback.Image) error {
	st, err := c.State.Status(ctx)
	switch {
	case err != nil:
		return err
	case st.Installed != nil && st.Installed.Slot == want.Slot:
		return fmt.Errorf("%w: %w: slot %q runs the installed image; refusing to write it", ErrStateChanged, rollback.ErrActiveSlot, want.Slot)
	case st.Pending == nil || !st.Pending.Equal(&want):
		return fmt.Errorf("%w: the install of %s into slot %q is no longer pending; refusing to write the slot", ErrStateChanged, want.Version, want.Slot)
	}
	return nil
}

// Confirm commits the pending install once its image has booted and passed
// the agent's health check: it checks that the pending slot holds the
// image (ErrSlotContent, state unchanged, if not), then calls
// rollback.State.Confirm, which raises the floor. After a crash that
// followed a successful Confirm, it returns rollback.ErrNoPending and
// Resume reports ResumeRunning.
func (c *Cycle) Confirm(ctx context.Context) (rollback.Image, error) {
	st, err := c.State.Status(ctx)
	if err != nil {
		return rollback.Image{}, err
	}
	if st.Pending == nil {
		return rollback.Image{}, rollback.ErrNoPending
	}
	ok, err := c.SlotHolds(*st.Pending)
	if err != nil {
		return rollback.Image{}, err
	}
	if !ok {
		return rollback.Image{}, fmt.Errorf("%w: slot %q, %s", ErrSlotContent, st.Pending.Slot, st.Pending.Version)
	}
	return c.State.Confirm(ctx)
}

// Revert drops the pending install (rollback.State.Revert): after a failed
// health check, or to abandon an update. The floors do not change.
func (c *Cycle) Revert(ctx context.Context) (rollback.Image, error) {
	return c.State.Revert(ctx)
}

// SlotHolds reports whether img's slot starts with exactly img's bytes
// (rollback.Image.Matches over the first img.Length bytes): the check an
// agent runs on the installed slot at start.
func (c *Cycle) SlotHolds(img rollback.Image) (bool, error) {
	r, err := c.Slots.Open(img.Slot)
	if err != nil {
		return false, err
	}
	defer r.Close()
	return img.Matches(io.NewSectionReader(r, 0, img.Length))
}
