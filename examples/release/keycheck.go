package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

// checkSigners refuses, before any work, a key given with --key that
// counts for no role of the repository: a revoked or foreign key would
// otherwise surface only as a threshold error at the very end. refs are
// the --key values, in the order of signers.
func checkSigners(s *session, refs []string, signers []*sign.Signer) error {
	p, err := s.repo.Policy()
	if err != nil {
		return err
	}
	roles := roleNames(s)
	for i, sg := range signers {
		if slices.ContainsFunc(roles, func(r string) bool { return p.Authorize(r, sg.KeyID()) == nil }) {
			continue
		}
		return fmt.Errorf("key %s (%s) counts for no role of this repository: %s", shortID(sg.KeyID()), refs[i], keyHistory(s, sg.KeyID(), ""))
	}
	return nil
}

// roleNames lists the top-level roles and every delegated role (the first
// hash bin standing for all bins, which share their keys).
func roleNames(s *session) []string {
	names := slices.Clone(topRoles)
	for _, md := range allTargetsRoles(s) {
		d := md.Signed.Delegations
		if d == nil {
			continue
		}
		for _, r := range d.Roles {
			names = append(names, r.Name)
		}
		if d.SuccinctRoles != nil {
			if bins := d.SuccinctRoles.GetRoles(); len(bins) > 0 {
				names = append(names, bins[0])
			}
		}
	}
	return names
}

// allTargetsRoles returns the top-level targets document and every
// delegated one the repository holds (path delegations and hash bins),
// delegators before the roles they delegate to.
func allTargetsRoles(s *session) []*manifest.Metadata[manifest.Targets] {
	return targetsDocs(s.repo)
}

// targetsDocs is allTargetsRoles of a repository.
func targetsDocs(repo *sign.Repository) []*manifest.Metadata[manifest.Targets] {
	var out []*manifest.Metadata[manifest.Targets]
	for _, role := range repo.TargetsRoles() {
		if md, ok := repo.Targets(role); ok {
			out = append(out, md)
		}
	}
	return out
}

// releasesFor returns the firmware releases for hw in every targets role
// of the repository; a path listed twice counts once, as the first role
// in delegation order lists it.
func releasesFor(repo *sign.Repository, hw string) ([]manifest.Release, error) {
	var out []manifest.Release
	seen := map[string]bool{}
	for _, md := range targetsDocs(repo) {
		rels, err := manifest.FirmwareFor(&md.Signed, hw)
		if err != nil {
			return nil, err
		}
		for _, r := range rels {
			if !seen[r.Path] {
				seen[r.Path] = true
				out = append(out, r)
			}
		}
	}
	return out, nil
}

// keyHistory says why keyID is not a key of role ("" for any role) in the
// current root, from the published root history: the roles an earlier
// root gave it and the version that removed it.
func keyHistory(s *session, keyID, role string) string {
	what := "any role"
	if role != "" {
		what = role
	}
	cur := s.repo.Root().Signed.Version
	if role != "" {
		if r, ok := s.repo.Root().Signed.Roles[role]; ok && !slices.Contains(r.KeyIDs, keyID) {
			for name, other := range s.repo.Root().Signed.Roles {
				if slices.Contains(other.KeyIDs, keyID) {
					return fmt.Sprintf("not a key of %s: it is a key of %s", role, name)
				}
			}
		}
	}
	for v := cur - 1; v >= 1; v-- {
		data, err := os.ReadFile(filepath.Join(s.dir, sign.MetadataDir, fmt.Sprintf("%d.root.json", v)))
		if err != nil {
			continue
		}
		// Our own published history, read for an error message only.
		root, err := manifest.ParseUnverified[manifest.Root](manifest.RoleRoot, data, manifest.Limits{})
		if err != nil {
			continue
		}
		var had []string
		for name, r := range root.Signed.Roles {
			if (role == "" || name == role) && slices.Contains(r.KeyIDs, keyID) {
				had = append(had, name)
			}
		}
		if len(had) > 0 {
			sort.Strings(had)
			return fmt.Sprintf("not a key of %s: revoked in root version %d", strings.Join(had, " or "), v+1)
		}
	}
	return fmt.Sprintf("not a key of %s in root versions 1 to %d (a key of another repository, or the wrong file?)", what, cur)
}

// whyNotCounted explains, for a threshold error on role, each given key
// that does not count for role.
func whyNotCounted(s *session, role string, signers []*sign.Signer) string {
	p, err := s.repo.Policy()
	if err != nil {
		return ""
	}
	var b strings.Builder
	for _, sg := range signers {
		err := p.Authorize(role, sg.KeyID())
		if err == nil {
			continue
		}
		var ke *sign.KeyError
		switch {
		case errors.As(err, &ke) && errors.Is(err, sign.ErrWrongRole):
			fmt.Fprintf(&b, "\n  key %s does not count for %s: it is a key of %s", shortID(sg.KeyID()), role, ke.OtherRole)
		default:
			fmt.Fprintf(&b, "\n  key %s does not count for %s: %s", shortID(sg.KeyID()), role, keyHistory(s, sg.KeyID(), role))
		}
	}
	return b.String()
}
