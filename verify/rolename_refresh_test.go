package verify

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/otaseal/otaseal/manifest"
)

// foldingDirStore is a DirTrustStore on a simulated case-insensitive file
// system (macOS, Windows): two file names that differ only in letter case
// are one file.
type foldingDirStore struct{ DirTrustStore }

func (f foldingDirStore) path(role string) string {
	return filepath.Join(f.Dir, strings.ToLower(f.FileName(role)))
}

func (f foldingDirStore) LoadMetadata(_ context.Context, role string) ([]byte, error) {
	b, err := os.ReadFile(f.path(role))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

func (f foldingDirStore) StoreMetadata(_ context.Context, role string, data []byte) error {
	if data == nil {
		if err := os.Remove(f.path(role)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	return os.WriteFile(f.path(role), data, 0o644)
}

// A repository whose targets role delegates to "Root" (a careless or
// hostile targets key) is refused at Refresh, before the delegated role is
// fetched, and the device's trusted root stays as it was: on a file system
// that folds case the role's document would otherwise land on root.json
// and the client could not start again.
func TestRefreshRefusesDelegationToTopLevelName(t *testing.T) {
	for _, name := range []string{"Root", "ROOT", "Timestamp", "Snapshot", "Targets"} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			r := newRepo(t)
			r.AddTarget("targets", "x.bin", []byte("x"), nil)
			r.Publish()
			store := foldingDirStore{DirTrustStore{Dir: t.TempDir()}}
			require.NoError(t, Bootstrap(ctx, store, r.RootJSON(1), manifest.Limits{}))
			cfg := Config{MetadataURL: r.MetadataURL(), TargetsURL: r.TargetsURL(), Fetcher: &HTTPFetcher{Retries: -1}, Store: store, Clock: &fixedClock{testNow}}
			c, err := New(ctx, cfg)
			require.NoError(t, err)
			require.NoError(t, c.Refresh(ctx))
			trustedRoot, err := store.LoadMetadata(ctx, manifest.RoleRoot)
			require.NoError(t, err)

			r.Delegate("targets", metadata.DelegatedRole{Name: name, Paths: []string{"*"}})
			r.AddTarget(name, "y.bin", []byte("y"), nil)
			r.Publish()

			refreshErr := c.Refresh(ctx)
			// Whatever the caller does next, the delegated role is never
			// fetched or stored.
			_, _, err = c.FindTarget(ctx, "y.bin")
			assert.Error(t, err)

			got, err := store.LoadMetadata(ctx, manifest.RoleRoot)
			require.NoError(t, err)
			assert.True(t, bytes.Equal(trustedRoot, got), "trusted root unchanged")
			// The newer timestamp and snapshot were accepted and stored
			// before targets was refused; each file still holds its role.
			ts, err := store.LoadMetadata(ctx, manifest.RoleTimestamp)
			require.NoError(t, err)
			_, err = manifest.ParseUnverified[manifest.Timestamp](manifest.RoleTimestamp, ts, manifest.Limits{})
			assert.NoError(t, err)
			snap, err := store.LoadMetadata(ctx, manifest.RoleSnapshot)
			require.NoError(t, err)
			_, err = manifest.ParseUnverified[manifest.Snapshot](manifest.RoleSnapshot, snap, manifest.Limits{})
			assert.NoError(t, err)
			_, err = New(ctx, cfg)
			assert.NoError(t, err, "the client still starts")

			t.Log(refreshErr)
			assert.ErrorIs(t, refreshErr, manifest.ErrMalformed)
			var re *RoleError
			if assert.ErrorAs(t, refreshErr, &re) {
				assert.Equal(t, manifest.RoleTargets, re.Role)
				assert.Contains(t, re.Error(), `delegated role "`+name+`"`)
			}
		})
	}
}
