package rollback

import (
	"errors"
	"fmt"
	"time"

	"github.com/otaseal/otaseal/manifest"
)

// Errors of the state store.
var (
	// ErrConflict reports a compare-and-swap whose expected sequence number
	// was not the stored one: another writer got there first. Reload and
	// decide again. Errors are *ConflictError.
	ErrConflict = errors.New("rollback: state changed since it was read")
	// ErrCorrupt reports a stored record with no intact copy (torn, truncated,
	// bit-flipped or renamed). It is never trusted. Errors are *CorruptError.
	ErrCorrupt = errors.New("rollback: stored record is corrupt")
	// ErrRecordTooLarge reports a record larger than the store's limit, on
	// write or on read (before reading it into memory).
	ErrRecordTooLarge = errors.New("rollback: record larger than its limit")
	// ErrInvalidName reports a record or role name the store refuses.
	ErrInvalidName = errors.New("rollback: invalid record name")
	// ErrLocked reports a state directory that another FileStore holds:
	// another agent is running on it. Errors are *LockedError.
	ErrLocked = errors.New("rollback: state directory in use by another process")
	// ErrClosed reports a call on a FileStore after Close.
	ErrClosed = errors.New("rollback: store closed")
)

// Errors of the anti-rollback policy. Each refusal is a *RefusedError that
// unwraps to exactly one of these.
var (
	// ErrWrongHardware: the candidate is not built for this hardware ID.
	ErrWrongHardware = errors.New("rollback: image not built for this hardware")
	// ErrSecurityVersionLower: the candidate's security version is below the
	// committed floor or the installed image's. This is the replay of an old
	// image with known holes; no option allows it.
	ErrSecurityVersionLower = errors.New("rollback: security version below floor")
	// ErrVersionLower: the candidate is an older version than the installed
	// one (allowed within the same security version only with
	// InstallPolicy.AllowDowngrade).
	ErrVersionLower = errors.New("rollback: version lower than installed")
	// ErrVersionEqual: the candidate is the installed version; there is
	// nothing to do.
	ErrVersionEqual = errors.New("rollback: version equal to installed")
)

// Errors of the install state machine.
var (
	// ErrNoPending: Confirm or Revert without a pending install.
	ErrNoPending = errors.New("rollback: no pending install")
	// ErrPendingExists: Begin while another candidate is pending. Confirm or
	// Revert it first.
	ErrPendingExists = errors.New("rollback: another install is pending")
	// ErrActiveSlot: Begin of a candidate into the slot the installed image
	// runs from; writing it would destroy the image to fall back to.
	ErrActiveSlot = errors.New("rollback: candidate targets the active slot")
	// ErrNotProvisioned: an install without an installed image record.
	ErrNotProvisioned = errors.New("rollback: no installed image recorded")
	// ErrAlreadyProvisioned: Provision on a device that has an installed
	// image record.
	ErrAlreadyProvisioned = errors.New("rollback: device already provisioned")
	// ErrInvalidImage: an Image record that breaks the schema.
	ErrInvalidImage = errors.New("rollback: invalid image record")
	// ErrNoCounter: OpenState without a hardware counter and without
	// StateOptions.AllowNoCounter.
	ErrNoCounter = errors.New("rollback: no monotonic counter configured")
)

// Errors of the trusted clock.
var (
	// ErrStale: the newest proof of time is older than the clock's maximum
	// staleness. Errors are *StaleError.
	ErrStale = errors.New("rollback: no recent proof of the current time")
	// ErrNoTimeSource: Sync on a clock without a secure time source.
	ErrNoTimeSource = errors.New("rollback: no secure time source configured")
)

// ConflictError is the evidence of a lost compare-and-swap.
type ConflictError struct {
	Name     string // record name
	Expected uint64 // sequence number the caller expected
	Current  uint64 // sequence number stored
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%v: record %q at sequence %d, expected %d", ErrConflict, e.Name, e.Current, e.Expected)
}
func (e *ConflictError) Unwrap() error { return ErrConflict }

// CorruptError names the record that has no intact copy and why.
type CorruptError struct {
	Name   string
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("%v: record %q: %s", ErrCorrupt, e.Name, e.Reason)
}
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// LockedError names the state directory another FileStore holds, and the
// process holding it as the lock file says.
type LockedError struct {
	Dir string
	// PID is the holder's process ID; 0 when the lock file names none yet
	// (the holder took the lock a moment ago, or runs where it is not
	// written). It is for people to read, not to signal.
	PID int
}

func (e *LockedError) Error() string {
	if e.PID == 0 {
		return fmt.Sprintf("%v: %s", ErrLocked, e.Dir)
	}
	return fmt.Sprintf("%v: %s (held by process %d)", ErrLocked, e.Dir, e.PID)
}
func (e *LockedError) Unwrap() error { return ErrLocked }

// RefusedError is a policy refusal with the facts it was based on.
type RefusedError struct {
	HardwareID               string
	Candidate                manifest.Version
	CandidateSecurityVersion uint64
	Installed                manifest.Version // zero if none is recorded
	InstalledSecurityVersion uint64
	Floor                    uint64 // committed floor for HardwareID
	Err                      error  // one of the policy sentinels
}

func (e *RefusedError) Error() string {
	installed := "none"
	if !e.Installed.IsZero() {
		installed = fmt.Sprintf("%s (security version %d)", e.Installed, e.InstalledSecurityVersion)
	}
	return fmt.Sprintf("%v: candidate %s (security version %d) for %q; installed %s; floor %d",
		e.Err, e.Candidate, e.CandidateSecurityVersion, e.HardwareID, installed, e.Floor)
}
func (e *RefusedError) Unwrap() error { return e.Err }

// StaleError says how old the newest proof of time is.
type StaleError struct {
	Floor        time.Time     // newest proven time; zero if none
	Age          time.Duration // how long before the clock's Now it was proven
	MaxStaleness time.Duration
}

func (e *StaleError) Error() string {
	if e.Floor.IsZero() {
		return fmt.Sprintf("%v: time never proven (limit %v)", ErrStale, e.MaxStaleness)
	}
	return fmt.Sprintf("%v: newest proven time %s is %v old (limit %v)", ErrStale, e.Floor.Format(time.RFC3339), e.Age, e.MaxStaleness)
}
func (e *StaleError) Unwrap() error { return ErrStale }
