package verify

import (
	"context"
	"testing"
	"time"

	"github.com/otaseal/otaseal/internal/tuftest"
	"github.com/otaseal/otaseal/manifest"
	"github.com/stretchr/testify/require"
)

var testNow = tuftest.Now

type repo = tuftest.Repo

func newRepo(t testing.TB) *repo { return tuftest.NewRepo(t) }

// memStore is the exported MemTrustStore; tests poke at its documents.
type memStore = MemTrustStore

func newMemStore() *memStore { return &MemTrustStore{docs: map[string][]byte{}} }

type fixedClock struct{ t time.Time }

func (c *fixedClock) Now() time.Time { return c.t }

// newClient bootstraps a store with the repository's version-1 root.
func newClient(t testing.TB, r *repo, clock Clock) (*Client, *memStore) {
	store := newMemStore()
	require.NoError(t, Bootstrap(context.Background(), store, r.RootJSON(1), manifest.Limits{}))
	if clock == nil {
		clock = &fixedClock{testNow}
	}
	c, err := New(context.Background(), Config{
		MetadataURL: r.MetadataURL(), TargetsURL: r.TargetsURL(),
		Fetcher: &HTTPFetcher{Retries: -1}, Store: store, Clock: clock,
	})
	require.NoError(t, err)
	return c, store
}
