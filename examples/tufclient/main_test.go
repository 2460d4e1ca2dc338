package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otaseal/otaseal/internal/tuftest"
	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// newRepo returns a repository whose documents are valid by the real clock,
// since tufclient reads the time from `date +%s`.
func newRepo(t *testing.T) *tuftest.Repo {
	r := tuftest.NewRepo(t)
	now := time.Now()
	r.Root.Signed.Expires = now.AddDate(1, 0, 0)
	r.Timestamp.Signed.Expires = now.AddDate(0, 0, 1)
	r.Snapshot.Signed.Expires = now.AddDate(0, 0, 7)
	for _, md := range r.Targets {
		md.Signed.Expires = now.AddDate(0, 3, 0)
	}
	r.PublishRoot()
	r.Publish()
	return r
}

func tufclient(t *testing.T, args ...string) (int, string) {
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, errOut.String()
}

func initDir(t *testing.T, r *tuftest.Repo) string {
	dir := filepath.Join(t.TempDir(), "meta") // does not exist yet
	rootFile := filepath.Join(t.TempDir(), "root.json")
	require.NoError(t, os.WriteFile(rootFile, r.RootJSON(1), 0o644))
	code, stderr := tufclient(t, "--metadata-dir", dir, "init", rootFile)
	require.Equal(t, 0, code, stderr)
	got, err := os.ReadFile(filepath.Join(dir, "root.json"))
	require.NoError(t, err)
	require.Equal(t, r.RootJSON(1), got)
	return dir
}

func jsonFiles(t *testing.T, dir string) []string {
	m, err := filepath.Glob(filepath.Join(dir, "*.json"))
	require.NoError(t, err)
	for i := range m {
		m[i] = filepath.Base(m[i])
	}
	sort.Strings(m)
	return m
}

func TestInitNoNetwork(t *testing.T) {
	r := newRepo(t)
	r.Requests()
	initDir(t, r)
	assert.Empty(t, r.Requests())
}

func TestRefresh(t *testing.T) {
	r := newRepo(t)
	dir := initDir(t, r)
	r.Requests()
	code, stderr := tufclient(t, "--metadata-dir", dir, "--metadata-url", r.MetadataURL(), "refresh")
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, []string{"metadata/2.root.json", "metadata/timestamp.json", "metadata/snapshot.json", "metadata/targets.json"}, r.Requests())
	assert.Equal(t, []string{"root.json", "snapshot.json", "targets.json", "timestamp.json"}, jsonFiles(t, dir))
	for _, role := range []string{"timestamp", "snapshot", "targets"} {
		got, err := os.ReadFile(filepath.Join(dir, role+".json"))
		require.NoError(t, err)
		assert.True(t, bytes.Equal(r.GetFile("metadata/"+role+".json"), got), "%s byte for byte", role)
	}
}

func TestDownload(t *testing.T) {
	r := newRepo(t)
	r.Delegate("targets", metadata.DelegatedRole{Name: "team/a", Paths: []string{"deep/*"}})
	names := map[string][]byte{"file1.txt": []byte("one"), "a dir/file?2&x": []byte("two"), "deep/three.bin": []byte("three")}
	for n, content := range names {
		role := "targets"
		if n == "deep/three.bin" {
			role = "team/a"
		}
		r.AddTarget(role, n, content, nil)
	}
	r.Publish()
	dir := initDir(t, r)
	targetDir := filepath.Join(t.TempDir(), "targets")
	args := []string{"--metadata-url", r.MetadataURL(), "--metadata-dir", dir, "--target-dir", targetDir,
		"--target-base-url", r.TargetsURL()}
	for n := range names {
		args = append(args, "--target-name", n)
	}
	code, stderr := tufclient(t, append(args, "download")...)
	require.Equal(t, 0, code, stderr)
	for n, content := range names {
		got, err := os.ReadFile(filepath.Join(targetDir, url.QueryEscape(n)))
		require.NoError(t, err, n)
		assert.Equal(t, content, got)
	}
	assert.Contains(t, jsonFiles(t, dir), "team=2fa.json", "delegated role stored under an escaped name (verify.DirTrustStore.FileName)")

	// Verified copies are kept: no target is fetched again.
	r.Requests()
	code, stderr = tufclient(t, append(args, "download")...)
	require.Equal(t, 0, code, stderr)
	for _, p := range r.Requests() {
		assert.NotContains(t, p, "targets/", "re-fetched %s", p)
	}

	// A tampered copy on disk is replaced by a verified download.
	require.NoError(t, os.WriteFile(filepath.Join(targetDir, "file1.txt"), []byte("evil"), 0o644))
	code, stderr = tufclient(t, append(args, "download")...)
	require.Equal(t, 0, code, stderr)
	got, _ := os.ReadFile(filepath.Join(targetDir, "file1.txt"))
	assert.Equal(t, "one", string(got))
}

func TestDownloadRefusesTampered(t *testing.T) {
	r := newRepo(t)
	r.AddTarget("targets", "good.bin", []byte("good"), nil)
	r.AddTarget("targets", "bad.bin", []byte("real"), nil)
	r.Publish()
	r.SetFile("targets/bad.bin", []byte("evil"))
	dir := initDir(t, r)
	targetDir := t.TempDir()
	code, _ := tufclient(t, "--metadata-url", r.MetadataURL(), "--metadata-dir", dir, "--target-dir", targetDir,
		"--target-base-url", r.TargetsURL(), "--target-name", "bad.bin", "--target-name", "good.bin", "download")
	assert.Equal(t, 1, code)
	entries, err := os.ReadDir(targetDir)
	require.NoError(t, err)
	assert.Empty(t, entries, "nothing written, and the run stopped at the first failure")
}

func TestExitCodes(t *testing.T) {
	r := newRepo(t)
	dir := initDir(t, r)
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"--metadata-dir", dir, "init"},
		{"--metadata-dir", dir, "init", "/nonexistent/root.json"},
		{"--metadata-url", "http://127.0.0.1:1/", "--metadata-dir", dir, "refresh"},
		{"--metadata-url", r.MetadataURL(), "refresh"},
		{"--metadata-url", "no-slash", "--metadata-dir", dir, "refresh"},
		{"--metadata-url", r.MetadataURL(), "--metadata-dir", dir, "download"},
		{"--bogus-flag", "refresh"},
	} {
		code, _ := tufclient(t, args...)
		assert.Equal(t, 1, code, "%q", args)
	}
	code, _ := tufclient(t, "--help")
	assert.Equal(t, 0, code)

	// An expired timestamp is a failure.
	r.Timestamp.Signed.Expires = time.Now().Add(-time.Hour)
	r.PublishTimestamp()
	code, _ = tufclient(t, "--metadata-url", r.MetadataURL(), "--metadata-dir", dir, "refresh")
	assert.Equal(t, 1, code)
}

// The built program, not just run(): exit status exactly 0 and 1.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the program")
	}
	bin := filepath.Join(t.TempDir(), "tufclient")
	build := exec.Command("go", "build", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, string(out))
	r := newRepo(t)
	dir := initDir(t, r)
	cmd := exec.Command(bin, "--metadata-dir", dir, "--metadata-url", r.MetadataURL(), "refresh")
	require.NoError(t, cmd.Run())
	assert.Equal(t, 0, cmd.ProcessState.ExitCode())
	cmd = exec.Command(bin, "--metadata-dir", dir, "refresh")
	assert.Error(t, cmd.Run())
	assert.Equal(t, 1, cmd.ProcessState.ExitCode())
}

// A repository published by package sign (consistent snapshots, a
// terminating path delegation, and TAP 15 hash bins under a delegated
// catalogue role), served from its storage directory.
func TestAgainstSignRepository(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	keys := map[string]*sign.Signer{}
	roles := map[string]sign.RoleKeys{}
	for _, role := range []string{"root", "targets", "snapshot", "timestamp", "team", "catalogue", "bins"} {
		seed := sha256.Sum256([]byte("tufclient test " + role))
		s, err := sign.SignerFromPrivateKey(ctx, ed25519.NewKeyFromSeed(seed[:]))
		require.NoError(t, err)
		keys[role] = s
		roles[role] = sign.RoleKeys{Threshold: 1, Keys: []*manifest.Key{s.Key()}}
	}
	top := map[string]sign.RoleKeys{}
	for _, r := range []string{"root", "targets", "snapshot", "timestamp"} {
		top[r] = roles[r]
	}
	root, err := sign.NewRoot(sign.RootSpec{Roles: top}, time.Now().AddDate(1, 0, 0))
	require.NoError(t, err)
	p, err := sign.PolicyFromRoot(&root.Signed)
	require.NoError(t, err)
	_, err = sign.SignRole(ctx, p, "root", root, []*sign.Signer{keys["root"]})
	require.NoError(t, err)
	storage, err := sign.NewDirStorage(dir)
	require.NoError(t, err)
	repo, err := sign.CreateRepository(ctx, storage, root, sign.RepositoryOptions{TempDir: t.TempDir()})
	require.NoError(t, err)
	defer repo.Close()
	require.NoError(t, repo.AddDelegation("targets", sign.Delegation{Name: "team", Paths: []string{"team/*"}, Terminating: true, Keys: roles["team"]}))
	require.NoError(t, repo.AddDelegation("targets", sign.Delegation{Name: "catalogue", Paths: []string{"catalogue/*/*/*"}, Keys: roles["catalogue"]}))
	require.NoError(t, repo.AddHashBins("catalogue", "bins", 3, roles["bins"]))
	content := map[string][]byte{"team/a.bin": []byte("team"), "catalogue/x/1.0.0/fw.bin": []byte("binned")}
	for path, b := range content {
		fw := manifest.Firmware{Version: manifest.MustParseVersion("1.0.0"), HardwareIDs: []string{"x"}}
		require.NoError(t, repo.AddFirmware(ctx, path, bytes.NewReader(b), fw))
	}
	require.NoError(t, repo.Publish(ctx, []*sign.Signer{keys["targets"], keys["snapshot"], keys["timestamp"], keys["team"], keys["catalogue"], keys["bins"]}))

	var mu sync.Mutex
	var reqs []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		reqs = append(reqs, r.URL.Path)
		mu.Unlock()
		http.FileServer(http.Dir(dir)).ServeHTTP(w, r)
	}))
	defer srv.Close()
	rootJSON, err := root.ToBytes(false)
	require.NoError(t, err)
	rootFile := filepath.Join(t.TempDir(), "root.json")
	require.NoError(t, os.WriteFile(rootFile, rootJSON, 0o644))
	metaDir, targetDir := filepath.Join(t.TempDir(), "m"), filepath.Join(t.TempDir(), "t")
	code, stderr := tufclient(t, "--metadata-dir", metaDir, "init", rootFile)
	require.Equal(t, 0, code, stderr)
	code, stderr = tufclient(t, "--metadata-url", srv.URL+"/metadata/", "--metadata-dir", metaDir, "refresh")
	require.Equal(t, 0, code, stderr)
	snapV, targetsV := repoVersion(t, metaDir, "timestamp", "snapshot.json"), repoVersion(t, metaDir, "snapshot", "targets.json")
	assert.Equal(t, []string{"/metadata/2.root.json", "/metadata/timestamp.json",
		fmt.Sprintf("/metadata/%d.snapshot.json", snapV), fmt.Sprintf("/metadata/%d.targets.json", targetsV)}, reqs)

	args := []string{"--metadata-url", srv.URL + "/metadata/", "--metadata-dir", metaDir, "--target-dir", targetDir, "--target-base-url", srv.URL + "/targets/"}
	for path := range content {
		args = append(args, "--target-name", path)
	}
	code, stderr = tufclient(t, append(args, "download")...)
	require.Equal(t, 0, code, stderr)
	for path, b := range content {
		got, err := os.ReadFile(filepath.Join(targetDir, url.QueryEscape(path)))
		require.NoError(t, err)
		assert.Equal(t, b, got)
	}
	files := jsonFiles(t, metaDir)
	assert.Contains(t, files, "team.json")
	assert.Contains(t, files, "catalogue.json")
	for _, f := range files {
		ok := f == "root.json" || f == "timestamp.json" || f == "snapshot.json" || f == "targets.json" || f == "team.json" || f == "catalogue.json" || strings.HasPrefix(f, "bins-")
		assert.True(t, ok, "unexpected file %s in the metadata directory", f)
	}
}

// repoVersion reads the version that role's stored document gives for meta.
func repoVersion(t *testing.T, dir, role, meta string) int64 {
	b, err := os.ReadFile(filepath.Join(dir, role+".json"))
	require.NoError(t, err)
	var doc struct {
		Signed struct {
			Meta map[string]struct {
				Version int64 `json:"version"`
			} `json:"meta"`
		} `json:"signed"`
	}
	require.NoError(t, json.Unmarshal(b, &doc))
	return doc.Signed.Meta[meta].Version
}
