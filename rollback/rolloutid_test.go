package rollback

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRolloutIDStableAcrossReopen(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "s")
	open := func(opts StateOptions) (*State, *FileStore) {
		store, err := OpenFileStore(dir, FileStoreOptions{})
		require.NoError(t, err)
		opts.HardwareID, opts.AllowNoCounter = hw, true
		st, err := OpenState(ctx, store, opts)
		require.NoError(t, err)
		return st, store
	}
	st, store := open(StateOptions{})
	id := st.RolloutID()
	assert.Regexp(t, `^[0-9a-f]{32}$`, id)
	r, err := store.Load(ctx, rolloutIDRecordName)
	require.NoError(t, err)
	assert.Equal(t, id, string(r.Data), "kept in the state")
	require.NoError(t, store.Close())

	// The next start reads it back; no randomness is drawn.
	st, store = open(StateOptions{Rand: iotest.ErrReader(errors.New("no entropy needed"))})
	assert.Equal(t, id, st.RolloutID())
	require.NoError(t, store.Close())

	// A configured ID wins and leaves the stored one alone.
	st, store = open(StateOptions{RolloutID: "CN=lock-0042,O=Acme"})
	assert.Equal(t, "CN=lock-0042,O=Acme", st.RolloutID())
	r, err = store.Load(ctx, rolloutIDRecordName)
	require.NoError(t, err)
	assert.Equal(t, id, string(r.Data))
	require.NoError(t, store.Close())
}

func TestRolloutIDGenerated(t *testing.T) {
	ctx := context.Background()
	opts := StateOptions{HardwareID: hw, AllowNoCounter: true, Rand: bytes.NewReader(bytes.Repeat([]byte{0xab}, 16))}
	st, err := OpenState(ctx, NewMemStore(), opts)
	require.NoError(t, err)
	assert.Equal(t, strings.Repeat("ab", 16), st.RolloutID(), "drawn from the injected randomness")

	// Two devices draw two IDs.
	a, err := OpenState(ctx, NewMemStore(), StateOptions{HardwareID: hw, AllowNoCounter: true})
	require.NoError(t, err)
	b, err := OpenState(ctx, NewMemStore(), StateOptions{HardwareID: hw, AllowNoCounter: true})
	require.NoError(t, err)
	assert.NotEqual(t, a.RolloutID(), b.RolloutID())

	// Without randomness there is no ID, and no state.
	opts.Rand = iotest.ErrReader(errors.New("no entropy"))
	_, err = OpenState(ctx, NewMemStore(), opts)
	assert.ErrorContains(t, err, "no entropy")
}

// A damaged or foreign rollout ID record is replaced, never an obstacle
// to opening the state.
func TestRolloutIDRecovery(t *testing.T) {
	ctx := context.Background()
	opts := StateOptions{HardwareID: hw, AllowNoCounter: true}

	store := NewMemStore()
	_, err := store.CompareAndSwap(ctx, rolloutIDRecordName, 0, []byte("not an ID\n"))
	require.NoError(t, err)
	st, err := OpenState(ctx, store, opts)
	require.NoError(t, err)
	assert.Regexp(t, `^[0-9a-f]{32}$`, st.RolloutID())

	dir := filepath.Join(t.TempDir(), "s")
	fs, err := OpenFileStore(dir, FileStoreOptions{})
	require.NoError(t, err)
	st, err = OpenState(ctx, fs, opts)
	require.NoError(t, err)
	first := st.RolloutID()
	require.NoError(t, fs.Close())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	damaged := 0
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), fileName(rolloutIDRecordName)) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, e.Name()), []byte("torn"), 0o600))
			damaged++
		}
	}
	require.NotZero(t, damaged, "found the record's files in %v", entries)
	fs, err = OpenFileStore(dir, FileStoreOptions{})
	require.NoError(t, err)
	defer fs.Close()
	st, err = OpenState(ctx, fs, opts)
	require.NoError(t, err)
	assert.Regexp(t, `^[0-9a-f]{32}$`, st.RolloutID())
	assert.NotEqual(t, first, st.RolloutID(), "a new place in the order")
}

func TestRolloutIDConfiguredInvalid(t *testing.T) {
	ctx := context.Background()
	for _, id := range []string{strings.Repeat("s", MaxRolloutIDLen+1), "serial\n42", "\xff"} {
		_, err := OpenState(ctx, NewMemStore(), StateOptions{HardwareID: hw, AllowNoCounter: true, RolloutID: id})
		assert.ErrorIs(t, err, ErrInvalidRolloutID, "%q", id)
	}
}
