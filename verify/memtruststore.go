package verify

import (
	"bytes"
	"context"
	"sync"
)

// MemTrustStore is a TrustStore in memory: for tests, simulations and tools
// that trust a root anew at every start. It survives nothing, so on a
// device it gives no rollback protection across reboots. It is safe for
// concurrent use; its zero value is empty and ready.
type MemTrustStore struct {
	mu   sync.Mutex
	docs map[string][]byte
}

// LoadMetadata implements TrustStore.
func (m *MemTrustStore) LoadMetadata(_ context.Context, role string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bytes.Clone(m.docs[role]), nil
}

// StoreMetadata implements TrustStore.
func (m *MemTrustStore) StoreMetadata(_ context.Context, role string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if data == nil {
		delete(m.docs, role)
		return nil
	}
	if m.docs == nil {
		m.docs = map[string][]byte{}
	}
	m.docs[role] = bytes.Clone(data)
	return nil
}
