package manifest

import (
	"errors"
	"fmt"
	"strings"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Errors of the firmware schema (the "otaseal" object in a target's custom
// field). Each is distinct so that a caller, a log line or a test can tell
// exactly which rule a signed document broke.
var (
	ErrNoOtaseal           = errors.New("manifest: target has no otaseal object")
	ErrWrongKind           = errors.New("manifest: otaseal object is of another kind")
	ErrUnknownKind         = errors.New("manifest: unknown otaseal kind")
	ErrUnknownFormat       = errors.New("manifest: unknown delta format")
	ErrUnknownSeverity     = errors.New("manifest: unknown severity")
	ErrUnknownField        = errors.New("manifest: unknown field in otaseal object")
	ErrDuplicateField      = errors.New("manifest: duplicate field in otaseal object")
	ErrMissingField        = errors.New("manifest: missing required field in otaseal object")
	ErrMalformedVersion    = errors.New("manifest: malformed semantic version")
	ErrNoHardwareIDs       = errors.New("manifest: empty hardware ID list")
	ErrEmptyHardwareID     = errors.New("manifest: empty hardware ID")
	ErrDuplicateHardwareID = errors.New("manifest: duplicate hardware ID")
	ErrInvalidText         = errors.New("manifest: invalid text value")
	ErrInvalidNumber       = errors.New("manifest: invalid number")
	ErrNegativeNumber      = errors.New("manifest: negative number")
	ErrFractionalNumber    = errors.New("manifest: non-integer number")
	ErrNumberOverflow      = errors.New("manifest: number out of range")
	ErrDeltaSameEnds       = errors.New("manifest: delta leads from a target to itself")
	ErrMissingHash         = errors.New("manifest: missing sha256 hash")
	ErrMalformedHash       = errors.New("manifest: malformed hash")
	ErrTooManyItems        = errors.New("manifest: too many items")
)

// Errors of metadata parsing. Parsing checks shape, not trust: a document
// that parses is still unverified.
var (
	ErrTooLarge            = errors.New("manifest: metadata larger than its limit")
	ErrMalformed           = errors.New("manifest: malformed metadata")
	ErrWrongType           = errors.New("manifest: metadata of another role type")
	ErrSpecVersion         = errors.New("manifest: unsupported TUF spec_version")
	ErrUnsupportedHash     = errors.New("manifest: unsupported hash algorithm")
	ErrEmptyHashes         = errors.New("manifest: empty hash map")
	ErrMissingSnapshotMeta = errors.New("manifest: timestamp does not describe snapshot.json")
)

// Errors that go-tuf reports, translated at our boundary by TranslateError so
// that callers branch on otaseal values only.
var (
	ErrThreshold            = errors.New("manifest: signature threshold not met")
	ErrMetadataVersionLower = errors.New("manifest: metadata version lower than trusted")
	ErrMetadataVersionEqual = errors.New("manifest: metadata version equal to trusted")
	ErrExpired              = errors.New("manifest: metadata expired")
	ErrLengthOrHash         = errors.New("manifest: length or hash mismatch")
	ErrRepository           = errors.New("manifest: repository error")
)

// ThresholdError reports a document that too few of its role's keys
// signed: the evidence a signer or a device logs to see which keys are
// missing. Package sign returns it when a signing ceremony falls short and
// package verify when a downloaded document does; both unwrap to
// ErrThreshold.
type ThresholdError struct {
	Role      string
	Threshold int
	SignedBy  []string // keyids whose signatures verified
	Missing   []string // keyids of the role without a valid signature
}

func (e *ThresholdError) Error() string {
	return fmt.Sprintf("%v: role %q has %d of %d required signatures (signed by [%s]; missing [%s])", ErrThreshold,
		e.Role, len(e.SignedBy), e.Threshold, strings.Join(e.SignedBy, " "), strings.Join(e.Missing, " "))
}

func (e *ThresholdError) Unwrap() error { return ErrThreshold }

// FieldError says which field of an otaseal object broke which rule. Err is
// one of the sentinels above; errors.Is sees through it.
type FieldError struct {
	Field string // JSON name, e.g. "security_version" or "from.sha256"
	Err   error
}

func (e *FieldError) Error() string { return fmt.Sprintf("%v (field %q)", e.Err, e.Field) }
func (e *FieldError) Unwrap() error { return e.Err }

// NumberError is a FieldError for a number with the offending spelling. It
// unwraps to ErrInvalidNumber and to the specific reason (ErrNegativeNumber,
// ErrFractionalNumber or ErrNumberOverflow).
type NumberError struct {
	Field  string
	Value  string
	Reason error
}

func (e *NumberError) Error() string {
	v := e.Value
	if len(v) > 40 {
		v = v[:40] + "..."
	}
	return fmt.Sprintf("%v: %s (field %q)", e.Reason, v, e.Field)
}
func (e *NumberError) Unwrap() []error { return []error{ErrInvalidNumber, e.Reason} }

// EntryError names the target whose entry (its otaseal object) breaks the
// schema, as FirmwareFor and DeltasTo report it.
type EntryError struct {
	Path string
	Err  error
}

func (e *EntryError) Error() string { return fmt.Sprintf("target %q: %v", e.Path, e.Err) }
func (e *EntryError) Unwrap() error { return e.Err }

// MetadataError names the role whose document is at fault.
type MetadataError struct {
	Role string
	Err  error
}

func (e *MetadataError) Error() string { return fmt.Sprintf("%s metadata: %v", e.Role, e.Err) }
func (e *MetadataError) Unwrap() error { return e.Err }

// tufError keeps go-tuf's message as evidence while exposing only our
// sentinel to errors.Is: callers never need go-tuf's error structs.
type tufError struct {
	kind error
	msg  string
}

func (e *tufError) Error() string { return fmt.Sprintf("%v: %s", e.kind, e.msg) }
func (e *tufError) Unwrap() error { return e.kind }

// TranslateError maps an error returned by go-tuf to the matching otaseal
// sentinel, keeping go-tuf's message. Errors that are not go-tuf's pass
// through unchanged, and so do go-tuf's download errors: this package does
// no I/O, and package verify downloads with its own errors. nil stays nil.
func TranslateError(err error) error {
	if err == nil {
		return nil
	}
	var kind error
	switch {
	case errors.As(err, new(*metadata.ErrUnsignedMetadata)):
		kind = ErrThreshold
	case errors.As(err, new(*metadata.ErrBadVersionNumber)):
		kind = ErrMetadataVersionLower
	case errors.As(err, new(*metadata.ErrEqualVersionNumber)):
		kind = ErrMetadataVersionEqual
	case errors.As(err, new(*metadata.ErrExpiredMetadata)):
		kind = ErrExpired
	case errors.As(err, new(*metadata.ErrLengthOrHashMismatch)):
		kind = ErrLengthOrHash
	case errors.As(err, new(*metadata.ErrRepository)):
		kind = ErrRepository
	case errors.As(err, new(*metadata.ErrValue)), errors.As(err, new(*metadata.ErrType)):
		kind = ErrMalformed
	default:
		return err
	}
	return &tufError{kind: kind, msg: err.Error()}
}
