package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otaseal/otaseal/delta"
	"github.com/otaseal/otaseal/verify"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// useBSDIFF40 replaces the server's streaming delta by a BSDIFF40 one, the
// format that needs a scratch file on the device.
func (s *testServer) useBSDIFF40(t *testing.T) {
	d, err := delta.Diff(s.images["1.0.0"], s.images["1.1.0"])
	require.NoError(t, err)
	var patch bytes.Buffer
	require.NoError(t, d.Encode(&patch, delta.FormatBSDIFF40))
	require.NoError(t, s.repo.RemoveTarget(hw+"/deltas/1.0.0-1.1.0.otz"))
	require.NoError(t, s.repo.AddDelta(context.Background(), hw+"/deltas/1.0.0-1.1.0.bsdiff",
		hw+"/1.0.0/firmware.bin", hw+"/1.1.0/firmware.bin", &patch))
	s.publish(t, "targets", "snapshot", "timestamp")
}

// scratchLeft lists the BSDIFF40 scratch files in dir.
func scratchLeft(t *testing.T, dir string) []string {
	left, err := filepath.Glob(filepath.Join(dir, ".otaseal-patch-[0-9]*"))
	require.NoError(t, err)
	return left
}

// TestKilledBSDIFF40InstallLeavesNoScratch kills the built agent while its
// BSDIFF40 patch downloads (the server holds the patch back until the
// kill), several times, as a power cut would. The scratch files that
// earlier kills left (planted here) are gone once an install starts, no
// kill leaves a new one, files that only look alike stay, and a last clean
// run installs the release.
func TestKilledBSDIFF40InstallLeavesNoScratch(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the agent")
	}
	bin := filepath.Join(t.TempDir(), "deviceagent")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, string(out))

	s := newServer(t, 1<<20)
	s.useBSDIFF40(t)
	patchAsked := make(chan struct{}, 1)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	s.setMITM(func(path string, b []byte) []byte {
		if strings.HasSuffix(path, ".bsdiff") {
			select {
			case patchAsked <- struct{}{}:
			default:
			}
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
		}
		return b
	})

	d := newDevice(t, s)
	scratch := filepath.Dir(d.slotB) // where the agent keeps its scratch files
	for _, name := range []string{".otaseal-patch-1", ".otaseal-patch-2829104857"} {
		require.NoError(t, os.WriteFile(filepath.Join(scratch, name), bytes.Repeat([]byte("p"), 4096), 0o600))
	}
	alike := filepath.Join(scratch, ".otaseal-patch-notes")
	require.NoError(t, os.WriteFile(alike, []byte("mine"), 0o600))

	for kill := 0; kill < 3; kill++ {
		cmd := exec.Command(bin, d.args(s)...)
		require.NoError(t, cmd.Start())
		select {
		case <-patchAsked:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("kill %d: the agent never asked for the patch", kill)
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		assert.Empty(t, scratchLeft(t, scratch), "kill %d", kill)
	}

	s.setMITM(nil)
	out, err = exec.Command(bin, d.args(s)...).CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Equal(t, "1.1.0", d.status(t).Installed.Version.String())
	assert.Empty(t, scratchLeft(t, scratch))
	got, err := os.ReadFile(alike)
	require.NoError(t, err)
	assert.Equal(t, "mine", string(got), "a file that only looks like scratch is not ours")
	// The agent may also clean at start with the library's call.
	require.NoError(t, verify.RemoveStaleScratch(scratch))
	assert.FileExists(t, alike)
}
