package verify

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/otaseal/otaseal/manifest"
	"github.com/stretchr/testify/require"
)

// FuzzRefresh feeds the client a repository in which one document (chosen
// by the first byte) is replaced by fuzz input. The client must never
// panic, and whatever it accepts must be stored and usable.
func FuzzRefresh(f *testing.F) {
	r := newRepo(f)
	r.AddTarget("targets", "a/1.0.0/fw.bin", []byte("fw"), nil)
	r.Publish()
	roles := []string{"timestamp", "snapshot", "targets", "2.root"}
	files := map[string][]byte{}
	for _, role := range roles[:3] {
		files[role+".json"] = r.GetFile("metadata/" + role + ".json")
	}
	root := r.RootJSON(1)
	for i, role := range roles[:3] {
		f.Add(byte(i), files[role+".json"])
	}
	f.Add(byte(3), root)
	f.Add(byte(0), []byte(`{"signed":{"_type":"timestamp"},"signatures":[]}`))
	f.Fuzz(func(t *testing.T, which byte, doc []byte) {
		served := map[string][]byte{}
		for k, v := range files {
			served[k] = v
		}
		served[roles[int(which)%len(roles)]+".json"] = doc
		fetch := FetcherFunc(func(ctx context.Context, url string, max int64) (io.ReadCloser, error) {
			name := url[strings.LastIndex(url, "/")+1:]
			b, ok := served[name]
			if !ok {
				return nil, ErrNotFound
			}
			if int64(len(b)) > max {
				return nil, ErrTooLong
			}
			return io.NopCloser(bytes.NewReader(b)), nil
		})
		store := newMemStore()
		require.NoError(t, Bootstrap(context.Background(), store, root, manifest.Limits{}))
		c, err := New(context.Background(), Config{MetadataURL: "mem://repo/", MetadataOnly: true, Fetcher: fetch, Store: store, Clock: &fixedClock{testNow}})
		require.NoError(t, err)
		if err := c.Refresh(context.Background()); err != nil {
			return
		}
		targets, err := c.Targets()
		require.NoError(t, err)
		require.NotNil(t, targets)
		for _, role := range []string{"timestamp", "snapshot", "targets"} {
			b, _ := store.LoadMetadata(context.Background(), role)
			require.NotNil(t, b, role)
		}
		// A second refresh on the stored state must not fail where the
		// first succeeded.
		require.NoError(t, c.Refresh(context.Background()))
	})
}
