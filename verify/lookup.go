package verify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/otaseal/otaseal/manifest"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"
)

// FindTarget returns the trusted entry of the target at path and the role
// that signed it, searching the delegation graph in the order the TUF
// specification gives (5.6.7: pre-order depth-first, a terminating
// delegation ends the search below its delegator). It returns
// ErrTargetNotFound when no role that is trusted for the path lists it.
func (c *Client) FindTarget(ctx context.Context, path string) (*manifest.TargetFile, string, error) {
	var found *manifest.TargetFile
	var foundRole string
	err := c.walk(ctx, path, func(role string, doc *manifest.Targets) ([]metadata.RoleResult, bool, error) {
		if tf, ok := doc.Targets[path]; ok {
			found, foundRole = tf, role
			return nil, true, nil
		}
		if doc.Delegations == nil {
			return nil, false, nil
		}
		return rolesForTarget(doc.Delegations, path), false, nil
	})
	if err != nil {
		return nil, "", err
	}
	if found == nil {
		return nil, "", fmt.Errorf("%w: %q", ErrTargetNotFound, path)
	}
	return found, foundRole, nil
}

// visitFunc sees one trusted targets document during a walk and returns
// the delegated roles to visit below it, in order, or stop to end the walk.
type visitFunc func(role string, doc *manifest.Targets) (children []metadata.RoleResult, stop bool, err error)

// walk visits the delegation graph from the top-level targets role in
// pre-order, depth first, each role at most once and at most MaxDelegations
// roles. Below a terminating child nothing after it is visited, not even
// what is still on the stack from above. what names the walk in errors.
func (c *Client) walk(ctx context.Context, what string, visit visitFunc) error {
	if c.trusted == nil {
		return ErrNotRefreshed
	}
	tm := c.trusted
	max := c.cfg.MaxDelegations
	if max <= 0 {
		max = DefaultMaxDelegations
	}
	type step struct{ role, delegator string }
	stack := []step{{manifest.RoleTargets, manifest.RoleRoot}}
	visited := map[string]bool{}
	for n := 0; len(stack) > 0; n++ {
		if n >= max {
			return fmt.Errorf("%w: more than %d roles for %q", ErrTooManyDelegations, max, what)
		}
		s := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if visited[s.role] {
			continue
		}
		visited[s.role] = true
		md, err := c.delegated(ctx, tm, s.role, s.delegator)
		if err != nil {
			return err
		}
		children, stop, err := visit(s.role, &md.Signed)
		if err != nil || stop {
			return err
		}
		var push []step
		for _, child := range children {
			push = append(push, step{child.Name, s.role})
			if child.Terminating {
				stack = nil
				break
			}
		}
		for i := len(push) - 1; i >= 0; i-- {
			stack = append(stack, push[i])
		}
	}
	return nil
}

// delegated returns role's trusted document as verified by delegator.
//
// go-tuf caches a delegated role by name after verifying it through the
// first delegator that reached it, and hands the cached copy to any later
// lookup, even one that reaches the role through another delegator whose
// keys never approved it. Here a cached copy is verified again against the
// delegator of the current lookup before it counts.
func (c *Client) delegated(ctx context.Context, tm *trustedmetadata.TrustedMetadata, role, delegator string) (*metadata.Metadata[metadata.TargetsType], error) {
	if md, ok := tm.Targets[role]; ok {
		if role == manifest.RoleTargets {
			return md, nil // verified against root in Refresh
		}
		parent, ok := tm.Targets[delegator]
		if !ok {
			return nil, &RoleError{Role: role, Err: fmt.Errorf("%w: delegator %s not loaded", manifest.ErrRepository, delegator)}
		}
		var err error
		if canonical, ok := c.signedBytes[md]; ok {
			err = verifySigned(parent, role, md.Signatures, canonical)
		} else {
			err = manifest.TranslateError(parent.VerifyDelegate(role, md))
		}
		if err != nil {
			return nil, &RoleError{Role: role, Err: fmt.Errorf("not approved by delegator %s: %w", delegator, err)}
		}
		return md, nil
	}
	return c.loadDelegated(ctx, tm, role, delegator)
}

// rolesForTarget lists the delegated roles trusted for path, in delegation
// order. It matches path_hash_prefixes itself: go-tuf v2.4.2 compares them
// with the base64 form of the path's hash while the specification (and
// every publisher) writes hex, so it never matches a real hash-prefix
// delegation.
func rolesForTarget(d *manifest.Delegations, path string) []metadata.RoleResult {
	if d.SuccinctRoles != nil {
		return d.SuccinctRoles.GetRolesForTarget(path)
	}
	var out []metadata.RoleResult
	var pathHash string
	for i := range d.Roles {
		r := &d.Roles[i]
		match := false
		switch {
		case len(r.Paths) > 0:
			match, _ = r.IsDelegatedPath(path)
		case len(r.PathHashPrefixes) > 0:
			if pathHash == "" {
				sum := sha256.Sum256([]byte(path))
				pathHash = hex.EncodeToString(sum[:])
			}
			for _, p := range r.PathHashPrefixes {
				if strings.HasPrefix(pathHash, p) {
					match = true
					break
				}
			}
		}
		if match {
			out = append(out, metadata.RoleResult{Name: r.Name, Terminating: r.Terminating})
		}
	}
	return out
}
