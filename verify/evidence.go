package verify

import (
	"errors"
	"maps"
	"slices"

	"github.com/otaseal/otaseal/manifest"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// thresholdEvidence works out which of role's keys signed md, as delegated
// by delegator (a root or targets document). Each key is tried alone with
// go-tuf's own verification, so the evidence follows exactly the rules
// that refused the document. It returns nil when the delegator does not
// delegate role.
func thresholdEvidence[T metadata.Roles](delegator any, role string, md *metadata.Metadata[T]) *manifest.ThresholdError {
	ids, threshold, tryOne := delegation(delegator, role)
	if tryOne == nil {
		return nil
	}
	e := &manifest.ThresholdError{Role: role, Threshold: threshold}
	for _, id := range ids {
		if tryOne(id, md) == nil {
			e.SignedBy = append(e.SignedBy, id)
		} else {
			e.Missing = append(e.Missing, id)
		}
	}
	return e
}

// delegation returns the keyids and threshold of role in delegator, and a
// function that verifies a document against one of those keys alone.
func delegation(delegator any, role string) ([]string, int, func(id string, md any) error) {
	switch d := delegator.(type) {
	case *metadata.Metadata[metadata.RootType]:
		r := d.Signed.Roles[role]
		if r == nil {
			return nil, 0, nil
		}
		return slices.Clone(r.KeyIDs), r.Threshold, func(id string, md any) error {
			one := *d
			one.Signed.Roles = maps.Clone(d.Signed.Roles)
			one.Signed.Roles[role] = &metadata.Role{KeyIDs: []string{id}, Threshold: 1}
			return one.VerifyDelegate(role, md)
		}
	case *metadata.Metadata[metadata.TargetsType]:
		dl := d.Signed.Delegations
		if dl == nil {
			return nil, 0, nil
		}
		for i, r := range dl.Roles {
			if r.Name != role {
				continue
			}
			return slices.Clone(r.KeyIDs), r.Threshold, func(id string, md any) error {
				one := *d
				del := *dl
				del.Roles = slices.Clone(dl.Roles)
				del.Roles[i].KeyIDs, del.Roles[i].Threshold = []string{id}, 1
				one.Signed.Delegations = &del
				return one.VerifyDelegate(role, md)
			}
		}
		if s := dl.SuccinctRoles; s != nil && s.IsDelegatedRole(role) {
			return slices.Clone(s.KeyIDs), s.Threshold, func(id string, md any) error {
				one := *d
				del := *dl
				sr := *s
				sr.KeyIDs, sr.Threshold = []string{id}, 1
				del.SuccinctRoles = &sr
				one.Signed.Delegations = &del
				return one.VerifyDelegate(role, md)
			}
		}
	}
	return nil, 0, nil
}

// refused wraps a go-tuf refusal of role's document in a RoleError with our
// sentinel, and for a threshold failure in a manifest.ThresholdError naming the
// keys that did and did not sign.
func refused[T metadata.Roles](role string, err error, delegator any, data []byte) error {
	t := manifest.TranslateError(err)
	if errors.Is(t, manifest.ErrThreshold) && delegator != nil {
		if md, perr := (&metadata.Metadata[T]{}).FromBytes(data); perr == nil {
			if e := thresholdEvidence(delegator, role, md); e != nil && len(e.SignedBy) < e.Threshold {
				return &RoleError{Role: role, Err: e}
			}
		}
	}
	return &RoleError{Role: role, Err: t}
}
