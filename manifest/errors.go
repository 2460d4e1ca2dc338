package manifest

import (
	"errors"
	"fmt"
	"strings"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Errors of the firmware schema (the "otaseal" object in a target's custom
// field). Whole classes only: which rule a signed object broke is a
// FieldError's Rule, found with errors.As.
var (
	ErrNoOtaseal = errors.New("manifest: target has no otaseal object")
	ErrWrongKind = errors.New("manifest: otaseal object is of another kind")
	// ErrSchema: the otaseal object is JSON but breaks a rule of the
	// firmware schema. Every *FieldError unwraps to it.
	ErrSchema = errors.New("manifest: otaseal object breaks the firmware schema")
	// ErrMalformedVersion: a version string outside any otaseal object
	// (ParseVersion, Version.MarshalText) is not strict SemVer. Inside an
	// object the same fault is a FieldError with RuleMalformedVersion.
	ErrMalformedVersion = errors.New("manifest: malformed semantic version")
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
	ErrMalformedHash       = errors.New("manifest: malformed hash")
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

// FieldError says which field of an otaseal object broke which rule of the
// firmware schema. It unwraps to ErrSchema; callers that need the rule use
// errors.As and switch on Rule:
//
//	var fe *manifest.FieldError
//	if errors.As(err, &fe) && fe.Rule == manifest.RuleDuplicateHardwareID { ... }
type FieldError struct {
	Field  string // JSON name, e.g. "security_version" or "from.sha256"
	Rule   Rule
	Value  string // the offending value as written, or "" if there is none (a missing field)
	Detail string // why, when the rule alone does not say: "longer than 128 bytes"
}

// Error names the field, the rule and the offending value. Values come from
// signed but attacker-reachable documents: they are clipped and quoted, so
// a log line stays short and free of control bytes.
func (e *FieldError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "manifest: otaseal field %q: %v", clip(e.Field), e.Rule)
	if e.Value != "" {
		fmt.Fprintf(&b, " %q", clip(e.Value))
	}
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	return b.String()
}

func (e *FieldError) Unwrap() error { return ErrSchema }

// fieldError builds a FieldError with its value clipped, so that the error
// never holds more of a hostile document than its message shows.
func fieldError(field string, rule Rule, value, detail string) *FieldError {
	return &FieldError{Field: clip(field), Rule: rule, Value: clip(value), Detail: detail}
}

// Rule names one rule of the firmware schema (see the package doc).
type Rule int

// The rules of the firmware schema, one per way an otaseal object can be
// refused. New rules are added at the end; the numbers are not a wire format.
const (
	RuleUnknownKind         Rule = iota + 1 // "kind" is neither firmware nor delta
	RuleUnknownFormat                       // delta "format" is not a known patch encoding
	RuleUnknownSeverity                     // "severity" is not one of the four
	RuleUnknownField                        // a member the schema does not define
	RuleDuplicateField                      // a member spelled twice in one object
	RuleMissingField                        // a required member is absent
	RuleWrongJSONType                       // e.g. a number where a string belongs, null for a list
	RuleMalformedVersion                    // "version" is not strict SemVer
	RuleNoHardwareIDs                       // "hardware_ids" is empty
	RuleEmptyHardwareID                     // a hardware ID is ""
	RuleDuplicateHardwareID                 // a hardware ID is listed twice
	RuleInvalidText                         // empty, too long, not UTF-8, or control characters
	RuleNegativeNumber                      // a number below zero, "-0" included
	RuleFractionalNumber                    // a fraction, an exponent or any non-canonical spelling
	RuleNumberOverflow                      // a number above MaxSafeInteger
	RuleDeltaSameEnds                       // a delta whose from and to are the same image
	RuleMissingHash                         // a delta end without its sha256
	RuleMalformedHash                       // a sha256 that is not 64 lowercase hex digits
	RuleTooManyItems                        // a list over its limit
	RuleMalformedTime                       // a rollout start not in RolloutTimeLayout
	RuleWaveOrder                           // a wave not after the one before, or with a smaller share
	RuleShareOutOfRange                     // a wave's share above FullShare
	RuleLastWaveNotFull                     // a rollout that never reaches every device
	RuleUnknownControlState                 // a rollout control "state" other than paused, stopped, capped
	RuleControlWidens                       // a rollout control document that lists targets or delegates
	RuleUnknownAlgorithm                    // an encryption cipher or recipient KEM this version does not know
	RuleMalformedEncryption                 // an encryption member that is no valid one: chunk size, key ID, wrapped key, recipients
)

var ruleNames = [...]string{
	RuleUnknownKind:         "unknown kind",
	RuleUnknownFormat:       "unknown delta format",
	RuleUnknownSeverity:     "unknown severity",
	RuleUnknownField:        "unknown field",
	RuleDuplicateField:      "duplicate field",
	RuleMissingField:        "missing required field",
	RuleWrongJSONType:       "wrong JSON type",
	RuleMalformedVersion:    "malformed semantic version",
	RuleNoHardwareIDs:       "empty hardware ID list",
	RuleEmptyHardwareID:     "empty hardware ID",
	RuleDuplicateHardwareID: "duplicate hardware ID",
	RuleInvalidText:         "invalid text",
	RuleNegativeNumber:      "negative number",
	RuleFractionalNumber:    "non-integer number",
	RuleNumberOverflow:      "number out of range",
	RuleDeltaSameEnds:       "delta leads from a target to itself",
	RuleMissingHash:         "missing sha256 hash",
	RuleMalformedHash:       "malformed hash",
	RuleTooManyItems:        "too many items",
	RuleMalformedTime:       "malformed time",
	RuleWaveOrder:           "rollout waves out of order",
	RuleShareOutOfRange:     "share out of range",
	RuleLastWaveNotFull:     "last rollout wave below the full share",
	RuleUnknownControlState: "unknown rollout control state",
	RuleControlWidens:       "rollout control document lists targets or delegates",
	RuleUnknownAlgorithm:    "unknown encryption algorithm",
	RuleMalformedEncryption: "malformed encryption member",
}

// String names the rule in words, as FieldError's message does.
func (r Rule) String() string {
	if r > 0 && int(r) < len(ruleNames) {
		return ruleNames[r]
	}
	return fmt.Sprintf("rule(%d)", int(r))
}

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
