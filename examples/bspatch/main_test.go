package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The drop-in programs, built and run as a user runs them: examples/bsdiff
// writes the patch, this program applies it; Debian's bspatch, when
// installed, applies our BSDIFF40 patch too.
func TestDropInPrograms(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two programs")
	}
	dir := t.TempDir()
	bsdiff, bspatch := filepath.Join(dir, "bsdiff"), filepath.Join(dir, "bspatch")
	for bin, pkg := range map[string]string{bsdiff: "../bsdiff", bspatch: "."} {
		out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
		require.NoError(t, err, string(out))
	}
	rng := rand.New(rand.NewSource(3))
	old := make([]byte, 300<<10)
	rng.Read(old)
	new := bytes.Clone(old)
	for i := 0; i < 100; i++ {
		new[rng.Intn(len(new))]++
	}
	new = append(new, []byte("appended section")...)
	oldF, newF := filepath.Join(dir, "old"), filepath.Join(dir, "new")
	require.NoError(t, os.WriteFile(oldF, old, 0o644))
	require.NoError(t, os.WriteFile(newF, new, 0o644))
	sum := sha256.Sum256(new)

	for _, format := range []string{"bsdiff40", "otaseal-zstd"} {
		t.Run(format, func(t *testing.T) {
			patch, out := filepath.Join(dir, format+".patch"), filepath.Join(dir, format+".out")
			runBin(t, 0, bsdiff, "-format", format, oldF, newF, patch)
			p, err := os.ReadFile(patch)
			require.NoError(t, err)
			assert.Less(t, len(p), len(new)/10)

			runBin(t, 0, bspatch, "-format", format, "-sha256", hex.EncodeToString(sum[:]), oldF, out, patch)
			got, err := os.ReadFile(out)
			require.NoError(t, err)
			assert.Equal(t, new, got)
			// Without the sync (as deltabench runs it), the same result.
			runBin(t, 0, bspatch, "-format", format, "-fsync=false", oldF, out+".nosync", patch)
			got, err = os.ReadFile(out + ".nosync")
			require.NoError(t, err)
			assert.Equal(t, new, got)

			// A damaged patch, a wrong hash or a size limit below NEW: exit 1
			// and no output file left behind.
			bad := bytes.Clone(p)
			bad[len(bad)/2] ^= 0x10
			badPatch := filepath.Join(dir, format+".bad")
			require.NoError(t, os.WriteFile(badPatch, bad, 0o644))
			for _, args := range [][]string{
				{"-format", format, oldF, out + ".1", badPatch},
				{"-format", format, "-sha256", hex.EncodeToString(make([]byte, 32)), oldF, out + ".2", patch},
				{"-format", format, "-max", "1000", oldF, out + ".3", patch},
			} {
				runBin(t, 1, bspatch, args...)
				_, err := os.Stat(args[len(args)-2])
				assert.ErrorIs(t, err, os.ErrNotExist, "%q left an output", args)
			}
			if format == "bsdiff40" {
				if system, err := exec.LookPath("bspatch"); err == nil {
					viaDebian := filepath.Join(dir, "debian.out")
					runBin(t, 0, system, oldF, viaDebian, patch)
					got, err := os.ReadFile(viaDebian)
					require.NoError(t, err)
					assert.Equal(t, new, got, "Debian's bspatch applies our patch")
				} else if os.Getenv("CI") != "" {
					t.Fatal("Debian's bspatch is required in CI")
				}
			}
		})
	}
	runBin(t, 2, bspatch, "too", "few")
	runBin(t, 2, bsdiff, "-format", "vcdiff", oldF, newF, filepath.Join(dir, "x"))
	runBin(t, 0, bspatch, "-help")
}

func runBin(t *testing.T, want int, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	out, _ := cmd.CombinedOutput()
	assert.Equal(t, want, cmd.ProcessState.ExitCode(), "%s %q: %s", filepath.Base(bin), args, out)
}
