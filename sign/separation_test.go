package sign

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/manifest"
)

func TestCheckRoleSeparation(t *testing.T) {
	spec := func(root, targets, snapshot, timestamp []*manifest.Key) RootSpec {
		return RootSpec{Roles: map[string]RoleKeys{
			manifest.RoleRoot:      {Threshold: 1, Keys: root},
			manifest.RoleTargets:   {Threshold: 1, Keys: targets},
			manifest.RoleSnapshot:  {Threshold: 1, Keys: snapshot},
			manifest.RoleTimestamp: {Threshold: 1, Keys: timestamp},
		}}
	}
	k := func(names ...string) []*manifest.Key { return keysOf(t, names...) }
	for _, tc := range []struct {
		name            string
		spec            RootSpec
		offline, online []string // nil: allowed
	}{
		{"separate", spec(k("ed25519-1"), k("ed25519-2"), k("ed25519-4"), k("ed25519-5")), nil, nil},
		{"root and targets share (both offline)", spec(k("ed25519-1"), k("ed25519-1"), k("ed25519-4"), k("ed25519-5")), nil, nil},
		{"snapshot and timestamp share (both online)", spec(k("ed25519-1"), k("ed25519-2"), k("ed25519-4"), k("ed25519-4")), nil, nil},
		{"one key for everything", spec(k("ed25519-1"), k("ed25519-1"), k("ed25519-1"), k("ed25519-1")),
			[]string{manifest.RoleRoot, manifest.RoleTargets}, []string{manifest.RoleSnapshot, manifest.RoleTimestamp}},
		{"targets key signs timestamp", spec(k("ed25519-1"), k("ed25519-2", "p256"), k("ed25519-4"), k("ed25519-5", "p256")),
			[]string{manifest.RoleTargets}, []string{manifest.RoleTimestamp}},
		{"root key signs snapshot", spec(k("ed25519-1", "ed25519-3"), k("ed25519-2"), k("ed25519-3"), k("ed25519-5")),
			[]string{manifest.RoleRoot}, []string{manifest.RoleSnapshot}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckRoleSeparation(tc.spec)
			if tc.offline == nil {
				assert.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrSharedKey)
			var se *SharedKeyError
			require.True(t, errors.As(err, &se))
			assert.Equal(t, tc.offline, se.Offline)
			assert.Equal(t, tc.online, se.Online)
			assert.Len(t, se.KeyID, 64)
			assert.Contains(t, err.Error(), se.KeyID[:16])
		})
	}
}

// One key under two spellings (the "ecdsa" type and go-tuf's legacy
// "ecdsa-sha2-nistp256" type) has two keyids but is still one key.
func TestCheckRoleSeparationSpellings(t *testing.T) {
	a := testSigner(t, "p256").Key()
	b := copyKey(a)
	b.Type = SchemeECDSAP256
	ida, err := KeyID(a)
	require.NoError(t, err)
	idb, err := KeyID(b)
	require.NoError(t, err)
	require.NotEqual(t, ida, idb)
	spec := RootSpec{Roles: map[string]RoleKeys{
		manifest.RoleRoot:      {Threshold: 1, Keys: keysOf(t, "ed25519-1")},
		manifest.RoleTargets:   {Threshold: 1, Keys: []*manifest.Key{a}},
		manifest.RoleSnapshot:  {Threshold: 1, Keys: keysOf(t, "ed25519-4")},
		manifest.RoleTimestamp: {Threshold: 1, Keys: []*manifest.Key{b}},
	}}
	assert.ErrorIs(t, CheckRoleSeparation(spec), ErrSharedKey)

}
