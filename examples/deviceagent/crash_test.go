package main

import (
	"bytes"
	"crypto/sha256"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPowerLoss kills the agent with SIGKILL at random moments of an
// install, at least 200 times (AGENT_KILLS raises it), and checks after
// each kill that the state loads and the active slot holds exactly the
// installed, verified image: never a torn one. Devices start from the
// factory image either one delta away from the new release or only
// reachable by a full image, so kills land in both kinds of install.
func TestPowerLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the agent and kills it 200 times")
	}
	kills := 200
	if v, err := strconv.Atoi(os.Getenv("AGENT_KILLS")); err == nil && v > kills {
		kills = v
	}
	bin := filepath.Join(t.TempDir(), "deviceagent")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, string(out))

	s := newServer(t, 2<<20)
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	var d *device
	var pendingSeen, installs, fresh int
	for i := 0; i < kills; i++ {
		if d == nil {
			factory := []string{"1.0.0", "0.9.0"}[fresh%2]
			d, fresh = newDeviceWith(t, s, factory), fresh+1
		}
		cmd := exec.Command(bin, d.args(s)...)
		require.NoError(t, cmd.Start())
		time.Sleep(time.Duration(rng.Intn(60000)) * time.Microsecond)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()

		if _, err := os.Stat(d.stateDir); err != nil {
			continue // killed before the state directory existed
		}
		st := d.status(t) // loads: never a torn record
		if st.Installed == nil {
			continue // killed before provisioning finished
		}
		slot := map[string]string{"a": d.slotA, "b": d.slotB}[st.Installed.Slot]
		b, err := os.ReadFile(slot)
		require.NoError(t, err)
		sum := sha256.Sum256(b)
		require.True(t, bytes.Equal(sum[:], st.Installed.SHA256) && int64(len(b)) == st.Installed.Length,
			"kill %d: active slot %s does not hold the installed %s", i, st.Installed.Slot, st.Installed.Version)
		if st.Pending != nil {
			pendingSeen++
		}
		if st.Installed.Version.String() == "1.1.0" && st.Pending == nil {
			installs++
			assert.Equal(t, s.images["1.1.0"], b)
			d = nil // next kill on a new device
		}
	}
	t.Logf("%d kills: %d left an install pending, %d installs completed across %d devices", kills, pendingSeen, installs, fresh)
	assert.Positive(t, pendingSeen, "some kills must land inside an install")
	assert.Positive(t, installs, "installs must still complete between kills")

	// Whatever the last kill left, one clean run finishes the job.
	if d != nil {
		out, err := exec.Command(bin, d.args(s)...).CombinedOutput()
		require.NoError(t, err, string(out))
		st := d.status(t)
		assert.Equal(t, "1.1.0", st.Installed.Version.String())
		assert.Nil(t, st.Pending)
	}
}
