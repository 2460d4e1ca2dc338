package delta

import (
	"bytes"
	"compress/bzip2"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// needTool returns the path of a peer program. Missing peers skip the test
// on a developer machine and fail it in CI (CI=true), where .ci/run
// installs them.
func needTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not on PATH: CI must install it (Debian package bsdiff/bzip2)", name)
		}
		t.Skipf("%s not on PATH; install Debian's bsdiff and bzip2 to run interop tests", name)
	}
	return path
}

// interopPairs are image pairs with the shapes real updates have.
func interopPairs() []struct {
	name     string
	old, new []byte
} {
	rng := newRand(11)
	base := structured(rng, 200<<10)
	rnd := randomBytes(rng, 100<<10)
	edited := bytes.Clone(base)
	for i := 0; i+8 <= len(edited); i += 4096 {
		edited[i+7] ^= 3
	}
	edited = append(append(edited[:50000:50000], randomBytes(rng, 5000)...), edited[60000:]...)
	return []struct {
		name     string
		old, new []byte
	}{
		{"edited structured", base, edited},
		{"random with insert", rnd, append(append(bytes.Clone(rnd[:40000]), "INSERTED"...), rnd[40000:]...)},
		{"empty old", nil, rnd[:3000]},
		{"empty new", rnd[:3000], nil},
		{"identical", base, base},
	}
}

func TestInteropDebianBspatchAppliesOurs(t *testing.T) {
	bspatch := needTool(t, "bspatch")
	for _, p := range interopPairs() {
		t.Run(p.name, func(t *testing.T) {
			dir := t.TempDir()
			oldPath, outPath, patchPath := filepath.Join(dir, "old"), filepath.Join(dir, "out"), filepath.Join(dir, "patch")
			require.NoError(t, os.WriteFile(oldPath, p.old, 0o644))
			require.NoError(t, os.WriteFile(patchPath, encode(t, p.old, p.new, FormatBSDIFF40), 0o644))
			out, err := exec.Command(bspatch, oldPath, outPath, patchPath).CombinedOutput()
			require.NoError(t, err, "bspatch: %s", out)
			got, err := os.ReadFile(outPath)
			require.NoError(t, err)
			assert.True(t, bytes.Equal(p.new, got), "bspatch output differs from new (%d vs %d bytes)", len(got), len(p.new))
		})
	}
}

func TestInteropWeApplyDebianBsdiff(t *testing.T) {
	bsdiff := needTool(t, "bsdiff")
	for _, p := range interopPairs() {
		if len(p.old) == 0 || len(p.new) == 0 {
			// Debian's bsdiff 4.3 mmaps its inputs and fails on empty
			// files; there is no patch of theirs to apply.
			continue
		}
		t.Run(p.name, func(t *testing.T) {
			dir := t.TempDir()
			oldPath, newPath, patchPath := filepath.Join(dir, "old"), filepath.Join(dir, "new"), filepath.Join(dir, "patch")
			require.NoError(t, os.WriteFile(oldPath, p.old, 0o644))
			require.NoError(t, os.WriteFile(newPath, p.new, 0o644))
			out, err := exec.Command(bsdiff, oldPath, newPath, patchPath).CombinedOutput()
			require.NoError(t, err, "bsdiff: %s", out)
			patch, err := os.ReadFile(patchPath)
			require.NoError(t, err)
			got, err := apply(p.old, patch, FormatBSDIFF40, exactOpts(p.new))
			require.NoError(t, err)
			assert.True(t, bytes.Equal(p.new, got), "output differs from new")
		})
	}
}

// TestInteropBzip2Streams checks each of our three bzip2 streams with the
// reference implementation, bzip2 -t, and that it decodes to what the
// standard library reads.
func TestInteropBzip2Streams(t *testing.T) {
	bz := needTool(t, "bzip2")
	p := interopPairs()[0]
	patch := encode(t, p.old, p.new, FormatBSDIFF40)
	ctrlLen, err := getOff(patch[8:])
	require.NoError(t, err)
	diffLen, err := getOff(patch[16:])
	require.NoError(t, err)
	streams := map[string][]byte{
		"ctrl":  patch[32 : 32+ctrlLen],
		"diff":  patch[32+ctrlLen : 32+ctrlLen+diffLen],
		"extra": patch[32+ctrlLen+diffLen:],
	}
	dir := t.TempDir()
	for name, s := range streams {
		path := filepath.Join(dir, name+".bz2")
		require.NoError(t, os.WriteFile(path, s, 0o644))
		out, err := exec.Command(bz, "-t", path).CombinedOutput()
		assert.NoError(t, err, "bzip2 -t %s: %s", name, out)
		ref, err := exec.Command(bz, "-dc", path).Output()
		require.NoError(t, err)
		got, err := io.ReadAll(bzip2.NewReader(bytes.NewReader(s)))
		require.NoError(t, err)
		assert.Equal(t, ref, got, "%s: libbz2 and compress/bzip2 disagree", name)
	}
}

// TestInteropStreamSmallerThanDebianBsdiff guards the streaming format's
// reason to exist on a program whose addresses moved: its patch is smaller
// than the one Debian's bsdiff writes for the same pair. The real pairs
// (deltabench) show the same on x86-64 and ARM builds.
func TestInteropStreamSmallerThanDebianBsdiff(t *testing.T) {
	bsdiff := needTool(t, "bsdiff")
	old, new := relocatedPair(newRand(17), 30000)
	dir := t.TempDir()
	oldPath, newPath, patchPath := filepath.Join(dir, "old"), filepath.Join(dir, "new"), filepath.Join(dir, "patch")
	require.NoError(t, os.WriteFile(oldPath, old, 0o644))
	require.NoError(t, os.WriteFile(newPath, new, 0o644))
	out, err := exec.Command(bsdiff, oldPath, newPath, patchPath).CombinedOutput()
	require.NoError(t, err, "bsdiff: %s", out)
	theirs, err := os.ReadFile(patchPath)
	require.NoError(t, err)
	ours := encode(t, old, new, FormatStream)
	t.Logf("%d-byte image: stream patch %d bytes, Debian bsdiff %d", len(new), len(ours), len(theirs))
	assert.Less(t, len(ours), len(theirs))
}
