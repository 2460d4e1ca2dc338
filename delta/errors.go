package delta

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Errors callers can branch on with errors.Is. Every error from Apply* that
// is caused by the patch's content is a *PatchError wrapping one of them.
var (
	// ErrFormat: the patch does not start with the magic of the format
	// asked for, or an unknown Format was passed.
	ErrFormat = errors.New("delta: not a patch in this format")
	// ErrCorrupt: a malformed field (bad integer encoding, negative length,
	// an invalid compressed stream).
	ErrCorrupt = errors.New("delta: corrupt patch")
	// ErrTruncated: the patch ended before the output was complete.
	ErrTruncated = errors.New("delta: truncated patch")
	// ErrTrailingData: bytes follow the end of the patch or of one of its
	// streams.
	ErrTrailingData = errors.New("delta: trailing data after patch")
	// ErrOutputLimit: the patch declares or writes more than MaxOutput.
	ErrOutputLimit = errors.New("delta: output exceeds limit")
	// ErrOldRange: a control entry reads outside the old image.
	ErrOldRange = errors.New("delta: read outside old image")
	// ErrOldSize: the patch was made from an old image of another size.
	ErrOldSize = errors.New("delta: patch is for an old image of another size")
	// ErrTooManyControls: more control entries than the limit, or too many
	// that make no progress.
	ErrTooManyControls = errors.New("delta: too many control entries")
	// ErrHashMismatch: the output does not have the expected SHA-256.
	ErrHashMismatch = errors.New("delta: output hash mismatch")
	// ErrInputTooLarge: Diff was given an image above MaxInputSize.
	ErrInputTooLarge = errors.New("delta: input too large")
)

// PatchError reports where in a patch applying it failed.
type PatchError struct {
	Format    Format // the format being applied
	Control   int    // index of the control entry being applied; -1 for the header
	NewOffset int64  // bytes of output written before the failure
	Err       error  // wraps one of the ErrX sentinels
}

func (e *PatchError) Error() string {
	// The wrapped sentinels carry the package prefix already.
	msg := strings.TrimPrefix(e.Err.Error(), "delta: ")
	if e.Control < 0 {
		return fmt.Sprintf("delta: %v patch header: %s", e.Format, msg)
	}
	return fmt.Sprintf("delta: %v patch: control %d at output offset %d: %s",
		e.Format, e.Control, e.NewOffset, msg)
}

func (e *PatchError) Unwrap() error { return e.Err }

// HashMismatchError carries both digests when the output's SHA-256 differs
// from the expected one. It unwraps to ErrHashMismatch.
type HashMismatchError struct {
	Got, Want []byte
}

func (e *HashMismatchError) Error() string {
	return fmt.Sprintf("delta: output sha256 %s, want %s",
		hex.EncodeToString(e.Got), hex.EncodeToString(e.Want))
}

func (e *HashMismatchError) Unwrap() error { return ErrHashMismatch }
