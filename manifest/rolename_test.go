package manifest

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Role names that a case-insensitive or Unicode-normalising file system
// could store as a top-level role's file, or that no file system stores as
// written.
var refusedRoleNames = []string{
	"Root", "ROOT", "rOOt", "ｒｏｏｔ", "ro\u200cot", "root\u0301",
	"Timestamp", "TIMESTAMP", "ｔｉｍｅｓｔａｍｐ",
	"Snapshot", "s\u0301napshot", "snapshot\u0301", "\u015bnapshot",
	"Targets", "targetſ", // long s folds to s
	"vendor\x00", "a\nb", "\x7f", "café",
}

// Unusual but harmless: the TUF conformance suite uses the last four.
var acceptedRoleNames = []string{
	"acme-gw-r2", "A", "Acme.Vendor_2", "rootfs", "roots", "my root", "?", "#", "/delegatedrole", "../delegatedrole",
}

func TestCheckDelegatedRoleName(t *testing.T) {
	for _, name := range refusedRoleNames {
		assert.ErrorIs(t, CheckDelegatedRoleName(name), ErrMalformed, "%q", name)
	}
	for _, name := range []string{"root", "timestamp", "snapshot", "targets", ""} {
		assert.ErrorIs(t, CheckDelegatedRoleName(name), ErrMalformed, "%q", name)
	}
	for _, name := range acceptedRoleNames {
		assert.NoError(t, CheckDelegatedRoleName(name), "%q", name)
	}
	err := CheckDelegatedRoleName("Root")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `top-level role "root"`)
}

// A hostile repository cannot get a delegation to such a name past the
// shape checks, in either parser.
func TestParseRefusesDelegationToTopLevelName(t *testing.T) {
	r := newTestRepo(t)
	delegating := func(name string) []byte {
		return mutate(t, r.targetsJSON, func(s map[string]any) {
			role := map[string]any{"name": name, "keyids": []any{"k"}, "threshold": 1, "terminating": false, "paths": []any{"*"}}
			s["delegations"] = map[string]any{"keys": map[string]any{}, "roles": []any{role}}
		})
	}
	for _, name := range refusedRoleNames {
		doc := delegating(name)
		_, err := ParseUnverified[Targets](RoleTargets, doc, Limits{})
		assert.ErrorIs(t, err, ErrMalformed, "%q", name)
		_, err = ParseTargetsUnverified(RoleTargets, doc, Limits{})
		assert.ErrorIs(t, err, ErrMalformed, "%q", name)
	}
	for _, name := range acceptedRoleNames {
		doc := delegating(name)
		_, err := ParseUnverified[Targets](RoleTargets, doc, Limits{})
		assert.NoError(t, err, "%q", name)
		_, err = ParseTargetsUnverified(RoleTargets, doc, Limits{})
		assert.NoError(t, err, "%q", name)
	}
	// Hash bins are named after their prefix: it follows the same rule.
	doc := mutate(t, r.targetsJSON, func(s map[string]any) {
		s["delegations"] = map[string]any{"keys": map[string]any{},
			"succinct_roles": map[string]any{"keyids": []any{"k"}, "threshold": 1, "bit_length": 4, "name_prefix": "ｂｉｎ"}}
	})
	_, err := ParseUnverified[Targets](RoleTargets, doc, Limits{})
	assert.ErrorIs(t, err, ErrMalformed)
}
