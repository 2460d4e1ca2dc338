package atomicfile

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWriteFileReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state")
	for _, want := range []string{"first", "second, longer", ""} {
		require.NoError(t, WriteFile(p, []byte(want), 0o600))
		got, err := os.ReadFile(p)
		require.NoError(t, err)
		assert.Equal(t, want, string(got))
	}
	fi, err := os.Stat(p)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file left behind")
}

func TestWriteFileErrors(t *testing.T) {
	dir := t.TempDir()
	// Missing directory: nothing created.
	assert.Error(t, WriteFile(filepath.Join(dir, "missing", "f"), []byte("x"), 0o600))
	// Destination is a non-empty directory: the rename fails and the
	// temporary file is removed.
	target := filepath.Join(dir, "d")
	require.NoError(t, os.MkdirAll(filepath.Join(target, "child"), 0o700))
	assert.Error(t, WriteFile(target, []byte("x"), 0o600))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1)
	assert.Error(t, SyncDir(filepath.Join(dir, "missing")))
}

func TestWriteFileRelative(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	require.NoError(t, WriteFile("rel", []byte("x"), 0o600))
	got, err := os.ReadFile(filepath.Join(dir, "rel"))
	require.NoError(t, err)
	assert.Equal(t, "x", string(got))
}

func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	keep := filepath.Join(dir, "keep")
	require.NoError(t, os.WriteFile(keep, []byte("k"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, TempPrefix+"keep-123"), []byte("t"), 0o600))
	require.NoError(t, RemoveTemps(dir))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.Equal(t, "keep", entries[0].Name())
	assert.Error(t, RemoveTemps(filepath.Join(dir, "missing")))
}
