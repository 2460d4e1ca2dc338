package verify

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/otaseal/otaseal/manifest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDirTrustStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := DirTrustStore{Dir: dir}
	got, err := s.LoadMetadata(ctx, "root")
	require.NoError(t, err)
	assert.Nil(t, got)

	require.NoError(t, s.StoreMetadata(ctx, "root", []byte("r1")))
	require.NoError(t, s.StoreMetadata(ctx, "../../escape", []byte("d")))
	require.NoError(t, s.StoreMetadata(ctx, "a/b", []byte("ab")))
	got, err = s.LoadMetadata(ctx, "root")
	require.NoError(t, err)
	assert.Equal(t, "r1", string(got))
	got, err = s.LoadMetadata(ctx, "../../escape")
	require.NoError(t, err)
	assert.Equal(t, "d", string(got))

	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.ElementsMatch(t, []string{"root.json", "=2e=2e=2f=2e=2e=2fescape.json", "a=2fb.json"}, names, "every role stays one file inside the directory")

	require.NoError(t, s.StoreMetadata(ctx, "root", nil))
	require.NoError(t, s.StoreMetadata(ctx, "root", nil), "deleting twice is fine")
	got, err = s.LoadMetadata(ctx, "root")
	require.NoError(t, err)
	assert.Nil(t, got)

	assert.Error(t, s.StoreMetadata(ctx, "", []byte("x")))
	_, err = s.LoadMetadata(ctx, "")
	assert.Error(t, err)

	small := DirTrustStore{Dir: dir, MaxSize: 1}
	_, err = small.LoadMetadata(ctx, "a/b")
	assert.ErrorIs(t, err, manifest.ErrTooLarge)
	require.NoError(t, os.Chmod(filepath.Join(dir, s.FileName("a/b")), 0))
	if os.Geteuid() != 0 { // root reads anything
		_, err = s.LoadMetadata(ctx, "a/b")
		assert.Error(t, err)
	}
}

// The client runs on a DirTrustStore exactly as on any TrustStore.
func TestClientOnDirTrustStore(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	r.AddTarget("targets", "x.bin", []byte("x"), nil)
	r.Publish()
	s := DirTrustStore{Dir: t.TempDir()}
	require.NoError(t, Bootstrap(ctx, s, r.RootJSON(1), manifest.Limits{}))
	c, err := New(ctx, Config{MetadataURL: r.MetadataURL(), TargetsURL: r.TargetsURL(), Store: s, Clock: &fixedClock{testNow}})
	require.NoError(t, err)
	require.NoError(t, c.Refresh(ctx))
	for _, role := range []string{"root", "timestamp", "snapshot", "targets"} {
		b, err := os.ReadFile(filepath.Join(s.Dir, role+".json"))
		require.NoError(t, err)
		want := r.GetFile("metadata/" + role + ".json")
		if role == "root" {
			want = r.RootJSON(1)
		}
		assert.True(t, bytes.Equal(want, b), "%s stored byte for byte", role)
	}
}
