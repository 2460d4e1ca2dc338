package verify

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/rollback"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The client on a real rollback file store and trusted clock, across a
// "reboot" (new store, state, clock and client on the same directory).
func TestClientOnRollbackState(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	r.AddTarget("targets", "a/1.0.0/fw.bin", []byte("fw"), nil)
	r.Publish()
	dir := t.TempDir()

	var fs *rollback.FileStore
	open := func(sys time.Time) (*Client, *rollback.TrustedClock) {
		if fs != nil {
			require.NoError(t, fs.Close()) // the "reboot": one store per directory
		}
		var err error
		fs, err = rollback.OpenFileStore(dir, rollback.FileStoreOptions{})
		require.NoError(t, err)
		st, err := rollback.OpenState(ctx, fs, rollback.StateOptions{HardwareID: "a", AllowNoCounter: true})
		require.NoError(t, err)
		clock, err := rollback.OpenTrustedClock(ctx, fs, rollback.TrustedClockOptions{Now: func() time.Time { return sys }})
		require.NoError(t, err)
		store := StateTrustStore{State: st}
		if b, _ := store.LoadMetadata(ctx, "root"); b == nil {
			require.NoError(t, Bootstrap(ctx, store, r.RootJSON(1), manifest.Limits{}))
		}
		c, err := New(ctx, Config{MetadataURL: r.MetadataURL(), MetadataOnly: true, Fetcher: &HTTPFetcher{Retries: -1}, Store: store, Clock: clock})
		require.NoError(t, err)
		return c, clock
	}

	c, clock := open(time.Unix(0, 0)) // a board without RTC boots at 1970
	require.NoError(t, c.Refresh(ctx))
	assert.Equal(t, testNow, clock.Floor(), "the verified signing time became the clock floor")

	// Reboot with the clock at 1970 again: the persisted floor keeps the
	// time, and the stored documents are re-verified, not re-downloaded.
	r.Requests()
	c, _ = open(time.Unix(0, 0))
	require.NoError(t, c.Refresh(ctx))
	assert.Equal(t, []string{"metadata/2.root.json", "metadata/timestamp.json"}, r.Requests(), "stored documents reused after reboot")

	// Damage the stored snapshot on flash: it is fetched again, not trusted.
	files, err := filepath.Glob(filepath.Join(dir, "*snapshot*"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		b[len(b)/2] ^= 0xff
		require.NoError(t, os.WriteFile(f, b, 0o600))
	}
	c, _ = open(time.Unix(0, 0))
	require.NoError(t, c.Refresh(ctx))
	assert.Contains(t, r.Requests(), "metadata/snapshot.json")
}
