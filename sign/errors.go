package sign

import (
	"errors"
	"fmt"
)

// Errors callers branch on. Each rule a signature, key or publish can break
// has its own sentinel; the typed errors below carry the evidence (role,
// keyid) and unwrap to one of these.
var (
	// Keys and signers.
	ErrUnsupportedKey = errors.New("sign: unsupported key type")
	ErrWeakKey        = errors.New("sign: key too weak")
	ErrSchemeMismatch = errors.New("sign: signer does not produce signatures of its key's TUF scheme")
	ErrKeyFile        = errors.New("sign: malformed key file")
	ErrPassphrase     = errors.New("sign: no passphrase for encrypted key")

	// Roles and thresholds.
	ErrUnknownRole        = errors.New("sign: unknown role")
	ErrUnknownKey         = errors.New("sign: key is not listed for any role")
	ErrWrongRole          = errors.New("sign: key belongs to another role")
	ErrRevokedKey         = errors.New("sign: key was revoked from the role")
	ErrBadSignature       = errors.New("sign: signature does not verify")
	ErrDuplicateSignature = errors.New("sign: duplicate signature from one key")
	ErrBadPolicy          = errors.New("sign: invalid role policy")

	// Detached signatures and documents.
	ErrMalformedSignature = errors.New("sign: malformed detached signature")
	ErrMalformedDocument  = errors.New("sign: malformed metadata document")
	ErrDocumentMismatch   = errors.New("sign: detached signature is for another document")

	// Repository.
	ErrBlobNotFound   = errors.New("sign: blob not found")
	ErrBadName        = errors.New("sign: invalid blob or target name")
	ErrBlobExists     = errors.New("sign: blob already exists")
	ErrConflict       = errors.New("sign: repository changed since it was opened, retry")
	ErrTargetExists   = errors.New("sign: target path already holds other content")
	ErrNoTarget       = errors.New("sign: no such target")
	ErrRoleExists     = errors.New("sign: role already exists")
	ErrRootRotation   = errors.New("sign: invalid root rotation")
	ErrTooLarge       = errors.New("sign: input larger than its limit")
	ErrNotInitialized = errors.New("sign: repository has no root")
	ErrBadDelta       = errors.New("sign: patch does not rebuild its target")
)

// KeyError names the role and key a refusal is about. Err is one of the
// sentinels above (ErrWrongRole, ErrUnknownKey, ErrRevokedKey, ...).
type KeyError struct {
	Role  string
	KeyID string
	// OtherRole is the role the key does belong to, for ErrWrongRole and
	// ErrRevokedKey (the role it was revoked from).
	OtherRole string
	Err       error
}

func (e *KeyError) Error() string {
	s := fmt.Sprintf("%v: role %q, key %s", e.Err, e.Role, shortID(e.KeyID))
	if e.OtherRole != "" {
		s += fmt.Sprintf(" (listed for %q)", e.OtherRole)
	}
	return s
}

func (e *KeyError) Unwrap() error { return e.Err }

// shortID keeps error messages readable; 16 hex digits still identify a key
// among any realistic set.
func shortID(id string) string {
	if len(id) > 16 {
		return id[:16]
	}
	return id
}
