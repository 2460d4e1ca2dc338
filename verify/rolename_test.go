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

// Delegated role names that a file system could fold onto another role's
// file: DirTrustStore keeps them apart, and Refresh refuses a delegation to
// a top-level role's name before anything is stored.

// foldingNames are role names that a case-insensitive (macOS, Windows) or
// Unicode-normalising (APFS, HFS+) file system could merge with each other
// or with a top-level role's file.
var foldingNames = []string{
	"root", "Root", "ROOT", "ｒｏｏｔ", "ro\u200cot",
	"timestamp", "Timestamp", "TIMESTAMP",
	"snapshot", "Snapshot", "s\u0301napshot", "\u015bnapshot", "snapshot\u0301",
	"targets", "Targets", "ｔａｒｇｅｔｓ",
	"acme", "Acme", "ACME", "\u212acme", "kcme", // Kelvin sign folds to k
	"a/b", "a%2Fb", "a%2fb", `a\b`, "a:b", "a=2fb", ".", "..", "../root",
}

// A DirTrustStore on a store that folds case and normalises Unicode keeps
// every role apart: the files it uses are distinct even after folding, so
// a delegated role named "Root" never writes over root.json.
func TestDirTrustStoreFoldingFileSystem(t *testing.T) {
	ctx := context.Background()
	s := DirTrustStore{Dir: t.TempDir()}
	fileOf := map[string]string{} // folded file name -> role
	for _, role := range foldingNames {
		f := s.FileName(role)
		assert.Equal(t, filepath.Base(f), f, "%q: one file inside Dir", role)
		assert.False(t, strings.HasPrefix(f, "."), "%q: %q is hidden", role, f)
		for i := 0; i < len(f); i++ {
			// Lower-case printable ASCII is left alone by case folding
			// and by NFC, NFD and NFKC: what is distinct here is distinct
			// on the file system.
			assert.True(t, f[i] > 0x20 && f[i] < 0x7f && (f[i] < 'A' || f[i] > 'Z'), "%q: byte %#x in %q", role, f[i], f)
		}
		folded := strings.ToLower(f)
		if other, dup := fileOf[folded]; dup {
			t.Errorf("roles %q and %q share file %q on a case-insensitive file system", other, role, f)
		}
		for g, other := range fileOf {
			assert.False(t, strings.EqualFold(g, f), "roles %q and %q fold to one file", other, role)
		}
		fileOf[folded] = role
		require.NoError(t, s.StoreMetadata(ctx, role, []byte(role)))
	}
	for _, role := range foldingNames {
		got, err := s.LoadMetadata(ctx, role)
		require.NoError(t, err)
		assert.Equal(t, role, string(got))
	}
	entries, err := os.ReadDir(s.Dir)
	require.NoError(t, err)
	assert.Len(t, entries, len(foldingNames))
}

// Existing devices keep their state: the top-level roles keep the file
// names DirTrustStore always gave them, and so do the usual lower-case
// delegated names.
func TestDirTrustStoreFileNamesKept(t *testing.T) {
	for _, role := range []string{"root", "timestamp", "snapshot", "targets", "acme-gw-r2", "bins-0f"} {
		assert.Equal(t, role+".json", DirTrustStore{}.FileName(role))
	}
	assert.Equal(t, "=52oot.json", DirTrustStore{}.FileName("Root"))
}

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
