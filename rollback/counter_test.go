package rollback

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStoreCounter(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c, err := OpenFileCounter(dir)
	require.NoError(t, err)
	for _, tt := range []struct{ advance, want uint64 }{{0, 0}, {5, 5}, {3, 5}, {5, 5}, {1 << 60, 1 << 60}} {
		require.NoError(t, c.Advance(ctx, tt.advance))
		got, err := c.Value(ctx)
		require.NoError(t, err)
		assert.Equal(t, tt.want, got)
	}
	_, err = OpenFileCounter(dir)
	assert.ErrorIs(t, err, ErrLocked, "one counter per directory")
	require.NoError(t, c.Close())
	c2, err := OpenFileCounter(dir)
	require.NoError(t, err)
	defer c2.Close()
	got, err := c2.Value(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(1<<60), got)

	store := NewMemStore()
	_, err = store.CompareAndSwap(ctx, "c", 0, []byte("07"))
	require.NoError(t, err)
	_, err = NewStoreCounter(store, "c").Value(ctx)
	assert.ErrorIs(t, err, ErrCorrupt)
	assert.ErrorIs(t, NewStoreCounter(store, "c").Advance(ctx, 9), ErrCorrupt)
	assert.ErrorIs(t, NewStoreCounter(store, "").Advance(ctx, 9), ErrInvalidName)
	_, err = OpenFileCounter(filepath.Join(dir, "counter.0", "x"))
	assert.Error(t, err)
}
