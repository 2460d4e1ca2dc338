package verify

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/manifest"
)

// Finding 8 of issue 22: Bootstrap a second time answered the generic
// ErrConfig. The same root again is fine (an agent may bootstrap at every
// start); another root is its own error.
func TestBootstrapTwice(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	first := r.RootJSON(1)
	r.Root.Signed.Version++ // a rotated root
	rotated := r.PublishRoot()
	store := newMemStore()
	require.NoError(t, Bootstrap(ctx, store, first, manifest.Limits{}))
	assert.NoError(t, Bootstrap(ctx, store, first, manifest.Limits{}))
	err := Bootstrap(ctx, store, rotated, manifest.Limits{})
	assert.ErrorIs(t, err, ErrAlreadyBootstrapped)
	assert.NotErrorIs(t, err, ErrConfig)
	got, err := store.LoadMetadata(ctx, manifest.RoleRoot)
	require.NoError(t, err)
	assert.Equal(t, first, got, "the first root stays")
}

// Finding 8: a client without a TargetsURL could refresh and select, and
// failed only at Install, after Begin. New refuses it unless the client
// says it only reads metadata.
func TestNewRequiresTargetsURL(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	store := newMemStore()
	require.NoError(t, Bootstrap(ctx, store, r.RootJSON(1), manifest.Limits{}))
	_, err := New(ctx, Config{MetadataURL: r.MetadataURL(), Store: store, Clock: &fixedClock{testNow}})
	assert.ErrorIs(t, err, ErrConfig)

	c, err := New(ctx, Config{MetadataURL: r.MetadataURL(), MetadataOnly: true, Store: store, Clock: &fixedClock{testNow}})
	require.NoError(t, err)
	require.NoError(t, c.Refresh(ctx))
	err = c.Download(ctx, "any", &manifest.TargetFile{Length: 1, Hashes: manifest.Hashes{"sha256": make([]byte, 32)}}, nil)
	assert.ErrorIs(t, err, ErrConfig)
}
