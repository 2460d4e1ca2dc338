package verify

import (
	"context"
	"testing"

	"github.com/otaseal/otaseal/internal/tuftest"
	"github.com/otaseal/otaseal/manifest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Key compromise below the threshold: a 2-of-3 timestamp role, one key
// stolen. The document is refused and the error says which key signed.
func TestThresholdEvidence(t *testing.T) {
	r := newRepo(t)
	k2, k3 := tuftest.NewSigner(t, "timestamp 2"), tuftest.NewSigner(t, "timestamp 3")
	require.NoError(t, r.Root.Signed.AddKey(k2.Key, "timestamp"))
	require.NoError(t, r.Root.Signed.AddKey(k3.Key, "timestamp"))
	r.Root.Signed.Roles["timestamp"].Threshold = 2
	r.PublishRoot()
	// The honest repository signs with two keys.
	r.Timestamp.Signed.Version++
	r.SetFile("metadata/timestamp.json", tuftest.SignBytes(t, r.Timestamp, r.Keys["timestamp"], k2))
	c, _ := newClient(t, r, nil)
	require.NoError(t, c.Refresh(context.Background()))

	// The thief has k3 only.
	r.Timestamp.Signed.Version++
	r.SetFile("metadata/timestamp.json", tuftest.SignBytes(t, r.Timestamp, k3))
	err := c.Refresh(context.Background())
	assert.ErrorIs(t, err, manifest.ErrThreshold)
	var te *manifest.ThresholdError
	require.ErrorAs(t, err, &te)
	id3, _ := k3.Key.ID()
	id1, _ := r.Keys["timestamp"].Key.ID()
	id2, _ := k2.Key.ID()
	assert.Equal(t, "timestamp", te.Role)
	assert.Equal(t, 2, te.Threshold)
	assert.Equal(t, []string{id3}, te.SignedBy)
	assert.ElementsMatch(t, []string{id1, id2}, te.Missing)
	assert.Contains(t, err.Error(), id3)
	var re *RoleError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "timestamp", re.Role)
}

// The same evidence for a delegated role and for a root rotation.
func TestThresholdEvidenceDelegatedAndRoot(t *testing.T) {
	r := newRepo(t)
	r.Delegate("targets", metadata.DelegatedRole{Name: "team", Paths: []string{"team/*"}})
	r.AddTarget("team", "team/fw.bin", []byte("fw"), nil)
	r.Publish()
	// team's document signed by the wrong key.
	wrong := tuftest.NewSigner(t, "not team")
	md := r.Targets["team"]
	r.SetMeta("team", md.Signed.Version, tuftest.SignBytes(t, md, wrong))
	c, _ := newClient(t, r, nil)
	require.NoError(t, c.Refresh(context.Background()))
	_, _, err := c.FindTarget(context.Background(), "team/fw.bin")
	var te *manifest.ThresholdError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, "team", te.Role)
	assert.Empty(t, te.SignedBy)
	assert.Len(t, te.Missing, 1)

	// A root version 2 signed by a key the trusted root does not list.
	r.Root.Signed.Version = 2
	r.PublishRoot(wrong)
	err = c.Refresh(context.Background())
	require.ErrorAs(t, err, &te)
	assert.Equal(t, "root", te.Role)
	assert.Empty(t, te.SignedBy)
}
