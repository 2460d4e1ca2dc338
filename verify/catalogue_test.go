package verify_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/rollback"
	"github.com/otaseal/otaseal/sign"
	"github.com/otaseal/otaseal/verify"
)

// blobMap is an in-memory sign.Storage served over HTTP: a catalogue of
// 100,000 targets is 200,000 files, too many to fsync one by one.
type blobMap struct {
	mu    sync.Mutex
	blobs map[string][]byte
}

func (m *blobMap) Put(_ context.Context, name string, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.blobs[name] = b
	return nil
}

func (m *blobMap) Get(_ context.Context, name string) (io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blobs[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", sign.ErrBlobNotFound, name)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (m *blobMap) List(_ context.Context, prefix string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for n := range m.blobs {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

// catalogue is a hash-binned repository of perHW releases for each of
// nHW hardware IDs ("hw-0000"...), served on 127.0.0.1.
type catalogue struct {
	repo     *sign.Repository
	store    *blobMap
	signers  []*sign.Signer
	rootJSON []byte
	url      string
}

func catalogueImage(path string) []byte { return []byte("image of " + path) }

func cataloguePath(hw, v int) string { return fmt.Sprintf("hw-%04d/1.%d.0/firmware.bin", hw, v) }

// newCatalogue builds the catalogue in 2^bits hash bins, with release
// indexes when index is set; bits 0 means one path delegation per
// hardware ID ("hw-0007/*/*") instead of bins, the other way to make a
// catalogue searchable.
func newCatalogue(tb testing.TB, nHW, perHW, bits int, index bool) *catalogue {
	tb.Helper()
	ctx := context.Background()
	keys := map[string]*sign.Signer{}
	roles := map[string]sign.RoleKeys{}
	for _, role := range []string{"root", "targets", "snapshot", "timestamp", "bins"} {
		seed := sha256.Sum256([]byte("catalogue " + role))
		var err error
		keys[role], err = sign.SignerFromPrivateKey(ctx, ed25519.NewKeyFromSeed(seed[:]))
		require.NoError(tb, err)
		roles[role] = sign.RoleKeys{Threshold: 1, Keys: []*manifest.Key{keys[role].Key()}}
	}
	binKeys := roles["bins"]
	delete(roles, "bins")
	root, err := sign.NewRoot(sign.RootSpec{Roles: roles}, time.Now().Add(sign.DefaultRootExpiry))
	require.NoError(tb, err)
	policy, err := sign.PolicyFromRoot(&root.Signed)
	require.NoError(tb, err)
	_, err = sign.SignRole(ctx, policy, "root", root, []*sign.Signer{keys["root"]})
	require.NoError(tb, err)
	c := &catalogue{store: &blobMap{blobs: map[string][]byte{}},
		signers: []*sign.Signer{keys["targets"], keys["snapshot"], keys["timestamp"], keys["bins"]}}
	c.rootJSON, err = root.ToBytes(false)
	require.NoError(tb, err)
	c.repo, err = sign.CreateRepository(ctx, c.store, root, sign.RepositoryOptions{TempDir: tb.TempDir()})
	require.NoError(tb, err)
	tb.Cleanup(func() { c.repo.Close() })
	if bits > 0 {
		require.NoError(tb, c.repo.AddHashBins(manifest.RoleTargets, "bin", bits, binKeys))
	} else {
		for hw := range nHW {
			id := fmt.Sprintf("hw-%04d", hw)
			require.NoError(tb, c.repo.AddDelegation(manifest.RoleTargets, sign.Delegation{
				Name: id, Paths: []string{id + "/*/*"}, Terminating: true, Keys: binKeys}))
		}
	}
	for hw := range nHW {
		for v := range perHW {
			p := cataloguePath(hw, v)
			fw := manifest.Firmware{Version: manifest.MustParseVersion(fmt.Sprintf("1.%d.0", v)), SecurityVersion: 1,
				HardwareIDs: []string{fmt.Sprintf("hw-%04d", hw)}}
			require.NoError(tb, c.repo.AddFirmware(ctx, p, bytes.NewReader(catalogueImage(p)), fw))
		}
	}
	if index {
		require.NoError(tb, c.repo.UpdateReleaseIndexes(ctx, nil))
	}
	require.NoError(tb, c.repo.Publish(ctx, c.signers))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc, err := c.store.Get(r.Context(), strings.TrimPrefix(r.URL.Path, "/"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer rc.Close()
		io.Copy(w, rc)
	}))
	tb.Cleanup(srv.Close)
	c.url = srv.URL
	return c
}

// counter counts the bytes and requests a client fetches.
type counter struct{ bytes, requests atomic.Int64 }

type countingReader struct {
	io.ReadCloser
	n *atomic.Int64
}

func (r countingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.n.Add(int64(n))
	return n, err
}

func (c *catalogue) client(tb testing.TB, cnt *counter) *verify.Client {
	tb.Helper()
	ctx := context.Background()
	store := &verify.MemTrustStore{}
	require.NoError(tb, verify.Bootstrap(ctx, store, c.rootJSON, manifest.Limits{}))
	f := &verify.HTTPFetcher{Retries: -1}
	cl, err := verify.New(ctx, verify.Config{
		MetadataURL: c.url + "/metadata/", TargetsURL: c.url + "/targets/",
		Fetcher: verify.FetcherFunc(func(ctx context.Context, url string, max int64) (io.ReadCloser, error) {
			cnt.requests.Add(1)
			rc, err := f.Fetch(ctx, url, max)
			if err != nil {
				return nil, err
			}
			return countingReader{rc, &cnt.bytes}, nil
		}),
		Store: store, Clock: verify.SystemClock{},
	})
	require.NoError(tb, err)
	return cl
}

func catalogueDevice(tb testing.TB, hw, installed int) *rollback.State {
	tb.Helper()
	ctx := context.Background()
	st, err := rollback.OpenState(ctx, rollback.NewMemStore(), rollback.StateOptions{HardwareID: fmt.Sprintf("hw-%04d", hw), AllowNoCounter: true})
	require.NoError(tb, err)
	p := cataloguePath(hw, installed)
	sum := sha256.Sum256(catalogueImage(p))
	require.NoError(tb, st.Provision(ctx, rollback.Image{HardwareID: fmt.Sprintf("hw-%04d", hw), TargetPath: p,
		Version: manifest.MustParseVersion(fmt.Sprintf("1.%d.0", installed)), SecurityVersion: 1,
		Length: int64(len(catalogueImage(p))), SHA256: sum[:], Slot: "a"}))
	return st
}

// A hash-binned catalogue is searchable by hardware ID through release
// indexes; without them Select finds nothing; an index cannot offer a
// release its bin does not sign.
func TestCatalogueSelect(t *testing.T) {
	ctx := context.Background()
	c := newCatalogue(t, 20, 10, 4, true)
	var cnt counter
	cl := c.client(t, &cnt)
	require.NoError(t, cl.Refresh(ctx))
	u, err := cl.Select(ctx, catalogueDevice(t, 7, 3))
	require.NoError(t, err)
	assert.Equal(t, cataloguePath(7, 9), u.Release.Path)
	assert.True(t, strings.HasPrefix(u.Role, "bin-"), u.Role)
	var buf bytes.Buffer
	require.NoError(t, cl.Download(ctx, u.Release.Path, u.Release.File, &buf))
	assert.Equal(t, catalogueImage(cataloguePath(7, 9)), buf.Bytes())

	// Without indexes the bins hide every release from Select.
	plain := newCatalogue(t, 20, 10, 4, false)
	pc := plain.client(t, &counter{})
	require.NoError(t, pc.Refresh(ctx))
	_, err = pc.Select(ctx, catalogueDevice(t, 7, 3))
	assert.ErrorIs(t, err, verify.ErrNoReleases)

	// A release removed from its bin but still in a stale index: the
	// index cannot offer it.
	newest := cataloguePath(7, 9)
	require.NoError(t, c.repo.RemoveTarget(newest))
	require.NoError(t, c.repo.Publish(ctx, c.signers))
	require.NoError(t, cl.Refresh(ctx))
	_, err = cl.Select(ctx, catalogueDevice(t, 7, 3))
	require.Error(t, err)
	assert.True(t, errors.Is(err, verify.ErrTargetNotFound), "%v", err)
	// Once the index is brought up to date, the next newest is chosen.
	require.NoError(t, c.repo.UpdateReleaseIndexes(ctx, []string{"hw-0007"}))
	require.NoError(t, c.repo.Publish(ctx, c.signers))
	require.NoError(t, cl.Refresh(ctx))
	u, err = cl.Select(ctx, catalogueDevice(t, 7, 3))
	require.NoError(t, err)
	assert.Equal(t, cataloguePath(7, 8), u.Release.Path)
}

// BenchmarkCatalogueSelect measures what a device downloads from a
// catalogue of 100,000 firmware targets for 2,000 hardware IDs (50 each):
// in 1,024 or 4,096 hash bins with release indexes, a first refresh plus
// Select (which fetches the index's bin, the index and the chosen image's
// bin), and a refresh that finds nothing new; and, for comparison, with
// one path delegation per hardware ID. Building each catalogue takes
// minutes; run with -benchtime=1x.
func BenchmarkCatalogueSelect(b *testing.B) {
	for _, bits := range []int{10, 12, 0} {
		name := fmt.Sprintf("bins=%d", 1<<bits)
		if bits == 0 {
			name = "per-model-delegations"
		}
		b.Run(name, func(b *testing.B) {
			c := newCatalogue(b, 2000, 50, bits, bits > 0)
			snap := c.store.blobs
			var snapBytes int
			for n, data := range snap {
				if strings.HasSuffix(n, ".snapshot.json") {
					snapBytes = len(data)
				}
			}
			ctx := context.Background()
			b.ResetTimer()
			var first, again, firstReq, againReq int64
			for i := 0; b.Loop(); i++ {
				var cnt counter
				cl := c.client(b, &cnt)
				require.NoError(b, cl.Refresh(ctx))
				u, err := cl.Select(ctx, catalogueDevice(b, i%2000, 0))
				require.NoError(b, err)
				require.Equal(b, cataloguePath(i%2000, 49), u.Release.Path)
				first, firstReq = cnt.bytes.Load(), cnt.requests.Load()
				require.NoError(b, cl.Refresh(ctx))
				again, againReq = cnt.bytes.Load()-first, cnt.requests.Load()-firstReq
			}
			b.ReportMetric(float64(first), "first-refresh+select-B")
			b.ReportMetric(float64(firstReq), "first-requests")
			b.ReportMetric(float64(again), "no-change-refresh-B")
			b.ReportMetric(float64(againReq), "no-change-requests")
			b.ReportMetric(float64(snapBytes), "snapshot-B")
		})
	}
}
