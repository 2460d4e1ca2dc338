package manifest

import (
	"errors"
	"fmt"
	"time"
)

// SignedAtField is the extra field in the signed part of a timestamp
// document that carries the time the update server signed it, as an RFC 3339
// UTC string ("2026-11-26T12:00:00Z", the same spelling as "expires").
//
// TUF clients keep unknown fields of the signed part, so the field is covered
// by the timestamp signature and other clients ignore it. A device without a
// real-time clock learns from it a lower bound on the current time (package
// rollback keeps that bound as its clock floor).
const SignedAtField = "otaseal_signed_at"

// ErrSignedAt reports a malformed signing time in a timestamp document.
var ErrSignedAt = errors.New("manifest: malformed " + SignedAtField)

// SetSignedAt records t, truncated to whole seconds, as the signing time of
// a timestamp document. Call it before signing.
func SetSignedAt(ts *Timestamp, t time.Time) {
	if ts.UnrecognizedFields == nil {
		ts.UnrecognizedFields = map[string]any{}
	}
	ts.UnrecognizedFields[SignedAtField] = t.UTC().Truncate(time.Second).Format(time.RFC3339)
}

// SignedAt returns the signing time recorded in a timestamp document. ok is
// false when the document has none (a plain TUF repository). The value is
// only as trustworthy as the document: use it after the signature verified.
func SignedAt(ts *Timestamp) (t time.Time, ok bool, err error) {
	v, present := ts.UnrecognizedFields[SignedAtField]
	if !present {
		return time.Time{}, false, nil
	}
	s, isString := v.(string)
	if !isString {
		return time.Time{}, false, fmt.Errorf("%w: not a string", ErrSignedAt)
	}
	t, err = time.Parse(time.RFC3339, s)
	// One spelling: UTC with "Z" and whole seconds, as SetSignedAt writes.
	if err != nil || t.Location() != time.UTC || t.Format(time.RFC3339) != s {
		return time.Time{}, false, fmt.Errorf("%w: %q is not RFC 3339 UTC with whole seconds", ErrSignedAt, clip(s))
	}
	return t, true, nil
}
