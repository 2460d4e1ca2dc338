package verify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/otaseal/otaseal/internal/tuftest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

func refreshed(t *testing.T, r *repo) *Client {
	t.Helper()
	r.Publish()
	c, _ := newClient(t, r, nil)
	require.NoError(t, c.Refresh(context.Background()))
	r.Requests()
	return c
}

func TestFindTargetPathDelegation(t *testing.T) {
	r := newRepo(t)
	r.Delegate("targets", metadata.DelegatedRole{Name: "gw-team", Paths: []string{"acme-gw-*/*/*"}})
	r.AddTarget("gw-team", "acme-gw-r2/1.0.0/fw.bin", []byte("fw"), nil)
	r.AddTarget("targets", "top.bin", []byte("top"), nil)
	c := refreshed(t, r)

	tf, role, err := c.FindTarget(context.Background(), "acme-gw-r2/1.0.0/fw.bin")
	require.NoError(t, err)
	assert.Equal(t, "gw-team", role)
	assert.Equal(t, int64(2), tf.Length)
	assert.Equal(t, []string{"metadata/gw-team.json"}, r.Requests(), "delegated role fetched on demand")

	_, role, err = c.FindTarget(context.Background(), "top.bin")
	require.NoError(t, err)
	assert.Equal(t, "targets", role)

	// The pattern matches per path component: "*" does not cross "/".
	_, _, err = c.FindTarget(context.Background(), "acme-gw-r2/1.0.0/x/fw.bin")
	assert.ErrorIs(t, err, ErrTargetNotFound)
	// A role not trusted for a path cannot serve it, even if it lists it.
	r.AddTarget("gw-team", "acme-lock/1.0.0/fw.bin", []byte("evil"), nil)
	c = refreshed(t, r)
	_, _, err = c.FindTarget(context.Background(), "acme-lock/1.0.0/fw.bin")
	assert.ErrorIs(t, err, ErrTargetNotFound)
}

// go-tuf v2.4.2 compares path_hash_prefixes with base64 of the path hash;
// the specification and every publisher use hex. This test fails on
// go-tuf's matching.
func TestFindTargetPathHashPrefixes(t *testing.T) {
	path := "acme-gw-r2/1.0.0/fw.bin"
	sum := sha256.Sum256([]byte(path))
	prefix := hex.EncodeToString(sum[:])[:2]

	r := newRepo(t)
	role := metadata.DelegatedRole{Name: "bin-" + prefix, PathHashPrefixes: []string{prefix}}
	ok, err := role.IsDelegatedPath(path)
	require.NoError(t, err)
	assert.False(t, ok, "go-tuf's own matching misses the hex prefix (its bug)")

	r.Delegate("targets", role)
	r.AddTarget(role.Name, path, []byte("fw"), nil)
	c := refreshed(t, r)
	_, got, err := c.FindTarget(context.Background(), path)
	require.NoError(t, err)
	assert.Equal(t, role.Name, got)
}

func TestFindTargetTerminating(t *testing.T) {
	for _, terminating := range []bool{true, false} {
		t.Run(fmt.Sprint("terminating=", terminating), func(t *testing.T) {
			r := newRepo(t)
			r.Delegate("targets", metadata.DelegatedRole{Name: "first", Paths: []string{"a/*"}, Terminating: terminating})
			r.Delegate("targets", metadata.DelegatedRole{Name: "second", Paths: []string{"a/*"}})
			r.AddTarget("second", "a/fw.bin", []byte("fw"), nil)
			c := refreshed(t, r)
			_, role, err := c.FindTarget(context.Background(), "a/fw.bin")
			if terminating {
				assert.ErrorIs(t, err, ErrTargetNotFound, "nothing after a terminating delegation is searched")
			} else {
				require.NoError(t, err)
				assert.Equal(t, "second", role)
			}
		})
	}
}

// A role delegated by two delegators with different keys: go-tuf caches it
// after the first delegator verified it and hands it to a lookup through
// the second, whose keys never approved it. Here that lookup fails.
func TestFindTargetTwoDelegators(t *testing.T) {
	r := newRepo(t)
	r.Delegate("targets", metadata.DelegatedRole{Name: "A", Paths: []string{"a/*", "shared/*"}})
	r.Delegate("targets", metadata.DelegatedRole{Name: "B", Paths: []string{"b/*"}})
	r.Delegate("A", metadata.DelegatedRole{Name: "X", Paths: []string{"a/*"}})
	// B delegates X too, but to a key of its own that did not sign X.
	other := tuftest.NewSigner(t, "B's idea of X")
	otherID, err := other.Key.ID()
	require.NoError(t, err)
	r.Targets["B"].Signed.Delegations = &metadata.Delegations{
		Keys:  map[string]*metadata.Key{otherID: other.Key},
		Roles: []metadata.DelegatedRole{{Name: "X", KeyIDs: []string{otherID}, Threshold: 1, Paths: []string{"b/*"}}},
	}
	r.AddTarget("X", "a/fw.bin", []byte("a"), nil)
	r.AddTarget("X", "b/fw.bin", []byte("evil"), nil)

	c := refreshed(t, r)
	_, role, err := c.FindTarget(context.Background(), "a/fw.bin")
	require.NoError(t, err)
	assert.Equal(t, "X", role)

	// Through B, X is not approved: refused, though X is cached.
	_, _, err = c.FindTarget(context.Background(), "b/fw.bin")
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrTargetNotFound)
	var re *RoleError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "X", re.Role)

	// A fresh client that only ever asks through B agrees.
	c2 := refreshed(t, r)
	_, _, err = c2.FindTarget(context.Background(), "b/fw.bin")
	assert.Error(t, err)
}

// TAP 15 succinct hash-bin delegation.
func TestFindTargetSuccinctBins(t *testing.T) {
	r := newRepo(t)
	bins := tuftest.NewSigner(t, "bins")
	id, err := bins.Key.ID()
	require.NoError(t, err)
	succinct := &metadata.SuccinctRoles{KeyIDs: []string{id}, Threshold: 1, BitLength: 4, NamePrefix: "bins"}
	r.Targets["targets"].Signed.Delegations = &metadata.Delegations{
		Keys: map[string]*metadata.Key{id: bins.Key}, SuccinctRoles: succinct}
	for _, name := range succinct.GetRoles() {
		r.Targets[name] = metadata.Targets(testNow.AddDate(0, 3, 0))
		r.Keys[name] = bins
	}
	paths := []string{"acme-gw-r2/1.0.0/fw.bin", "acme-gw-r2/1.1.0/fw.bin", "acme-lock/3.0.0/fw.bin"}
	for _, p := range paths {
		bin := succinct.GetRolesForTarget(p)[0].Name
		r.AddTarget(bin, p, []byte(p), nil)
	}
	c := refreshed(t, r)
	for _, p := range paths {
		tf, role, err := c.FindTarget(context.Background(), p)
		require.NoError(t, err, p)
		assert.Equal(t, succinct.GetRolesForTarget(p)[0].Name, role)
		assert.Equal(t, int64(len(p)), tf.Length)
	}
	// Only the bins that hold the asked-for paths were downloaded.
	assert.LessOrEqual(t, len(r.Requests()), len(paths))
}

func TestFindTargetMaxDelegations(t *testing.T) {
	r := newRepo(t)
	parent := "targets"
	for i := 0; i < 5; i++ {
		name := fmt.Sprintf("level%d", i)
		r.Delegate(parent, metadata.DelegatedRole{Name: name, Paths: []string{"deep/*"}})
		parent = name
	}
	r.AddTarget(parent, "deep/fw.bin", []byte("fw"), nil)
	c := refreshed(t, r)
	c.cfg.MaxDelegations = 3
	_, _, err := c.FindTarget(context.Background(), "deep/fw.bin")
	assert.ErrorIs(t, err, ErrTooManyDelegations)
	c.cfg.MaxDelegations = 0
	_, role, err := c.FindTarget(context.Background(), "deep/fw.bin")
	require.NoError(t, err)
	assert.Equal(t, parent, role)
}
