package verify

import (
	"bytes"
	"context"
	"testing"

	"github.com/otaseal/otaseal/manifest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewChecksStore(t *testing.T) {
	r := newRepo(t)
	store := newMemStore()
	cfg := Config{MetadataURL: r.MetadataURL(), TargetsURL: r.TargetsURL(), Store: store, Clock: SystemClock{}}
	_, err := New(context.Background(), cfg)
	assert.ErrorIs(t, err, ErrNoTrustedRoot)

	// A stored root corrupted while the device was off is noticed at start.
	bad := bytes.Clone(r.RootJSON(1))
	bad[len(bad)-10] ^= 1
	store.docs["root"] = bad
	_, err = New(context.Background(), cfg)
	assert.Error(t, err)

	delete(store.docs, "root")
	require.NoError(t, Bootstrap(context.Background(), store, r.RootJSON(1), manifest.Limits{}))
	assert.NoError(t, Bootstrap(context.Background(), store, r.RootJSON(1), manifest.Limits{}), "the same root again")
	assert.Error(t, Bootstrap(context.Background(), newMemStore(), bad, manifest.Limits{}))

	for _, bad := range []Config{
		{MetadataURL: "http://x/", Clock: SystemClock{}},
		{MetadataURL: "http://x/", Store: store},
		{MetadataURL: "http://x", Store: store, Clock: SystemClock{}},
		{MetadataURL: "http://x/", TargetsURL: "http://y", Store: store, Clock: SystemClock{}},
	} {
		_, err := New(context.Background(), bad)
		assert.ErrorIs(t, err, ErrConfig)
	}
	c, err := New(context.Background(), cfg)
	require.NoError(t, err)
	_, err = c.Targets()
	assert.ErrorIs(t, err, ErrNotRefreshed)
}
