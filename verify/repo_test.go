package verify

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/otaseal/otaseal/internal/tuftest"
	"github.com/otaseal/otaseal/manifest"
	"github.com/stretchr/testify/require"
)

var testNow = tuftest.Now

type repo = tuftest.Repo

func newRepo(t testing.TB) *repo { return tuftest.NewRepo(t) }

// memStore is a TrustStore in memory.
type memStore struct {
	mu   sync.Mutex
	docs map[string][]byte
}

func newMemStore() *memStore { return &memStore{docs: map[string][]byte{}} }

func (m *memStore) LoadMetadata(_ context.Context, role string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.docs[role], nil
}

func (m *memStore) StoreMetadata(_ context.Context, role string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if data == nil {
		delete(m.docs, role)
	} else {
		m.docs[role] = append([]byte(nil), data...)
	}
	return nil
}

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
