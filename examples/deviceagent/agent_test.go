package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/delta"
	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/rollback"
	"github.com/otaseal/otaseal/sign"
)

const hw = "acme-gw-r2"

// testServer is a repository published with package sign and served on
// 127.0.0.1, with a hook to play a man in the middle.
type testServer struct {
	url    string
	root   string // root.json file
	images map[string][]byte
	repo   *sign.Repository
	keys   map[string]*sign.Signer
	dir    string // the repository's storage directory
	mu     sync.Mutex
	mitm   func(path string, b []byte) []byte
}

// publish publishes the repository again: with only the online keys it
// re-signs snapshot and timestamp, as an update server does.
func (s *testServer) publish(t testing.TB, roles ...string) {
	var signers []*sign.Signer
	for _, r := range roles {
		signers = append(signers, s.keys[r])
	}
	require.NoError(t, s.repo.Publish(context.Background(), signers))
}

// file returns the bytes the server holds at path (relative to its root).
func (s *testServer) file(t testing.TB, path string) []byte {
	b, err := os.ReadFile(filepath.Join(s.dir, filepath.FromSlash(path)))
	require.NoError(t, err)
	return b
}

func (s *testServer) setMITM(f func(string, []byte) []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mitm = f
}

func makeImages(size int) map[string][]byte {
	rng := rand.New(rand.NewSource(1))
	v1 := make([]byte, size)
	rng.Read(v1)
	v2 := bytes.Clone(v1)
	for i := 0; i < 200; i++ {
		v2[rng.Intn(len(v2))] ^= 0x5a
	}
	factory := make([]byte, size/2) // an older image the repository no longer lists
	rng.Read(factory)
	return map[string][]byte{"0.9.0": factory, "1.0.0": v1, "1.1.0": v2}
}

// newServer publishes 1.0.0 (security version 1) and 1.1.0 (2) with a
// streaming delta between them.
func newServer(t testing.TB, imageSize int) *testServer {
	return newServerAt(t, imageSize, time.Now)
}

// newServerAt publishes with the given clock: a clock in the past makes a
// repository whose timestamp has already expired.
func newServerAt(t testing.TB, imageSize int, now func() time.Time) *testServer {
	ctx := context.Background()
	dir := t.TempDir()
	keys := map[string]*sign.Signer{}
	roles := map[string]sign.RoleKeys{}
	for _, role := range []string{"root", "targets", "snapshot", "timestamp"} {
		seed := sha256.Sum256([]byte("deviceagent test " + role))
		s, err := sign.SignerFromPrivateKey(ctx, ed25519.NewKeyFromSeed(seed[:]))
		require.NoError(t, err)
		keys[role] = s
		roles[role] = sign.RoleKeys{Threshold: 1, Keys: []*manifest.Key{s.Key()}}
	}
	root, err := sign.NewRoot(sign.RootSpec{Roles: roles}, now().AddDate(1, 0, 0))
	require.NoError(t, err)
	p, err := sign.PolicyFromRoot(&root.Signed)
	require.NoError(t, err)
	_, err = sign.SignRole(ctx, p, "root", root, []*sign.Signer{keys["root"]})
	require.NoError(t, err)
	storage, err := sign.NewDirStorage(filepath.Join(dir, "repo"))
	require.NoError(t, err)
	repo, err := sign.CreateRepository(ctx, storage, root, sign.RepositoryOptions{TempDir: dir, Now: now})
	require.NoError(t, err)
	t.Cleanup(func() { repo.Close() })
	s := &testServer{images: makeImages(imageSize), repo: repo, keys: keys, dir: filepath.Join(dir, "repo")}
	for v, sv := range map[string]uint64{"1.0.0": 1, "1.1.0": 2} {
		fw := manifest.Firmware{Version: manifest.MustParseVersion(v), SecurityVersion: sv, HardwareIDs: []string{hw},
			Severity: manifest.SeveritySecurity, Advisories: []string{"CVE-2026-" + v}}
		require.NoError(t, repo.AddFirmware(ctx, hw+"/"+v+"/firmware.bin", bytes.NewReader(s.images[v]), fw))
	}
	d, err := delta.Diff(s.images["1.0.0"], s.images["1.1.0"])
	require.NoError(t, err)
	var patch bytes.Buffer
	require.NoError(t, d.Encode(&patch, delta.FormatStream))
	require.NoError(t, repo.AddDelta(ctx, hw+"/deltas/1.0.0-1.1.0.otz", hw+"/1.0.0/firmware.bin", hw+"/1.1.0/firmware.bin", &patch))
	require.NoError(t, repo.Publish(ctx, []*sign.Signer{keys["targets"], keys["snapshot"], keys["timestamp"]}))

	rootJSON, err := root.ToBytes(false)
	require.NoError(t, err)
	s.root = filepath.Join(dir, "root.json")
	require.NoError(t, os.WriteFile(s.root, rootJSON, 0o644))
	files := http.FileServer(http.Dir(filepath.Join(dir, "repo")))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		mitm := s.mitm
		s.mu.Unlock()
		if mitm == nil {
			files.ServeHTTP(w, r)
			return
		}
		b, err := os.ReadFile(filepath.Join(dir, "repo", filepath.FromSlash(filepath.Clean("/"+r.URL.Path))))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Write(mitm(r.URL.Path, b))
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

// device is a device directory with slot A holding the factory 1.0.0.
type device struct {
	dir, factory, stateDir, slotA, slotB string
}

func newDevice(t testing.TB, s *testServer) *device { return newDeviceWith(t, s, "1.0.0") }

// newDeviceWith makes a device whose slot A holds the factory image of
// version factory ("1.0.0": a delta leads from it; "0.9.0": full images).
func newDeviceWith(t testing.TB, s *testServer, factory string) *device {
	dir := t.TempDir()
	d := &device{dir: dir, factory: factory, stateDir: filepath.Join(dir, "state"), slotA: filepath.Join(dir, "slot-a.img"), slotB: filepath.Join(dir, "slot-b.img")}
	require.NoError(t, os.WriteFile(d.slotA, s.images[factory], 0o644))
	return d
}

func (d *device) args(s *testServer, extra ...string) []string {
	return append([]string{"-server", s.url, "-hardware-id", hw, "-state", d.stateDir, "-slot-a", d.slotA, "-slot-b", d.slotB,
		"-root", s.root, "-factory-version", d.factory, "-factory-security-version", "1", "-once"}, extra...)
}

func (d *device) status(t testing.TB) rollback.Status {
	store, err := rollback.OpenFileStore(d.stateDir, rollback.FileStoreOptions{})
	require.NoError(t, err)
	defer store.Close() // the next agent run needs the state directory's lock
	st, err := rollback.OpenState(context.Background(), store, rollback.StateOptions{HardwareID: hw, AllowNoCounter: true})
	require.NoError(t, err)
	status, err := st.Status(context.Background())
	require.NoError(t, err)
	return status
}

func agentRun(t testing.TB, args []string) (int, string) {
	var log bytes.Buffer
	code := run(context.Background(), args, &log)
	return code, log.String()
}

func TestUpdateThroughDelta(t *testing.T) {
	s := newServer(t, 256<<10)
	d := newDevice(t, s)
	code, log := agentRun(t, d.args(s))
	require.Equal(t, 0, code, log)
	assert.Contains(t, log, "security notice")
	assert.Contains(t, log, "CVE-2026-1.1.0")
	assert.Contains(t, log, "via=\"delta "+hw+"/deltas/1.0.0-1.1.0.otz\"")
	assert.Contains(t, log, "progress")
	st := d.status(t)
	assert.Equal(t, "1.1.0", st.Installed.Version.String())
	assert.Equal(t, "b", st.Installed.Slot)
	assert.Nil(t, st.Pending)
	assert.Equal(t, uint64(2), st.Floors[hw])
	got, err := os.ReadFile(d.slotB)
	require.NoError(t, err)
	assert.Equal(t, s.images["1.1.0"], got)

	code, log = agentRun(t, d.args(s))
	require.Equal(t, 0, code, log)
	assert.Contains(t, log, "up to date")
}

func TestFailedHealthCheckReverts(t *testing.T) {
	s := newServer(t, 64<<10)
	d := newDevice(t, s)
	code, log := agentRun(t, d.args(s, "-health-check", "test \"$OTASEAL_VERSION\" != 1.1.0"))
	assert.Equal(t, 1, code, log)
	assert.Contains(t, log, "health check failed")
	st := d.status(t)
	assert.Equal(t, "1.0.0", st.Installed.Version.String())
	assert.Equal(t, "a", st.Installed.Slot)
	assert.Nil(t, st.Pending)
	assert.Equal(t, uint64(1), st.Floors[hw], "the floor does not rise for an image that failed its check")
}

func TestTamperedDownloadRefused(t *testing.T) {
	s := newServer(t, 64<<10)
	d := newDevice(t, s)
	s.setMITM(func(p string, b []byte) []byte {
		if strings.HasPrefix(p, "/targets/") {
			b = bytes.Clone(b)
			b[len(b)/2] ^= 1
		}
		return b
	})
	code, log := agentRun(t, d.args(s))
	assert.Equal(t, 1, code, log)
	assert.Contains(t, log, "delta refused; fetching the full image")
	assert.Contains(t, log, "hash differs")
	st := d.status(t)
	assert.Equal(t, "1.0.0", st.Installed.Version.String())
	assert.Nil(t, st.Pending)
	a, _ := os.ReadFile(d.slotA)
	assert.Equal(t, s.images["1.0.0"], a, "the active slot is untouched")
}

func TestResume(t *testing.T) {
	s := newServer(t, 64<<10)
	for _, complete := range []bool{false, true} {
		t.Run(fmt.Sprint("complete=", complete), func(t *testing.T) {
			d := newDevice(t, s)
			// Provision, then leave a pending install as a kill would.
			code, log := agentRun(t, append(d.args(s), "-server", "http://127.0.0.1:1"))
			require.Equal(t, exitNetwork, code, log) // no server: the cycle fails, provisioning stays
			store, err := rollback.OpenFileStore(d.stateDir, rollback.FileStoreOptions{})
			require.NoError(t, err)
			st, err := rollback.OpenState(context.Background(), store, rollback.StateOptions{HardwareID: hw, AllowNoCounter: true})
			require.NoError(t, err)
			img := s.images["1.1.0"]
			sum := sha256.Sum256(img)
			require.NoError(t, st.Begin(context.Background(), rollback.Image{HardwareID: hw, TargetPath: hw + "/1.1.0/firmware.bin",
				Version: manifest.MustParseVersion("1.1.0"), SecurityVersion: 2, Length: int64(len(img)), SHA256: sum[:], Slot: "b"}))
			require.NoError(t, store.Close())
			written := img
			if !complete {
				written = img[:len(img)/3]
			}
			require.NoError(t, os.WriteFile(d.slotB, written, 0o644))

			code, log = agentRun(t, append(d.args(s), "-server", "http://127.0.0.1:1"))
			assert.Equal(t, exitNetwork, code, log)
			status := d.status(t)
			assert.Nil(t, status.Pending)
			if complete {
				assert.Contains(t, log, "pending image complete")
				assert.Equal(t, "1.1.0", status.Installed.Version.String())
				assert.Equal(t, "b", status.Installed.Slot)
			} else {
				assert.Contains(t, log, "rolling back")
				assert.Equal(t, "1.0.0", status.Installed.Version.String())
				assert.Equal(t, "a", status.Installed.Slot)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"-server", "x"}, {"extra"}, {"-client-cert", "c"}} {
		code, _ := agentRun(t, args)
		assert.Equal(t, 2, code, "%q", args)
	}
	code, _ := agentRun(t, []string{"-help"})
	assert.Equal(t, 0, code)
	// Not provisioned and no factory version: a configuration error.
	s := newServer(t, 1024)
	d := newDevice(t, s)
	code, log := agentRun(t, []string{"-server", s.url, "-hardware-id", hw, "-state", d.stateDir, "-slot-a", d.slotA, "-slot-b", d.slotB, "-once"})
	assert.Equal(t, 2, code)
	assert.Contains(t, log, "not provisioned")
}
