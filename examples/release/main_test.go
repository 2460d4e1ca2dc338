package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/delta"
	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
	"github.com/otaseal/otaseal/verify"
)

func key(name string) string { return "../../sign/testdata/keys/" + name + ".pem" }

func keyID(t *testing.T, name string) string {
	t.Helper()
	s, err := sign.LoadPEMSignerFile(context.Background(), key(name), nil)
	require.NoError(t, err)
	return s.KeyID()
}

type result struct {
	code           int
	stdout, stderr string
}

func cli(t *testing.T, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

// ok runs the command and requires exit status 0.
func ok(t *testing.T, args ...string) result {
	t.Helper()
	r := cli(t, args...)
	require.Equal(t, 0, r.code, "release %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.stdout, r.stderr)
	return r
}

// images returns a 64 KiB image and its successor with scattered edits
// and a block of new code, like a rebuilt firmware.
func images() (old, next []byte) {
	rng := rand.New(rand.NewSource(8))
	old = make([]byte, 64<<10)
	for i := range old {
		old[i] = byte(rng.Intn(64) * 3)
	}
	next = bytes.Clone(old)
	for range 100 {
		next[rng.Intn(len(next))] ^= 0x55
	}
	code := make([]byte, 2<<10)
	rng.Read(code)
	at := len(next) / 3
	next = append(next[:at:at], append(code, next[at:]...)...)
	return old, next
}

func writeImage(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, data, 0o600))
	return p
}

// client is a device-side verify.Client on the repository served over HTTP.
type client struct {
	*verify.Client
	t *testing.T
}

func newClient(t *testing.T, repoDir string) *client {
	t.Helper()
	ctx := context.Background()
	srv := httptest.NewServer(http.FileServer(http.Dir(repoDir)))
	t.Cleanup(srv.Close)
	rootJSON, err := os.ReadFile(filepath.Join(repoDir, "metadata", "1.root.json"))
	require.NoError(t, err)
	store := verify.DirTrustStore{Dir: t.TempDir()}
	require.NoError(t, verify.Bootstrap(ctx, store, rootJSON, manifest.Limits{}))
	c, err := verify.New(ctx, verify.Config{MetadataURL: srv.URL + "/metadata/", TargetsURL: srv.URL + "/targets/",
		Store: store, Clock: verify.SystemClock{}})
	require.NoError(t, err)
	return &client{c, t}
}

// releases refreshes and returns the versions the client sees for hw.
func (c *client) releases(hw string) ([]string, *manifest.Targets) {
	c.t.Helper()
	require.NoError(c.t, c.Refresh(context.Background()))
	md, err := c.Targets()
	require.NoError(c.t, err)
	rels, err := manifest.FirmwareFor(&md.Signed, hw)
	require.NoError(c.t, err)
	var vs []string
	for _, r := range rels {
		vs = append(vs, r.Firmware.Version.String())
	}
	return vs, &md.Signed
}

var onlineKeys = key("ed25519-4") + "," + key("ed25519-5")

// initRepo makes a repository with a 2-of-3 targets role (keys 2, 3, 6).
func initRepo(t *testing.T) string {
	repo := filepath.Join(t.TempDir(), "repo")
	r := ok(t, "init", "--repo", repo, "--root-key", key("ed25519-1"),
		"--targets-key", key("ed25519-2")+","+key("ed25519-3"), "--targets-key", key("ed25519-6"), "--targets-threshold", "2",
		"--snapshot-key", key("ed25519-4"), "--timestamp-key", key("ed25519-5"))
	assert.Contains(t, r.stdout, "1.root.json")
	return repo
}

func TestReleaseWorkflow(t *testing.T) {
	ctx := context.Background()
	repo := initRepo(t)
	dir := t.TempDir()
	old, next := images()
	targetsKeys := key("ed25519-2") + "," + key("ed25519-3")

	ok(t, "add", "--repo", repo, "--hardware-id", "acme-gw-r2", "--new-hardware-id", "--version", "1.0.0", "--security-version", "1",
		"--key", targetsKeys, "--key", onlineKeys, writeImage(t, dir, "1.0.0.bin", old))
	r := ok(t, "add", "--repo", repo, "--hardware-id", "acme-gw-r2", "--version", "1.1.0", "--security-version", "2",
		"--severity", "security", "--advisory", "CVE-2026-0001", "--advisory", "CVE-2026-0002", "--notes", "fixes remote unlock bypass",
		"--deltas", "3", "--delta-formats", "bsdiff40,otaseal-zstd",
		"--key", targetsKeys, "--key", onlineKeys, writeImage(t, dir, "1.1.0.bin", next))
	assert.Contains(t, r.stdout, "added acme-gw-r2/deltas/1.0.0-1.1.0.bsdiff")
	assert.Contains(t, r.stdout, "added acme-gw-r2/deltas/1.0.0-1.1.0.otz")
	assert.NotContains(t, r.stderr, "diffing", "no progress output off a terminal")

	// A device reads the repository and finds both deltas from its image.
	c := newClient(t, repo)
	vs, targets := c.releases("acme-gw-r2")
	assert.Equal(t, []string{"1.0.0", "1.1.0"}, vs)
	oldSum := sha256.Sum256(old)
	patches, err := manifest.DeltasTo(targets, "acme-gw-r2/1.1.0/firmware.bin", oldSum[:])
	require.NoError(t, err)
	var formats []manifest.DeltaFormat
	for _, p := range patches {
		formats = append(formats, p.Delta.Format)
		assert.Less(t, p.File.Length, int64(len(next)))
	}
	assert.ElementsMatch(t, []manifest.DeltaFormat{manifest.FormatBSDIFF40, manifest.FormatZstdStream}, formats)
	fw, err := manifest.FirmwareOf(targets.Targets["acme-gw-r2/1.1.0/firmware.bin"])
	require.NoError(t, err)
	assert.Equal(t, []string{"CVE-2026-0001", "CVE-2026-0002"}, fw.Advisories)
	assert.Equal(t, manifest.SeveritySecurity, fw.Severity)

	// The streaming delta, fetched and verified by the client, rebuilds 1.1.0.
	stream := targets.Targets["acme-gw-r2/deltas/1.0.0-1.1.0.otz"]
	require.NotNil(t, stream)
	var patch, rebuilt bytes.Buffer
	require.NoError(t, c.Download(ctx, "acme-gw-r2/deltas/1.0.0-1.1.0.otz", stream, &patch))
	nextSum := sha256.Sum256(next)
	_, err = delta.ApplyStream(&rebuilt, bytes.NewReader(old), int64(len(old)), &patch,
		&delta.ApplyOptions{MaxOutput: int64(len(next)), SHA256: nextSum[:]})
	require.NoError(t, err)
	assert.Equal(t, next, rebuilt.Bytes())

	// inspect prints the roles, releases and deltas.
	r = ok(t, "inspect", "--repo", repo)
	for _, row := range []string{
		`(?m)^root\s+1\s+\d{4}-\d\d-\d\d \d\d:\d\d UTC\s+1 of 1\s+` + keyID(t, "ed25519-1")[:12] + ` \(ed25519\)`,
		`(?m)^targets\s+3\s+.*\s+2 of 3\s+\w{12} \(ed25519\), \w{12} \(ed25519\), \w{12} \(ed25519\)$`,
		`(?m)^snapshot\s+3\s+`,
		`(?m)^timestamp\s+3\s+`,
		`(?m)^acme-gw-r2\s+1\.0\.0\s+1\s+-\s+64\.0 KiB\s+-\s+published\s+-$`,
		`(?m)^acme-gw-r2\s+1\.1\.0\s+2\s+security\s+66\.0 KiB\s+CVE-2026-0001, CVE-2026-0002\s+published\s+fixes remote unlock bypass$`,
		`(?m)^acme-gw-r2/deltas/1\.0\.0-1\.1\.0\.bsdiff\s+1\.0\.0\s+1\.1\.0\s+bsdiff40\s+[\d.]+ (B|KiB)\s+66\.0 KiB\s+\d+\.\d%\s+published$`,
		`(?m)^acme-gw-r2/deltas/1\.0\.0-1\.1\.0\.otz\s+1\.0\.0\s+1\.1\.0\s+otaseal-zstd\s+`,
	} {
		assert.Regexp(t, regexp.MustCompile(row), r.stdout)
	}
	t.Log("\n" + r.stdout)

	// k-of-n: stage 1.2.0, export, sign on "other machines", merge.
	newer := append(bytes.Clone(next), "1.2.0 tail"...)
	ok(t, "add", "--repo", repo, "--hardware-id", "acme-gw-r2", "--version", "1.2.0", "--security-version", "2",
		"--deltas", "1", "--delta-formats", "otaseal-zstd", "--stage", writeImage(t, dir, "1.2.0.bin", newer))
	r = ok(t, "inspect", "--repo", repo)
	assert.Regexp(t, `(?m)^acme-gw-r2\s+1\.2\.0\s+.*staged`, r.stdout)
	assert.Contains(t, r.stdout, "staged, not published: 2 target(s)")
	doc := filepath.Join(dir, "targets-4.json")
	r = ok(t, "export", "--repo", repo, "--role", "targets", "--out", doc)
	assert.Contains(t, r.stdout, "needs 2 of 3 signatures")
	sig := func(name string) string {
		out := filepath.Join(dir, name+".sig")
		ok(t, "sign", "--in", doc, "--role", "targets", "--key", key(name), "--out", out)
		return out
	}
	// A snapshot key has no business signing targets: nothing is merged.
	r = cli(t, "merge", "--repo", repo, "--role", "targets", "--in", doc, sig("ed25519-4"))
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "nothing merged")

	r = ok(t, "merge", "--repo", repo, "--role", "targets", "--in", doc, sig("ed25519-2"))
	assert.Contains(t, r.stdout, "targets: 1 of 2 required signatures, threshold not met")
	assert.Contains(t, r.stdout, "signed by: "+keyID(t, "ed25519-2")[:12])
	vs, _ = c.releases("acme-gw-r2")
	assert.Equal(t, []string{"1.0.0", "1.1.0"}, vs, "nothing is published below the threshold")

	r = ok(t, "merge", "--repo", repo, "--role", "targets", "--in", doc, "--key", onlineKeys, sig("ed25519-6"))
	assert.Contains(t, r.stdout, "targets: 2 of 2 required signatures, threshold met")
	assert.Contains(t, r.stdout, "published")
	vs, targets = c.releases("acme-gw-r2")
	assert.Equal(t, []string{"1.0.0", "1.1.0", "1.2.0"}, vs)
	assert.Contains(t, targets.Targets, "acme-gw-r2/deltas/1.1.0-1.2.0.otz")
	assert.NotContains(t, targets.Targets, "acme-gw-r2/deltas/1.0.0-1.2.0.otz", "--deltas 1 diffs the newest release only")
	_, err = os.Stat(repo + ".staged")
	assert.ErrorIs(t, err, os.ErrNotExist, "published changes are no longer staged")

	// Rotate the root key; the client follows the rotation and still updates.
	r = ok(t, "rotate", "--repo", repo, "--role", "root", "--add-key", key("ed25519-7"), "--remove-key", keyID(t, "ed25519-1")[:12],
		"--key", key("ed25519-1")+","+key("ed25519-7"), "--key", onlineKeys)
	assert.Contains(t, r.stdout, "root version 2 published")
	ok(t, "add", "--repo", repo, "--hardware-id", "acme-gw-r2", "--version", "1.3.0", "--security-version", "3",
		"--deltas", "0", "--key", targetsKeys, "--key", onlineKeys, writeImage(t, dir, "1.3.0.bin", append(bytes.Clone(newer), '!')))
	vs, _ = c.releases("acme-gw-r2")
	assert.Equal(t, []string{"1.0.0", "1.1.0", "1.2.0", "1.3.0"}, vs)

	// The old root key can no longer rotate the root.
	r = cli(t, "rotate", "--repo", repo, "--role", "timestamp", "--add-key", key("ed25519-8"), "--key", key("ed25519-1"), "--key", onlineKeys)
	assert.Equal(t, 1, r.code, r.stderr)

	// Revoke targets key 3: 2 of the 2 remaining keys then sign targets.
	r = ok(t, "revoke", "--repo", repo, "--key-id", keyID(t, "ed25519-3")[:12],
		"--key", key("ed25519-7")+","+key("ed25519-2")+","+key("ed25519-6"), "--key", onlineKeys)
	assert.Contains(t, r.stdout, "root version 3 published")
	r = ok(t, "inspect", "--repo", repo)
	assert.Regexp(t, `(?m)^root\s+3\s+.*1 of 1\s+`+keyID(t, "ed25519-7")[:12], r.stdout)
	assert.Regexp(t, `(?m)^targets\s+\d+\s+.*2 of 2\s+`, r.stdout)
	assert.NotContains(t, r.stdout, keyID(t, "ed25519-3")[:12])
	vs, _ = c.releases("acme-gw-r2")
	assert.Len(t, vs, 4, "the client accepts the repository after the revocation")

	// The revoked key's signature is refused in the next ceremony.
	ok(t, "add", "--repo", repo, "--hardware-id", "acme-gw-r2", "--version", "1.4.0", "--security-version", "3",
		"--deltas", "0", "--stage", writeImage(t, dir, "1.4.0.bin", append(bytes.Clone(newer), "!!"...)))
	doc = filepath.Join(dir, "targets-next.json")
	ok(t, "export", "--repo", repo, "--out", doc)
	r = cli(t, "merge", "--repo", repo, "--in", doc, sig("ed25519-3"))
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "revoked")
}

// A root rotation signed k-of-n: the new root is exported and each
// holder signs it away from the repository.
func TestRootCeremony(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	dir := t.TempDir()
	ok(t, "init", "--repo", repo, "--root-key", key("ed25519-1")+","+key("ed25519-2")+","+key("ed25519-3"), "--root-threshold", "2",
		"--targets-key", key("p256"), "--snapshot-key", key("ed25519-4"), "--timestamp-key", key("ed25519-5"))
	c := newClient(t, repo)
	c.releases("x")

	doc := filepath.Join(dir, "root-2.json")
	r := ok(t, "revoke", "--repo", repo, "--key-id", keyID(t, "ed25519-3")[:8], "--export", doc)
	assert.Contains(t, r.stdout, "root: revoking key")
	sig := func(name string) string {
		out := filepath.Join(dir, name+".sig")
		ok(t, "sign", "--in", doc, "--role", "root", "--key", key(name), "--out", out)
		return out
	}
	r = ok(t, "merge", "--repo", repo, "--role", "root", "--in", doc, sig("ed25519-1"))
	assert.Contains(t, r.stdout, "threshold not met")
	r = ok(t, "merge", "--repo", repo, "--role", "root", "--in", doc, sig("ed25519-2"))
	assert.Contains(t, r.stdout, "root: 2 of 2 required signatures, threshold met")
	assert.Contains(t, r.stdout, "current root keys: 2 of 2")
	r = ok(t, "publish", "--repo", repo, "--key", onlineKeys)
	assert.Contains(t, r.stdout, "published")
	c.releases("x")
	r = ok(t, "inspect", "--repo", repo)
	assert.Regexp(t, `(?m)^root\s+2\s+.*2 of 2\s+`, r.stdout)
}

func TestUsage(t *testing.T) {
	repo := initRepo(t)
	img := writeImage(t, t.TempDir(), "img", []byte("image"))
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "no command given"},
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"--help"}, 0, "commands:"},
		{[]string{"add", "--help"}, 0, "usage: release add"},
		{[]string{"add", "--nope"}, 2, "flag provided but not defined"},
		{[]string{"add", "--repo", repo, "--hardware-id", "x", "--new-hardware-id", "--security-version", "1", "--version", "1.0.0", "--stage"}, 2, "IMAGE"},
		{[]string{"add", "--repo", repo, "--hardware-id", "x", "--new-hardware-id", "--security-version", "1", "--version", "v1", "--stage", img}, 2, "malformed"},
		{[]string{"add", "--repo", repo, "--hardware-id", "x", "--new-hardware-id", "--security-version", "1", "--version", "1.0.0", "--severity", "meh", "--stage", img}, 2, "severity"},
		{[]string{"add", "--repo", repo, "--hardware-id", "x", "--new-hardware-id", "--security-version", "1", "--version", "1.0.0", "--key", onlineKeys, img}, 1, "threshold"},
		{[]string{"init", "--repo", repo}, 2, "--root-key is required"},
		{[]string{"sign", "--in", "x"}, 2, "required"},
		{[]string{"rotate", "--repo", repo, "--role", "boss"}, 2, "--role must be one of"},
		{[]string{"revoke", "--repo", repo, "--key-id", "abc"}, 2, "at least 8"},
		{[]string{"inspect", "--repo", filepath.Join(t.TempDir(), "none")}, 1, "not a repository"},
		{[]string{"add", "--repo", repo, "--hardware-id", "x", "--new-hardware-id", "--security-version", "1", "--version", "1.0.0", "--key", "pkcs11:module=/x;token=t", img}, 2, "needs module, token, key and pin-env"},
	} {
		r := cli(t, tc.args...)
		assert.Equal(t, tc.code, r.code, "%q: %s", tc.args, r.stderr)
		assert.Contains(t, r.stdout+r.stderr, tc.want, "%q", tc.args)
	}
}

// A security version below an earlier release's is refused, and a delta
// that would not be smaller than the image is skipped.
func TestAddChecks(t *testing.T) {
	repo := initRepo(t)
	dir := t.TempDir()
	keys := []string{"--key", key("ed25519-2") + "," + key("ed25519-6"), "--key", onlineKeys}
	rng := rand.New(rand.NewSource(1))
	a, b := make([]byte, 64), make([]byte, 64)
	rng.Read(a)
	rng.Read(b)
	ok(t, append([]string{"add", "--repo", repo, "--hardware-id", "tiny", "--new-hardware-id", "--version", "1.0.0", "--security-version", "5"}, append(keys, writeImage(t, dir, "a", a))...)...)
	r := cli(t, append([]string{"add", "--repo", repo, "--hardware-id", "tiny", "--version", "1.1.0", "--security-version", "4"}, append(keys, writeImage(t, dir, "b", b))...)...)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "security version 4 of 1.1.0 is below 5")
	r = ok(t, append([]string{"add", "--repo", repo, "--hardware-id", "tiny", "--version", "1.1.0", "--security-version", "5"}, append(keys, writeImage(t, dir, "b", b))...)...)
	assert.Contains(t, r.stderr, "skipped")
	assert.NotContains(t, r.stdout, "deltas/")
}

// Offline holders hand over public keys only; init lists them and the
// holders sign later ceremonies with their private keys.
func TestInitWithPublicKeys(t *testing.T) {
	dir := t.TempDir()
	s, err := sign.LoadPEMSignerFile(context.Background(), key("ed25519-6"), nil)
	require.NoError(t, err)
	pub, err := s.PublicKey()
	require.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(pub)
	require.NoError(t, err)
	pubFile := writeImage(t, dir, "holder.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))

	repo := filepath.Join(dir, "repo")
	// The first publish needs the targets threshold from private keys.
	r := cli(t, "init", "--repo", repo, "--root-key", key("ed25519-1"), "--targets-key", key("ed25519-2")+","+pubFile, "--targets-threshold", "2",
		"--snapshot-key", key("ed25519-4"), "--timestamp-key", key("ed25519-5"))
	assert.Equal(t, 1, r.code, r.stderr)
	assert.Contains(t, r.stderr, "threshold")

	ok(t, "init", "--repo", repo, "--root-key", key("ed25519-1"), "--targets-key", key("ed25519-2")+","+pubFile,
		"--snapshot-key", key("ed25519-4"), "--timestamp-key", key("ed25519-5"))
	r = ok(t, "inspect", "--repo", repo)
	assert.Contains(t, r.stdout, s.KeyID()[:12])
	ok(t, "add", "--repo", repo, "--hardware-id", "hw", "--new-hardware-id", "--version", "1.0.0", "--security-version", "0", "--stage", writeImage(t, dir, "fw", []byte("fw")))
	doc := filepath.Join(dir, "t.json")
	ok(t, "export", "--repo", repo, "--out", doc)
	ok(t, "sign", "--in", doc, "--role", "targets", "--key", key("ed25519-6"), "--out", filepath.Join(dir, "6.sig"))
	r = ok(t, "merge", "--repo", repo, "--in", doc, filepath.Join(dir, "6.sig"))
	assert.Contains(t, r.stdout, "threshold met")
	ok(t, "publish", "--repo", repo, "--key", onlineKeys)
	vs, _ := newClient(t, repo).releases("hw")
	assert.Equal(t, []string{"1.0.0"}, vs)
}

func TestProgress(t *testing.T) {
	defer func(d time.Duration) { progressEvery = d }(progressEvery)
	progressEvery = time.Millisecond
	var out bytes.Buffer
	err := withProgress(&env{stdout: io.Discard, stderr: &out, tty: true}, "diffing", func() error {
		time.Sleep(20 * time.Millisecond)
		return nil
	})
	require.NoError(t, err)
	assert.Contains(t, out.String(), "\r\033[Kdiffing ... 0s")
	assert.True(t, strings.HasSuffix(out.String(), "\r\033[K"), "the line is cleared at the end")

	out.Reset()
	p := startProgress(&env{stdout: io.Discard, stderr: &out, tty: true}, "hashing fw.bin", 4<<20)
	_, err = io.Copy(io.Discard, p.reader(bytes.NewReader(make([]byte, 4<<20))))
	require.NoError(t, err)
	time.Sleep(10 * time.Millisecond)
	p.end()
	assert.Contains(t, out.String(), "hashing fw.bin [==============================] 100% 4.0 MiB / 4.0 MiB")

	// Off a terminal: nothing at all.
	out.Reset()
	require.NoError(t, withProgress(&env{stdout: io.Discard, stderr: &out}, "diffing", func() error {
		time.Sleep(10 * time.Millisecond)
		return nil
	}))
	assert.Empty(t, out.String())
}

// Replacing the targets key with every holder offline: the root rotation
// and the re-signed targets role are two ceremonies, published together.
func TestRotateTargetsKeyOffline(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	ok(t, "init", "--repo", repo, "--root-key", key("ed25519-1"), "--targets-key", key("p256"),
		"--snapshot-key", key("ed25519-4"), "--timestamp-key", key("ed25519-5"))
	ok(t, "add", "--repo", repo, "--hardware-id", "hw", "--new-hardware-id", "--version", "1.0.0", "--security-version", "1",
		"--key", key("p256"), "--key", onlineKeys, writeImage(t, dir, "fw", []byte("firmware 1.0.0")))
	c := newClient(t, repo)
	c.releases("hw")

	rootDoc := filepath.Join(dir, "root.json")
	ok(t, "rotate", "--repo", repo, "--role", "targets", "--add-key", key("ed25519-8"), "--remove-key", keyID(t, "p256"), "--export", rootDoc)
	ok(t, "sign", "--in", rootDoc, "--role", "root", "--key", key("ed25519-1"), "--out", filepath.Join(dir, "root.sig"))
	r := ok(t, "merge", "--repo", repo, "--role", "root", "--in", rootDoc, filepath.Join(dir, "root.sig"))
	assert.Contains(t, r.stdout, "release export --role targets")

	targetsDoc := filepath.Join(dir, "targets.json")
	ok(t, "export", "--repo", repo, "--role", "targets", "--out", targetsDoc)
	// The retired key can no longer sign targets.
	ok(t, "sign", "--in", targetsDoc, "--role", "targets", "--key", key("p256"), "--out", filepath.Join(dir, "old.sig"))
	r = cli(t, "merge", "--repo", repo, "--in", targetsDoc, filepath.Join(dir, "old.sig"))
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "revoked")
	ok(t, "sign", "--in", targetsDoc, "--role", "targets", "--key", key("ed25519-8"), "--out", filepath.Join(dir, "new.sig"))
	r = ok(t, "merge", "--repo", repo, "--in", targetsDoc, "--key", onlineKeys, filepath.Join(dir, "new.sig"))
	assert.Contains(t, r.stdout, "published")

	vs, _ := c.releases("hw")
	assert.Equal(t, []string{"1.0.0"}, vs)
	r = ok(t, "inspect", "--repo", repo)
	assert.Regexp(t, `(?m)^root\s+2\s+`, r.stdout)
	assert.Regexp(t, `(?m)^targets\s+3\s+.*1 of 1\s+`+keyID(t, "ed25519-8")[:12], r.stdout)
}

// Replacing the online timestamp key: the old and new keys both sign the
// bridging publish, and the client follows.
func TestRotateTimestampKey(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	ok(t, "init", "--repo", repo, "--root-key", key("ed25519-1"), "--targets-key", key("ed25519-2"),
		"--snapshot-key", key("ed25519-4"), "--timestamp-key", key("ed25519-5"))
	c := newClient(t, repo)
	c.releases("hw")
	r := ok(t, "rotate", "--repo", repo, "--role", "timestamp", "--add-key", key("ed25519-9"), "--remove-key", keyID(t, "ed25519-5")[:16],
		"--key", key("ed25519-1"), "--key", onlineKeys+","+key("ed25519-9"))
	assert.Contains(t, r.stdout, "root version 2 published")
	ok(t, "add", "--repo", repo, "--hardware-id", "hw", "--new-hardware-id", "--version", "1.0.0", "--security-version", "1",
		"--key", key("ed25519-2")+","+key("ed25519-4")+","+key("ed25519-9"), writeImage(t, dir, "fw", []byte("fw")))
	vs, _ := c.releases("hw")
	assert.Equal(t, []string{"1.0.0"}, vs)
	// The retired timestamp key alone can no longer publish.
	r = cli(t, "publish", "--repo", repo, "--key", onlineKeys)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "timestamp")
}

// Encrypted PEM keys take their passphrase from the environment only.
func TestEncryptedKey(t *testing.T) {
	t.Setenv("RELEASE_TEST_PASS", "test-passphrase")
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	enc := key("p256-enc-pkcs8")
	r := cli(t, "init", "--repo", repo, "--root-key", key("ed25519-1"), "--targets-key", enc,
		"--snapshot-key", key("ed25519-4"), "--timestamp-key", key("ed25519-5"))
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "passphrase")
	ok(t, "init", "--repo", repo, "--passphrase-env", "RELEASE_TEST_PASS", "--root-key", key("ed25519-1"), "--targets-key", enc,
		"--snapshot-key", key("ed25519-4"), "--timestamp-key", key("ed25519-5"))
	ok(t, "add", "--repo", repo, "--passphrase-env", "RELEASE_TEST_PASS", "--hardware-id", "hw", "--new-hardware-id", "--version", "1.0.0", "--security-version", "1",
		"--key", enc, "--key", onlineKeys, writeImage(t, dir, "fw", []byte("fw")))
	vs, _ := newClient(t, repo).releases("hw")
	assert.Equal(t, []string{"1.0.0"}, vs)
}

// Staged changes travel: the repository and its .staged file copied to
// another machine export the same document there, and a merge there
// publishes the release.
func TestStagedChangesCarried(t *testing.T) {
	repo := initRepo(t)
	dir := t.TempDir()
	ok(t, "add", "--repo", repo, "--hardware-id", "hw", "--new-hardware-id", "--version", "1.0.0", "--security-version", "1", "--stage", writeImage(t, dir, "fw", []byte("fw 1.0.0")))
	here := filepath.Join(dir, "here.json")
	ok(t, "export", "--repo", repo, "--out", here)

	elsewhere := filepath.Join(t.TempDir(), "repo")
	require.NoError(t, os.CopyFS(elsewhere, os.DirFS(repo)))
	staged, err := os.ReadFile(repo + ".staged")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(elsewhere+".staged", staged, 0o600))
	there := filepath.Join(dir, "there.json")
	ok(t, "export", "--repo", elsewhere, "--out", there)
	a, err := os.ReadFile(here)
	require.NoError(t, err)
	b, err := os.ReadFile(there)
	require.NoError(t, err)
	assert.Equal(t, a, b, "both machines export the same document")

	for _, k := range []string{"ed25519-2", "ed25519-6"} {
		ok(t, "sign", "--in", here, "--role", "targets", "--key", key(k), "--out", filepath.Join(dir, k+".sig"))
	}
	ok(t, "merge", "--repo", elsewhere, "--in", there, "--key", onlineKeys, filepath.Join(dir, "ed25519-2.sig"), filepath.Join(dir, "ed25519-6.sig"))
	vs, _ := newClient(t, elsewhere).releases("hw")
	assert.Equal(t, []string{"1.0.0"}, vs)

	// Carried back after that publish, the same staged changes are stale.
	_, err = os.Stat(elsewhere + ".staged")
	require.ErrorIs(t, err, os.ErrNotExist, "published changes are no longer staged")
	require.NoError(t, os.WriteFile(elsewhere+".staged", staged, 0o600))
	r := cli(t, "inspect", "--repo", elsewhere)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "staged against")
}
