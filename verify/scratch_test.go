package verify

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/otaseal/otaseal/delta"
	"github.com/otaseal/otaseal/manifest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// scratchFiles lists the names in dir that RemoveStaleScratch would remove.
func scratchFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() && isScratchName(e.Name()) {
			names = append(names, e.Name())
		}
	}
	return names
}

// bsdiffUpdate is an update from old to new through a BSDIFF40 patch, the
// format that needs scratch space.
type bsdiffUpdate struct {
	old, new, patch []byte
	r               *repo
	c               *Client
	u               *Update
}

func newBSDIFFUpdate(t *testing.T) *bsdiffUpdate {
	b := &bsdiffUpdate{}
	b.old, b.new = firmwarePair()
	b.patch = encodePatch(t, b.old, b.new, delta.FormatBSDIFF40)
	b.r = patchRepo(t, manifest.FormatBSDIFF40, b.patch, b.old, b.new)
	b.c = refreshed(t, b.r)
	var err error
	b.u, err = b.c.Select(context.Background(), gateway(t, installedImage("1.0.0", 1, b.old)))
	require.NoError(t, err)
	require.NotNil(t, b.u.Patch)
	return b
}

// install installs into a fresh buffer with dir as scratch space.
func (b *bsdiffUpdate) install(ctx context.Context, dir string) ([]byte, error) {
	var slot bytes.Buffer
	err := b.c.Install(ctx, b.u, &slot, InstallOptions{Installed: bytes.NewReader(b.old), InstalledSize: int64(len(b.old)), ScratchDir: dir})
	return slot.Bytes(), err
}

// What killed installs leave (scratch files named as os.CreateTemp names
// them) is removed by the next BSDIFF40 install; everything else in the
// directory, however alike its name, stays as it was. While the patch
// downloads, the directory holds at most this install's own file.
func TestInstallRemovesStaleScratch(t *testing.T) {
	b := newBSDIFFUpdate(t)
	dir := t.TempDir()
	stale := []string{".otaseal-patch-123", ".otaseal-patch-2751830094"}
	for _, name := range stale {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), b.patch[:len(b.patch)/3], 0o600))
	}
	kept := map[string][]byte{
		"slot-b.img":             b.old,
		".otaseal-patch-notes":   []byte("not ours: letters"),
		".otaseal-patch-":        []byte("not ours: no digits"),
		"otaseal-patch-1":        []byte("not ours: no dot"),
		".otaseal-patch-12.keep": []byte("not ours: suffix"),
	}
	for name, content := range kept {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), content, 0o600))
	}
	require.NoError(t, os.Mkdir(filepath.Join(dir, ".otaseal-patch-77"), 0o700))

	var during []string
	b.r.SetOverride(func(p string) ([]byte, bool) {
		if p == "targets/"+b.u.Patch.Path {
			during = scratchFiles(t, dir)
		}
		return nil, false
	})
	got, err := b.install(context.Background(), dir)
	require.NoError(t, err)
	assert.Equal(t, b.new, got)

	assert.LessOrEqual(t, len(during), 1, "at most one scratch file while installing: %v", during)
	for _, name := range stale {
		assert.NotContains(t, during, name, "stale files go before the download starts")
	}
	assert.Empty(t, scratchFiles(t, dir), "no scratch file after the install")
	for name, want := range kept {
		got, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err, name)
		assert.Equal(t, want, got, name)
	}
	assert.DirExists(t, filepath.Join(dir, ".otaseal-patch-77"))
}

// Every way out of a BSDIFF40 install leaves no scratch file: a damaged
// patch, a cancelled context, a success.
func TestInstallScratchRemovedOnEveryExit(t *testing.T) {
	b := newBSDIFFUpdate(t)
	damaged := bytes.Clone(b.patch)
	damaged[len(damaged)/2] ^= 0x40
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		body []byte
		ok   bool
	}{
		{"damaged patch", context.Background(), damaged, false},
		{"cancelled", cancelled, nil, false},
		{"success", context.Background(), nil, true},
	} {
		b.r.SetOverride(func(p string) ([]byte, bool) { return tc.body, tc.body != nil && p == "targets/"+b.u.Patch.Path })
		dir := t.TempDir()
		_, err := b.install(tc.ctx, dir)
		assert.Equal(t, tc.ok, err == nil, "%s: %v", tc.name, err)
		assert.Empty(t, scratchFiles(t, dir), tc.name)
	}
}

func TestRemoveStaleScratch(t *testing.T) {
	assert.NoError(t, RemoveStaleScratch(filepath.Join(t.TempDir(), "missing")), "nothing stale in no directory")

	notDir := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(notDir, nil, 0o600))
	assert.Error(t, RemoveStaleScratch(notDir))

	for name, want := range map[string]bool{
		".otaseal-patch-0":          true,
		".otaseal-patch-1234567890": true,
		".otaseal-patch-":           false,
		".otaseal-patch-1a":         false,
		".otaseal-patch-1/":         false,
		"x.otaseal-patch-1":         false,
		".otaseal-patch--1":         false,
	} {
		assert.Equal(t, want, isScratchName(name), name)
	}
}
