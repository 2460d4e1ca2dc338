// Package rollback keeps a device's trusted state: what is installed, what
// is being installed, the security-version floors below which no image is
// accepted, the trusted TUF metadata, and a clock floor against freeze
// attacks. It survives power loss at any instruction: every change is one
// compare-and-swap of one record, written to a temporary file, fsynced,
// renamed and the directory fsynced, and every stored copy carries a
// checksum so a torn or damaged copy is never trusted. Each record has two
// copies from its first write, so one damaged file is recovered from the
// other (and logged as "state recovered").
//
// Entry points:
//
//   - OpenFileStore gives the Store on flash (NewMemStore in tests), and
//     OpenFileCounter a Counter where the board has no hardware one. Each
//     holds its directory locked until Close: a second agent on the same
//     state fails at start with ErrLocked instead of undoing the first
//     one's installs.
//   - OpenState gives the State on a Store. It owns the anti-rollback
//     policy: Check and Choose answer "may this release be installed?",
//     Begin, Confirm and Revert move the install state machine below, and
//     Metadata/SetMetadata keep package verify's trusted TUF documents.
//   - OpenTrustedClock gives the TrustedClock: Now, Observe (after a
//     verified timestamp), Fresh, Sync.
//
// # Install state machine
//
// The installed image, the pending candidate and the floors are one record,
// so each arrow below is a single atomic write:
//
//	          Provision (factory)
//	                |
//	                v
//	+-------->  INSTALLED(old) ---- Begin(candidate) ----+
//	|           floors = F                                |
//	|              ^                                      v
//	|              |                         PENDING(candidate), INSTALLED(old)
//	|              +------- Revert ---------  floors = F (unchanged)
//	|                 (bad download, boot         |
//	|                  or health check)           | Confirm (new image booted
//	|                                             |  and passed its health check)
//	|                                             v
//	+------------------------------------- INSTALLED(candidate)
//	                                       floors = max(F, candidate's
//	                                       security version); then the
//	                                       hardware Counter advances
//
// After a crash, Status says exactly where the device was: without a
// pending record, Status.Installed is the image to boot; a pending record
// names the slot, target, length, hash and versions of the candidate, so
// the agent resumes (verify the slot, boot, Confirm) or reverts. Begin
// with the same candidate again is a no-op. A crash between Confirm's
// commit and the counter advance is finished by the next OpenState.
//
// Floors rise only in Confirm: there is no other way through the API.
// Raising them at Begin would brick a device whose new release fails to
// boot, since the bootloader would then refuse the old image too.
//
// # Trusted metadata
//
// Metadata(role) and SetMetadata(role, seq, bytes) keep the bytes of the
// newest verified document per TUF role, delegated roles included (any
// role name is safe as a record name). The verify package stores each
// document as soon as it accepts it, and re-verifies all of them at every
// start: bytes from disk are evidence, not trust.
//
// # Trusted clock
//
// TrustedClock.Now never returns less than the clock floor: the newest time
// proven by a verified timestamp's signing time (manifest.SignedAt, handed
// over with TrustedClock.Observe) or by a secure TimeSource. A device clock
// reset to 1970 therefore cannot make metadata that expired before the
// floor valid again. A clock record lost to damage is re-derived from the
// stored timestamp's signing time, never restarted from zero. The
// TrustedClock type's documentation says what the floor cannot defend
// against.
//
// # What it does not do
//
// It does not verify signatures, download, write slots or reboot (package
// verify and the device agent do). Its checksums detect accidents, not an
// attacker who can write the state directory: against that the hardware
// Counter holds the device's own floor, and TUF re-verification at every
// start holds the metadata.
package rollback
