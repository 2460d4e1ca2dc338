package main

import (
	"fmt"
	"math/rand"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Scenario 3: power cuts. QEMU is killed through its monitor ("quit": no
// shutdown, unsynced guest writes lost) at random moments of an install of
// 1.1.0 (from the first byte written to slot B to the reboot) and of its
// confirmation (from the trial boot of slot B to the end of the confirm),
// alternately, at least 20 times under CI=true (OTASEAL_VM_KILLS sets the
// count; 8 otherwise). After every cut the next power-on must boot a slot
// holding, byte for byte, the signed release its console names, and the
// agent must find its state consistent with it: the slot it runs is the
// one that booted, holding the installed release (the agent hashes it
// before it runs), with no refusal to start. A device that reaches 1.1.0
// confirmed, or gives it up after its try limit, is replaced by a new one.
func TestVMPowerCut(t *testing.T) {
	r := buildReleases(t)
	t.Parallel()
	kills := 8
	if os.Getenv("CI") == "true" {
		kills = 20
	}
	if n, err := strconv.Atoi(os.Getenv("OTASEAL_VM_KILLS")); err == nil && n > 0 {
		kills = n
	}
	s := newUpdateServer(t, r, []release{{"1.0.0", 1}, {"1.1.0", 2}}, [][2]string{{"1.0.0", "1.1.0"}})
	// Two chains of devices side by side: QEMU's TCG uses one core per
	// VM, so two VMs halve the wall time on two cores.
	for c := 0; c < 2; c++ {
		n := kills / 2
		if c == 0 {
			n += kills % 2
		}
		t.Run(fmt.Sprintf("chain%d", c+1), func(t *testing.T) {
			t.Parallel()
			powerCuts(t, r, s, n)
		})
	}
}

// powerCuts cuts the power n times, alternating between the install and
// the confirm phase, on a chain of devices.
func powerCuts(t *testing.T, r *releases, s *updateServer, kills int) {
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d, %d power cuts", seed, kills)

	phases := []struct {
		name, start, end string
		window           time.Duration // kill within this long after start; learnt as runs show the phase's length
	}{
		{"install", `msg="writing slot"`, "OTASEAL grub boot_slot=b", 20 * time.Second},
		{"confirm", "OTASEAL boot slot=b release=1.1.0", `msg="update confirmed"`, 20 * time.Second},
	}
	landed := map[string]int{}
	var d *device
	devices, completed := 0, 0
	for k := 0; k < kills; {
		if d == nil {
			d = newDevice(t, r, s, "1.0.0", 1)
			devices++
		}
		ph := &phases[k%2]
		on := d.powerOn(t)
		start := on.waitFor(0, ph.start, bootTimeout)
		if start < 0 {
			// The phase did not come: the device had nothing left to do.
			on.untilPowerOff(bootTimeout)
			checkBoots(t, r, d, on)
			d = nil
			continue
		}
		delay := time.Duration(rng.Int63n(int64(ph.window)))
		if end := on.waitFor(start, ph.end, delay); end >= 0 {
			// The phase ended before the cut: its length bounds the next
			// window, so that cuts land inside it.
			ph.window = max(on.at(end).at.Sub(on.at(start).at), 200*time.Millisecond)
		}
		require.NoError(t, on.vm.Kill())
		require.True(t, on.wait(30*time.Second), "QEMU ends on quit")
		k++
		inside := on.find(start, ph.end) < 0
		if inside {
			landed[ph.name]++
		}
		t.Logf("cut %d: %v after the %s phase began (inside it: %v)", k, delay.Round(time.Millisecond), ph.name, inside)
		checkBoots(t, r, d, on)
		if t.Failed() {
			t.Fatalf("after power cut %d (%s phase, %v after its start)", k, ph.name, delay)
		}
		if on.find(0, `msg="update confirmed"`) >= 0 || on.find(0, "bootloader fell back") >= 0 {
			completed++
			d = nil
		}
	}
	// The last device, whatever the last cut left, comes up consistent
	// and finishes: 1.1.0 confirmed, or 1.0.0 with 1.1.0 given up.
	if d != nil {
		on := d.powerOn(t)
		on.untilPowerOff(bootTimeout)
		checkBoots(t, r, d, on)
		assert.NotEqual(t, -1, on.find(0, "OTASEAL agent exit=0"), "the agent ends its cycle after the last cut")
	}
	t.Logf("%d power cuts on %d devices: %d inside an install, %d inside a confirm; %d devices finished between cuts",
		kills, devices, landed["install"], landed["confirm"], completed)
	assert.Positive(t, landed["install"], "some cuts land inside an install")
	if kills > 1 {
		assert.Positive(t, landed["confirm"], "some cuts land inside a confirm")
	}
}

var (
	bootLine    = regexp.MustCompile(`OTASEAL boot slot=([ab]) release=(\S+)`)
	runningLine = regexp.MustCompile(`msg=running version=(\S+) slot=([ab])`)
)

// checkBoots checks every boot of one power-on: the slot that booted
// holds exactly the signed image of the release it announced (hashed on
// the host, from the disk), and when the agent got as far as running, it
// runs that slot and that release; the agent never refused to start.
func checkBoots(t *testing.T, r *releases, d *device, on *vmRun) {
	t.Helper()
	lines := on.snapshot()
	var slot, rel string
	for _, l := range lines {
		if m := bootLine.FindStringSubmatch(l.text); m != nil {
			slot, rel = m[1], m[2]
			img, ok := r.images[rel]
			if !assert.True(t, ok, "booted an unknown release %q", rel) {
				continue
			}
			assert.Equal(t, r.sha256(t, rel), d.slotHash(t, slot, fileSize(t, img)), "slot %s holds the signed %s it booted", slot, rel)
		}
		if m := runningLine.FindStringSubmatch(l.text); m != nil {
			assert.Equal(t, rel, m[1], "the agent runs the release that booted: %s", l.text)
			assert.Equal(t, slot, m[2], "the agent runs the slot that booted: %s", l.text)
		}
	}
	for _, bad := range []string{"refusing to run", `msg="cannot start"`, "OTASEAL error"} {
		assert.Equal(t, -1, on.find(0, bad), "console shows %q", bad)
	}
}
