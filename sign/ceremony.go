package sign

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"

	"github.com/otaseal/otaseal/manifest"
)

// An offline k-of-n ceremony, for root and offline targets keys:
//
//  1. The coordinator exports the unsigned (or partly signed) document:
//     plain TUF JSON, e.g. from Repository.StageRoot.
//  2. Each key holder, on their own machine, calls SignDetached on the
//     document and sends back the small DetachedSignature JSON.
//  3. The coordinator calls Merge with the role's Policy, which refuses a
//     tampered, duplicate, unknown, revoked or wrong-role signature by
//     name and reports who signed and whether the threshold is met.
//
// The document itself never needs to travel back: a detached signature
// binds the role, version and SHA-256 of the exact payload it signed.

// DetachedSignatureFormat is the format tag of a detached signature file.
const DetachedSignatureFormat = "otaseal-detached-signature-v1"

// MaxDetachedSignatureSize bounds a detached signature file; real ones are
// well under 2 KiB (an RSA-4096 signature is 1024 hex digits).
const MaxDetachedSignatureSize = 16 << 10

// DetachedSignature is one key holder's signature over a document, made
// away from the coordinator.
type DetachedSignature struct {
	Format        string `json:"format"`
	Role          string `json:"role"`
	Version       int64  `json:"version"`
	PayloadSHA256 string `json:"payload_sha256"` // hex SHA-256 of the canonical signed part
	KeyID         string `json:"keyid"`
	Sig           string `json:"sig"` // hex signature, as in TUF metadata
}

// SignDetached signs the document doc as role with s and returns the
// detached signature. It does not check a policy: the key holder may not
// have one, and Merge checks everything.
func SignDetached(ctx context.Context, doc []byte, role string, s *Signer) (*DetachedSignature, error) {
	d, err := ParseDocument(doc)
	if err != nil {
		return nil, err
	}
	if err := roleMatchesType(role, d.Type); err != nil {
		return nil, err
	}
	sig, err := s.SignPayload(ctx, d.payload)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(d.payload)
	return &DetachedSignature{
		Format:        DetachedSignatureFormat,
		Role:          role,
		Version:       d.Version,
		PayloadSHA256: hex.EncodeToString(sum[:]),
		KeyID:         s.KeyID(),
		Sig:           hex.EncodeToString(sig.Signature),
	}, nil
}

func roleMatchesType(role, typ string) error {
	want := manifest.RoleTargets // every delegated role is targets metadata
	if isTopLevel(role) {
		want = role
	}
	if typ != want {
		return fmt.Errorf("%w: role %q needs %s metadata, document is %s", ErrMalformedDocument, role, want, typ)
	}
	return nil
}

// Marshal encodes d as JSON.
func (d *DetachedSignature) Marshal() ([]byte, error) {
	return json.MarshalIndent(d, "", "  ")
}

// ParseDetachedSignature parses a detached signature file strictly: one JSON
// object, no unknown or missing fields, lowercase hex of sane lengths, and
// at most MaxDetachedSignatureSize bytes. Errors wrap ErrMalformedSignature.
func ParseDetachedSignature(data []byte) (*DetachedSignature, error) {
	if len(data) > MaxDetachedSignatureSize {
		return nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrMalformedSignature, len(data), MaxDetachedSignatureSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var d DetachedSignature
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedSignature, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the object", ErrMalformedSignature)
	}
	switch {
	case d.Format != DetachedSignatureFormat:
		return nil, fmt.Errorf("%w: format %q", ErrMalformedSignature, clipText(d.Format))
	case d.Role == "" || len(d.Role) > maxRoleNameLen:
		return nil, fmt.Errorf("%w: role name of %d bytes", ErrMalformedSignature, len(d.Role))
	case d.Version < 1:
		return nil, fmt.Errorf("%w: version %d", ErrMalformedSignature, d.Version)
	case !isLowerHex(d.PayloadSHA256, 64, 64):
		return nil, fmt.Errorf("%w: payload_sha256 is not 64 lowercase hex digits", ErrMalformedSignature)
	case !isLowerHex(d.KeyID, 64, 64):
		return nil, fmt.Errorf("%w: keyid is not 64 lowercase hex digits", ErrMalformedSignature)
	case !isLowerHex(d.Sig, 2, 2048) || len(d.Sig)%2 != 0:
		return nil, fmt.Errorf("%w: sig is not hex of a plausible length", ErrMalformedSignature)
	}
	return &d, nil
}

const maxRoleNameLen = 255

func isLowerHex(s string, min, max int) bool {
	if len(s) < min || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Merge adds detached signatures to the document doc of role and returns
// the merged document and a report of who signed. Each signature must be
// for this role and this exact document (a signature for another role is
// ErrWrongRole, for another version or payload ErrDocumentMismatch), from a
// key the policy allows, from a key that has not signed already, and it
// must verify (ErrBadSignature): any failure is a *KeyError naming the key
// and nothing is merged. Signatures already in doc are checked the same
// way. Falling short of the threshold is not an error: Report.Met says.
func Merge(p *Policy, role string, doc []byte, sigs []*DetachedSignature) ([]byte, Report, error) {
	d, err := ParseDocument(doc)
	if err != nil {
		return nil, Report{}, err
	}
	if err := roleMatchesType(role, d.Type); err != nil {
		return nil, Report{}, err
	}
	sum := sha256.Sum256(d.payload)
	want := hex.EncodeToString(sum[:])
	all := d.Signatures()
	for _, ds := range sigs {
		switch {
		case ds.Role != role:
			return nil, Report{}, &KeyError{Role: role, KeyID: ds.KeyID, OtherRole: ds.Role, Err: ErrWrongRole}
		case ds.Version != d.Version || ds.PayloadSHA256 != want:
			return nil, Report{}, &KeyError{Role: role, KeyID: ds.KeyID, Err: ErrDocumentMismatch}
		}
		raw, err := hex.DecodeString(ds.Sig)
		if err != nil {
			return nil, Report{}, &KeyError{Role: role, KeyID: ds.KeyID, Err: ErrMalformedSignature}
		}
		all = append(all, manifest.Signature{KeyID: ds.KeyID, Signature: raw})
	}
	rep, err := p.Check(role, d.payload, all)
	if err != nil {
		if _, below := err.(*manifest.ThresholdError); !below {
			return nil, Report{}, err
		}
	}
	*d.sigs() = all
	out, err := d.Bytes()
	if err != nil {
		return nil, Report{}, err
	}
	return out, rep, nil
}

// RotationPolicy returns the policy for signing next, a root that replaces
// prev: the root role must meet both prev's threshold with prev's keys and
// next's threshold with next's keys (TUF 5.3.4), so neither a thief of the
// old keys alone nor one of the new keys alone can rotate the root. Keys
// that prev lists for a role and next does not are marked revoked.
func RotationPolicy(prev, next *manifest.Root) (*Policy, error) {
	p, err := PolicyFromRoot(next)
	if err != nil {
		return nil, err
	}
	old, err := PolicyFromRoot(prev)
	if err != nil {
		return nil, fmt.Errorf("previous root: %w", err)
	}
	p.NoteRevoked(prev)
	p.prevRoot = old.roles[manifest.RoleRoot]
	return p, nil
}
