package main

// Tests of the built program, run as an operator runs it: a separate
// process, its exit status, stdout and stderr, and the repository left on
// disk. Every refused command must leave the repository byte-identical.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
	buildDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// releaseBin builds this package once per test binary.
func releaseBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		// RELEASE_TEST_BIN runs these tests against another build, e.g.
		// an older commit's, to see which findings it still has.
		if builtBin = os.Getenv("RELEASE_TEST_BIN"); builtBin != "" {
			return
		}
		if buildDir, buildErr = os.MkdirTemp("", "release-bin-"); buildErr != nil {
			return
		}
		builtBin = filepath.Join(buildDir, "release")
		out, err := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", builtBin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return builtBin
}

// bin runs the built program with args.
func bin(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, releaseBin(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		require.True(t, errors.As(err, &ee), "running release: %v", err)
		code = ee.ExitCode()
	}
	return result{code, stdout.String(), stderr.String()}
}

// binOK runs the built program and requires exit status 0.
func binOK(t *testing.T, args ...string) result {
	t.Helper()
	r := bin(t, args...)
	require.Equal(t, 0, r.code, "release %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.stdout, r.stderr)
	return r
}

// refused runs a command that must fail with code and leave the
// repository (and its staged changes) byte-identical; it returns stderr.
func refused(t *testing.T, repo string, code int, args ...string) result {
	t.Helper()
	before := repoHash(t, repo)
	r := bin(t, args...)
	require.Equal(t, code, r.code, "release %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.stdout, r.stderr)
	require.Equal(t, before, repoHash(t, repo), "release %s changed the repository", strings.Join(args, " "))
	return r
}

// repoHash hashes every name, mode and byte of the repository and of the
// staged changes beside it; "absent" when neither exists.
func repoHash(t *testing.T, repo string) string {
	t.Helper()
	h := sha256.New()
	found := false
	for _, root := range []string{repo, stagingFile(repo)} {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			found = true
			info, err := d.Info()
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "%s\x00%s\x00", p, info.Mode())
			if d.Type().IsRegular() {
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				h.Write(b)
			}
			return nil
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
	}
	if !found {
		return "absent"
	}
	return hex.EncodeToString(h.Sum(nil))
}

// builtRepo makes a repository with the built program: root key 1,
// targets key 2, snapshot 4, timestamp 5, and release 1.0.0 of acme-gw-r2
// (security version 5).
func builtRepo(t *testing.T) (repo, dir string) {
	dir = t.TempDir()
	repo = filepath.Join(dir, "repo")
	binOK(t, "init", "--repo", repo, "--root-key", key("ed25519-1"), "--targets-key", key("ed25519-2"),
		"--snapshot-key", key("ed25519-4"), "--timestamp-key", key("ed25519-5"))
	old, _ := images()
	binOK(t, "add", "--repo", repo, "--hardware-id", "acme-gw-r2", newHW(t), "--version", "1.0.0", "--security-version", "5",
		"--key", key("ed25519-2"), "--key", onlineKeys, writeImage(t, dir, "1.0.0.bin", old))
	return repo, dir
}

// newHW is --new-hardware-id, or a harmless flag for a build from before
// it existed (RELEASE_TEST_BIN), so that the setup of a test runs there
// and the test fails on its own finding.
func newHW(t *testing.T) string {
	if strings.Contains(bin(t, "add", "--help").stdout, "-new-hardware-id") {
		return "--new-hardware-id"
	}
	return "--deltas=2"
}

// Finding 1: keys are made by the tool, one type at a time, never over an
// existing file, and the keys it makes run a repository.
func TestBuiltKeygen(t *testing.T) {
	dir := t.TempDir()
	keys := map[string]string{}
	for _, tc := range []struct {
		role, typ, scheme string
		extra             []string
	}{
		{"root", "", sign.SchemeEd25519, nil},
		{"targets", "ecdsa-p384", sign.SchemeECDSAP384, nil},
		{"snapshot", "ecdsa-p256", sign.SchemeECDSAP256, nil},
		{"timestamp", "rsa", sign.SchemeRSAPSS, []string{"--bits", "2048"}},
	} {
		out := filepath.Join(dir, tc.role+".pem")
		args := []string{"keygen", "--out", out}
		if tc.typ != "" {
			args = append(args, "--type", tc.typ)
		}
		r := binOK(t, append(args, tc.extra...)...)
		info, err := os.Stat(out)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "private key mode")
		s, err := sign.LoadPEMSignerFile(context.Background(), out, nil)
		require.NoError(t, err)
		assert.Equal(t, tc.scheme, s.Scheme())
		assert.Contains(t, r.stdout, "key ID: "+s.KeyID()+"\n")
		pub, err := os.ReadFile(out + ".pub")
		require.NoError(t, err)
		assert.Contains(t, r.stdout, string(pub), "the public key is printed")
		assert.Contains(t, string(pub), "-----BEGIN PUBLIC KEY-----")
		keys[tc.role] = out
	}

	// Never over an existing key, nor its public half.
	before, err := os.ReadFile(keys["root"])
	require.NoError(t, err)
	r := bin(t, "keygen", "--out", keys["root"])
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "exists: keygen never overwrites")
	after, err := os.ReadFile(keys["root"])
	require.NoError(t, err)
	assert.Equal(t, before, after)
	orphan := filepath.Join(dir, "orphan.pem")
	require.NoError(t, os.WriteFile(orphan+".pub", []byte("x"), 0o644))
	r = bin(t, "keygen", "--out", orphan)
	assert.Equal(t, 1, r.code)
	_, err = os.Stat(orphan)
	assert.ErrorIs(t, err, fs.ErrNotExist, "both files or neither")

	for _, args := range [][]string{
		{"keygen"},
		{"keygen", "--out", filepath.Join(dir, "x.pem"), "--type", "dsa"},
		{"keygen", "--out", filepath.Join(dir, "x.pem"), "--type", "rsa", "--bits", "1024"},
		{"keygen", "--out", filepath.Join(dir, "x.pem"), "--bits", "4096"},
	} {
		r := bin(t, args...)
		assert.Equal(t, 2, r.code, "%q: %s", args, r.stderr)
	}
	_, err = os.Stat(filepath.Join(dir, "x.pem"))
	assert.ErrorIs(t, err, fs.ErrNotExist)

	// The keys made run a repository that a device reads.
	repo := filepath.Join(dir, "repo")
	binOK(t, "init", "--repo", repo, "--root-key", keys["root"], "--targets-key", keys["targets"],
		"--snapshot-key", keys["snapshot"], "--timestamp-key", keys["timestamp"])
	binOK(t, "add", "--repo", repo, "--hardware-id", "hw", newHW(t), "--version", "1.0.0", "--security-version", "1",
		"--key", keys["targets"]+","+keys["snapshot"]+","+keys["timestamp"], writeImage(t, dir, "fw", []byte("fw")))
	vs, _ := newClient(t, repo).releases("hw")
	assert.Equal(t, []string{"1.0.0"}, vs)
}

// Finding 2: a root or targets key that is also a snapshot or timestamp
// key is refused at init and rotate, unless overridden.
func TestBuiltRoleSeparation(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	one := key("ed25519-1")
	r := refused(t, repo, 1, "init", "--repo", repo, "--root-key", one, "--targets-key", one, "--snapshot-key", one, "--timestamp-key", one)
	assert.Contains(t, r.stderr, "is a key of root and targets and of snapshot and timestamp")
	assert.Contains(t, r.stderr, "release keygen")
	r = refused(t, repo, 1, "init", "--repo", repo, "--root-key", key("ed25519-1"), "--targets-key", key("ed25519-2"),
		"--snapshot-key", key("ed25519-4"), "--timestamp-key", key("ed25519-2"))
	assert.Contains(t, r.stderr, "key "+keyID(t, "ed25519-2")[:16]+" is a key of targets and of timestamp")

	test := filepath.Join(dir, "test-repo")
	binOK(t, "init", "--repo", test, "--allow-shared-keys", "--root-key", one, "--targets-key", one, "--snapshot-key", one, "--timestamp-key", one)

	repo, _ = builtRepo(t)
	r = refused(t, repo, 1, "rotate", "--repo", repo, "--role", "snapshot", "--add-key", key("ed25519-2"),
		"--key", key("ed25519-1"), "--key", onlineKeys+","+key("ed25519-2"))
	assert.Contains(t, r.stderr, "is a key of targets and of snapshot")
	r = binOK(t, "rotate", "--repo", repo, "--role", "snapshot", "--add-key", key("ed25519-2"), "--allow-shared-keys",
		"--key", key("ed25519-1"), "--key", onlineKeys+","+key("ed25519-2"))
	assert.Contains(t, r.stdout, "root version 2 published")
}

// repoAt publishes, with package sign at the fake time then, a repository
// with key 1 for root, 2 for targets, 4 and 5 online, and release 1.0.0
// of hw; opts set the lifetimes.
func repoAt(t *testing.T, then time.Time, opts sign.RepositoryOptions) string {
	t.Helper()
	ctx := context.Background()
	load := func(name string) *sign.Signer {
		s, err := sign.LoadPEMSignerFile(ctx, key(name), nil)
		require.NoError(t, err)
		return s
	}
	one := func(name string) sign.RoleKeys {
		return sign.RoleKeys{Threshold: 1, Keys: []*manifest.Key{load(name).Key()}}
	}
	root, err := sign.NewRoot(sign.RootSpec{Roles: map[string]sign.RoleKeys{
		manifest.RoleRoot: one("ed25519-1"), manifest.RoleTargets: one("ed25519-2"),
		manifest.RoleSnapshot: one("ed25519-4"), manifest.RoleTimestamp: one("ed25519-5"),
	}}, then.Add(max(opts.RootExpiry, sign.DefaultRootExpiry)))
	require.NoError(t, err)
	p, err := sign.PolicyFromRoot(&root.Signed)
	require.NoError(t, err)
	_, err = sign.SignRole(ctx, p, manifest.RoleRoot, root, []*sign.Signer{load("ed25519-1")})
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "repo")
	store, err := sign.NewDirStorage(dir)
	require.NoError(t, err)
	opts.Now = func() time.Time { return then }
	opts.TempDir = t.TempDir()
	repo, err := sign.CreateRepository(ctx, store, root, opts)
	require.NoError(t, err)
	defer repo.Close()
	fw := manifest.Firmware{Version: manifest.MustParseVersion("1.0.0"), SecurityVersion: 1, HardwareIDs: []string{"hw"}}
	require.NoError(t, repo.AddFirmware(ctx, "hw/1.0.0/firmware.bin", bytes.NewReader([]byte("firmware 1.0.0")), fw))
	require.NoError(t, repo.Publish(ctx, []*sign.Signer{load("ed25519-2"), load("ed25519-4"), load("ed25519-5")}))
	return dir
}

// Finding 3: lifetimes are positive and per role; nothing is published
// under an expired root; inspect warns; status tells a monitor.
func TestBuiltExpiry(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	initArgs := []string{"init", "--repo", repo, "--root-key", key("ed25519-1"), "--targets-key", key("ed25519-2"),
		"--snapshot-key", key("ed25519-4"), "--timestamp-key", key("ed25519-5")}
	for _, bad := range [][]string{{"--root-expiry", "-1h"}, {"--root-expiry", "0"}, {"--targets-expiry", "-3d"}, {"--timestamp-expiry", "soon"}} {
		r := refused(t, repo, 2, append(initArgs, bad...)...)
		assert.Contains(t, r.stderr, bad[0][1:], "%q", bad)
	}
	now := time.Now()
	binOK(t, append(initArgs, "--root-expiry", "730d", "--targets-expiry", "30d", "--snapshot-expiry", "2d", "--timestamp-expiry", "12h")...)
	r := binOK(t, "status", "--repo", repo)
	for role, d := range map[string]time.Duration{"root": 730 * 24 * time.Hour, "targets": 30 * 24 * time.Hour, "snapshot": 48 * time.Hour, "timestamp": 12 * time.Hour} {
		want := now.Add(d).UTC().Format("2006-01-02")
		assert.Regexp(t, `(?m)^`+role+`\s+1\s+`+want+` `, r.stdout, role)
	}
	assert.Regexp(t, `(?m)^root\s+1\s+.*\s+729 days\s+ok\s+offline keys`, r.stdout)
	assert.Regexp(t, `(?m)^timestamp\s+1\s+.*\s+ok\s+online keys`, r.stdout)

	// Published 400 days ago with default lifetimes: everything expired.
	expired := repoAt(t, now.Add(-400*24*time.Hour), sign.RepositoryOptions{})
	img := writeImage(t, dir, "fw", []byte("firmware 1.1.0"))
	r = refused(t, expired, 1, "add", "--repo", expired, "--hardware-id", "hw", "--version", "1.1.0", "--security-version", "1",
		"--key", key("ed25519-2"), "--key", onlineKeys, img)
	assert.Contains(t, r.stderr, "root version 1 expired")
	assert.NotContains(t, r.stdout, "added")
	r = refused(t, expired, 1, "publish", "--repo", expired, "--renew", "targets", "--key", key("ed25519-2"), "--key", onlineKeys)
	assert.Contains(t, r.stderr, "root version 1 expired")
	r = refused(t, expired, 0, "inspect", "--repo", expired)
	assert.Contains(t, r.stderr, "warning: root version 1 EXPIRED")
	assert.Contains(t, r.stderr, "warning: targets version 1 EXPIRED")
	r = refused(t, expired, exitExpired, "status", "--repo", expired)
	assert.Regexp(t, `(?m)^root\s+1\s+.*\s+-\s+EXPIRED\s+`, r.stdout)
	assert.Contains(t, r.stderr, "release rotate")
	// Renewing the root without the targets key is refused: targets has
	// expired too, and one publish must renew both.
	r = refused(t, expired, 1, "rotate", "--repo", expired, "--root-expiry", "365d", "--key", key("ed25519-1"), "--key", onlineKeys)
	assert.Contains(t, r.stderr, "targets")
	r = binOK(t, "rotate", "--repo", expired, "--root-expiry", "365d", "--key", key("ed25519-1")+","+key("ed25519-2"), "--key", onlineKeys)
	assert.Contains(t, r.stdout, "root version 2 published")
	binOK(t, "status", "--repo", expired)
	vs, _ := newClient(t, expired).releases("hw")
	assert.Equal(t, []string{"1.0.0"}, vs, "a device accepts the renewed repository")

	// Published 100 days ago: the targets role (90 days) has expired, the
	// root not. A release signs a new targets version, which renews it.
	stale := repoAt(t, now.Add(-100*24*time.Hour), sign.RepositoryOptions{})
	refused(t, stale, exitExpired, "status", "--repo", stale)
	r = binOK(t, "add", "--repo", stale, "--hardware-id", "hw", "--version", "1.1.0", "--security-version", "1",
		"--key", key("ed25519-2"), "--key", onlineKeys, img)
	assert.Contains(t, r.stderr, "note: targets version 1 expired")
	binOK(t, "status", "--repo", stale)
	vs, _ = newClient(t, stale).releases("hw")
	assert.Equal(t, []string{"1.0.0", "1.1.0"}, vs)

	// Published 340 days ago, everything but the root made to last: the
	// root expires in 25 days, inside its 30-day window.
	long := 400 * 24 * time.Hour
	soon := repoAt(t, now.Add(-340*24*time.Hour), sign.RepositoryOptions{TargetsExpiry: long, SnapshotExpiry: long, TimestampExpiry: long})
	r = refused(t, soon, exitExpiresSoon, "status", "--repo", soon)
	assert.Regexp(t, `(?m)^root\s+1\s+.*\s+2[45] days\s+expires soon\s+`, r.stdout)
	binOK(t, "status", "--repo", soon, "--warn-root", "7d")
	r = binOK(t, "add", "--repo", soon, "--hardware-id", "hw", "--version", "1.1.0", "--security-version", "1",
		"--key", key("ed25519-2"), "--key", onlineKeys, img)
	assert.Contains(t, r.stdout, "added hw/1.1.0/firmware.bin")
	assert.Regexp(t, `warning: root version 1 expires in 2[45] days`, r.stderr)

	// A targets role is renewed without a release by publish --renew,
	// with the targets key only.
	r = refused(t, soon, 1, "publish", "--repo", soon, "--renew", "targets", "--key", onlineKeys)
	assert.Contains(t, r.stderr, "role targets needs 1 signatures")
	refused(t, soon, 2, "publish", "--repo", soon, "--renew", "no-such-role", "--key", key("ed25519-2"), "--key", onlineKeys)
	binOK(t, "publish", "--repo", soon, "--renew", "targets", "--targets-expiry", "30d", "--key", key("ed25519-2"), "--key", onlineKeys)
	r = bin(t, "status", "--repo", soon)
	assert.Regexp(t, `(?m)^targets\s+3\s+`+now.Add(30*24*time.Hour).UTC().Format("2006-01-02")+` `, r.stdout)
}

// Finding 4: a new hardware ID needs --new-hardware-id, required flags are
// required, and the security-version error names the newest release.
func TestBuiltHardwareIDAndFlags(t *testing.T) {
	repo, dir := builtRepo(t)
	_, next := images()
	img := writeImage(t, dir, "1.1.0.bin", next)
	keys := []string{"--key", key("ed25519-2"), "--key", onlineKeys}
	add := func(extra ...string) []string {
		return append(append([]string{"add", "--repo", repo}, extra...), append(keys, img)...)
	}
	r := refused(t, repo, 2, add("--hardware-id", "acme-gw-2r", "--version", "1.1.0", "--security-version", "5")...)
	assert.Contains(t, r.stderr, `hardware ID "acme-gw-2r" is not in the repository (did you mean "acme-gw-r2"?)`)
	assert.Contains(t, r.stderr, "--new-hardware-id")
	r = refused(t, repo, 2, add("--hardware-id", "acme-gw-r2", "--new-hardware-id", "--version", "1.1.0", "--security-version", "5")...)
	assert.Contains(t, r.stderr, "already in the repository")
	r = refused(t, repo, 2, add("--hardware-id", "acme-gw-r2", "--version", "1.1.0")...)
	assert.Contains(t, r.stderr, "--security-version is required")
	r = refused(t, repo, 2, add("--version", "1.1.0")...)
	assert.Contains(t, r.stderr, "--hardware-id, --security-version are required")

	binOK(t, add("--hardware-id", "acme-gw-r2", "--version", "1.1.0", "--security-version", "5")...)
	img2 := writeImage(t, dir, "1.2.0.bin", append(bytes.Clone(next), "1.2.0"...))
	r = refused(t, repo, 1, append(append([]string{"add", "--repo", repo, "--hardware-id", "acme-gw-r2", "--version", "1.2.0", "--security-version", "4"}, keys...), img2)...)
	assert.Contains(t, r.stderr, "security version 4 of 1.2.0 is below 5 of the earlier release 1.1.0 for acme-gw-r2")

	// A new product line, when meant.
	r = binOK(t, append(append([]string{"add", "--repo", repo, "--hardware-id", "acme-gw-r3", "--new-hardware-id", "--version", "1.0.0", "--security-version", "1"}, keys...), img2)...)
	assert.Contains(t, r.stdout, "added acme-gw-r3/1.0.0/firmware.bin")
}

// Finding 5: adding the same image with the same facts again is a no-op.
func TestBuiltAddIdempotent(t *testing.T) {
	repo, dir := builtRepo(t)
	_, next := images()
	img := writeImage(t, dir, "1.2.0.bin", next)
	args := []string{"add", "--repo", repo, "--hardware-id", "acme-gw-r2", "--version", "1.2.0", "--security-version", "5",
		"--notes", "fixes the lock", "--key", key("ed25519-2"), "--key", onlineKeys, img}
	r := binOK(t, args...)
	assert.Contains(t, r.stdout, "added acme-gw-r2/1.2.0/firmware.bin")
	assert.Contains(t, r.stdout, "added acme-gw-r2/deltas/1.0.0-1.2.0.bsdiff")

	r = refused(t, repo, 0, args...)
	assert.Equal(t, "already published: acme-gw-r2/1.2.0/firmware.bin (same image, same facts); nothing changed\n", r.stdout)
	// A script that made the first release of a hardware ID runs again.
	old, _ := images()
	r = refused(t, repo, 0, "add", "--repo", repo, "--hardware-id", "acme-gw-r2", newHW(t), "--version", "1.0.0", "--security-version", "5",
		"--key", key("ed25519-2"), "--key", onlineKeys, writeImage(t, dir, "1.0.0-again.bin", old))
	assert.Contains(t, r.stdout, "already published: acme-gw-r2/1.0.0/firmware.bin")

	// Other facts, or another image, under a published version: refused.
	other := slicesReplace(args, "fixes the lock", "fixes the lock and more")
	r = refused(t, repo, 1, other...)
	assert.Contains(t, r.stderr, "already holds this image with other release facts")
	r = refused(t, repo, 1, slicesReplace(args, img, writeImage(t, dir, "other.bin", []byte("other")))...)
	assert.Contains(t, r.stderr, "already holds another image")

	// The same for a staged release.
	img3 := writeImage(t, dir, "1.3.0.bin", append(bytes.Clone(next), '3'))
	staged := []string{"add", "--repo", repo, "--hardware-id", "acme-gw-r2", "--version", "1.3.0", "--security-version", "5", "--deltas", "0", "--stage", img3}
	binOK(t, staged...)
	r = refused(t, repo, 0, staged...)
	assert.Contains(t, r.stdout, "already staged: acme-gw-r2/1.3.0/firmware.bin")
}

func slicesReplace(args []string, old, new string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == old {
			a = new
		}
		out[i] = a
	}
	return out
}

// Finding 6: a revoked key is named with the reason before any work, and
// success is printed only after the publish.
func TestBuiltRevokedKey(t *testing.T) {
	repo, dir := builtRepo(t)
	binOK(t, "rotate", "--repo", repo, "--role", "targets", "--add-key", key("ed25519-3"),
		"--key", key("ed25519-1")+","+key("ed25519-2")+","+key("ed25519-3"), "--key", onlineKeys)
	binOK(t, "revoke", "--repo", repo, "--key-id", keyID(t, "ed25519-2")[:12],
		"--key", key("ed25519-1")+","+key("ed25519-3"), "--key", onlineKeys)
	_, next := images()
	img := writeImage(t, dir, "1.1.0.bin", next)
	r := refused(t, repo, 1, "add", "--repo", repo, "--hardware-id", "acme-gw-r2", "--version", "1.1.0", "--security-version", "5",
		"--key", key("ed25519-2"), "--key", onlineKeys, img)
	assert.Contains(t, r.stderr, "key "+keyID(t, "ed25519-2")[:12]+" ("+key("ed25519-2")+") counts for no role of this repository: not a key of targets: revoked in root version 3")
	assert.Empty(t, r.stdout, "nothing claims success")

	// A key of another repository altogether.
	r = refused(t, repo, 1, "add", "--repo", repo, "--hardware-id", "acme-gw-r2", "--version", "1.1.0", "--security-version", "5",
		"--key", key("ed25519-9"), "--key", onlineKeys, img)
	assert.Contains(t, r.stderr, "not a key of any role in root versions 1 to 3")

	// Keys that count, but not enough of them: the threshold error names
	// what each given key is, and nothing was announced before it.
	r = refused(t, repo, 1, "add", "--repo", repo, "--hardware-id", "acme-gw-r2", "--version", "1.1.0", "--security-version", "5",
		"--key", onlineKeys, img)
	assert.Contains(t, r.stderr, "role targets needs 1 signatures; signed by 0 key(s): none")
	assert.Contains(t, r.stderr, "key "+keyID(t, "ed25519-4")[:12]+" does not count for targets: it is a key of snapshot")
	assert.NotContains(t, r.stdout, "added")

	r = binOK(t, "add", "--repo", repo, "--hardware-id", "acme-gw-r2", "--version", "1.1.0", "--security-version", "5",
		"--key", key("ed25519-3"), "--key", onlineKeys, img)
	assert.Regexp(t, `(?s)^added acme-gw-r2/1\.1\.0/firmware\.bin .*\npublished: timestamp version \d+`, r.stdout)
}

// Finding 7: progress on a terminal, nothing in a script.
func TestBuiltProgress(t *testing.T) {
	repo, dir := builtRepo(t)
	_, next := images()
	img := writeImage(t, dir, "1.1.0.bin", next)
	args := []string{"add", "--repo", repo, "--hardware-id", "acme-gw-r2", "--version", "1.1.0", "--security-version", "5",
		"--key", key("ed25519-2"), "--key", onlineKeys, img}
	r := binOK(t, args...)
	assert.NotContains(t, r.stderr, "hashing")
	assert.NotContains(t, r.stderr, "diffing")
	assert.NotContains(t, r.stderr, "\r")

	// Under a pseudo-terminal (util-linux script), the same command draws
	// its progress.
	script, err := exec.LookPath("script")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("script (util-linux) is required in CI")
		}
		t.Skip("script (util-linux) not installed")
	}
	img2 := writeImage(t, dir, "1.2.0.bin", append(bytes.Clone(next), "1.2.0"...))
	args = slicesReplace(slicesReplace(args, "1.1.0", "1.2.0"), img, img2)
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = "'" + a + "'"
	}
	cmd := exec.Command(script, "-qefc", releaseBin(t)+" "+strings.Join(quoted, " "), "/dev/null")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Regexp(t, regexp.MustCompile(`hashing 1\.2\.0\.bin \[=*\s*\] +\d+%`), string(out))
	assert.Contains(t, string(out), "[1/2] diffing 1.1.0")
	assert.Contains(t, string(out), "added acme-gw-r2/1.2.0/firmware.bin")
}

// Finding 8: a usage error is the error and one line pointing to --help.
func TestBuiltUsageErrors(t *testing.T) {
	repo, _ := builtRepo(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"add", "--nope"}, "release add: usage error: flag provided but not defined: -nope\nRun \"release add --help\" for usage.\n"},
		{[]string{"init", "--repo", repo + "-2"}, "release init: usage error: --root-key is required\nRun \"release init --help\" for usage.\n"},
		{[]string{"frobnicate"}, "release: unknown command \"frobnicate\"\nRun \"release --help\" for the commands.\n"},
		{nil, "release: no command given\nRun \"release --help\" for the commands.\n"},
	} {
		r := refused(t, repo, 2, tc.args...)
		assert.Equal(t, tc.want, r.stderr, "%q", tc.args)
		assert.Empty(t, r.stdout)
	}
	r := binOK(t, "add", "--help")
	assert.Contains(t, r.stdout, "usage: release add")
	assert.Contains(t, r.stdout, "-new-hardware-id")
}
