package main

import (
	"bytes"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/otaseal/otaseal/internal/tuftest"
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
	assert.Contains(t, jsonFiles(t, dir), "team%2Fa.json", "delegated role stored under an escaped name")

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
