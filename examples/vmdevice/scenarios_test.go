package main

import (
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bootTimeout bounds one power-on that installs or reverts: several boots
// under TCG emulation.
const bootTimeout = 4 * time.Minute

// peakRSS is the largest agent peak RSS (kB) a power-on's console reports.
func peakRSS(r *vmRun) int {
	re := regexp.MustCompile(`peak-rss-kb=(\d+)`)
	best := 0
	for _, m := range re.FindAllStringSubmatch(r.console(), -1) {
		if n, _ := strconv.Atoi(m[1]); n > best {
			best = n
		}
	}
	return best
}

// Scenario 1: the factory image runs in slot A; the agent installs 1.1.0
// into slot B through a delta, arms a trial boot and reboots the VM; GRUB
// boots B; the health check passes; the agent confirms, and only then the
// security floor rises; the next power-on boots B again.
func TestVMUpdateThroughBootloader(t *testing.T) {
	r := buildReleases(t)
	s := newUpdateServer(t, r, []release{{"1.0.0", 1}, {"1.1.0", 2}}, [][2]string{{"1.0.0", "1.1.0"}})
	d := newDevice(t, r, s, "1.0.0", 1)

	start := time.Now()
	on := d.powerOn(t)
	on.untilPowerOff(bootTimeout)
	idx := on.inOrder(
		"OTASEAL grub boot_slot=a trial= ",
		"OTASEAL boot slot=a release=1.0.0",
		`msg=provisioned version=1.0.0`,
		`msg="writing slot" slot=b version=1.1.0 delta_offered=true`,
		`msg="slot written" slot=b via="delta acme-gw-r2/deltas/1.0.0-1.1.0.otz"`,
		`msg="switching to slot" slot=b`,
		"OTASEAL grub boot_slot=b trial=b tries_left=2",
		"OTASEAL boot slot=b release=1.1.0",
		`msg=booted slot=b installed=1.0.0 installed_slot=a pending="1.1.0 in slot b" security_floor=1 boot=grub`,
		`msg="health check passed" version=1.1.0 slot=b`,
		`msg="update confirmed" version=1.1.0 slot=b security_floor=2`,
		`msg=running version=1.1.0 slot=b security_floor=2`,
		"OTASEAL agent exit=0",
	)
	assert.Equal(t, 1, on.count("OTASEAL grub boot_slot=b"), "one trial boot")
	assert.Equal(t, idx[10], on.find(0, "security_floor=2"), "the floor rises with the confirmation, not before")
	boot2Confirmed := on.at(idx[10]).at.Sub(on.at(idx[5]).at)
	rss := peakRSS(on)
	assert.Equal(t, r.sha256(t, "1.1.0"), d.slotHash(t, "b", fileSize(t, r.images["1.1.0"])), "slot B holds 1.1.0")
	assert.Equal(t, r.sha256(t, "1.0.0"), d.slotHash(t, "a", fileSize(t, r.images["1.0.0"])), "slot A untouched")

	// The next power-on boots B again: GRUB's confirmed slot is B.
	on2 := d.powerOn(t)
	on2.untilPowerOff(bootTimeout)
	on2.inOrder(
		"OTASEAL grub boot_slot=b trial= ",
		"OTASEAL boot slot=b release=1.1.0",
		`msg=running version=1.1.0 slot=b security_floor=2`,
		`up to date`,
		"OTASEAL agent exit=0",
	)
	t.Logf("FIGURE boot-to-confirmed (reboot into B to update confirmed): %v", boot2Confirmed.Round(10*time.Millisecond))
	t.Logf("FIGURE delta bytes transferred: %d (full image %d bytes; full images served: %d bytes)", s.deltaTx.Load(), fileSize(t, r.images["1.1.0"]), s.imageTx.Load())
	t.Logf("FIGURE agent peak RSS in the VM: %d kB", rss)
	t.Logf("FIGURE scenario wall time: %v", time.Since(start).Round(time.Second))
	require.Zero(t, s.imageTx.Load(), "the delta sufficed: no full image downloaded")
}

func fileSize(t *testing.T, path string) int64 {
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Size()
}
