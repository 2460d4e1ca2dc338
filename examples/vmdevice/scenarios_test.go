package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bootTimeout bounds one power-on that installs or reverts: up to five
// boots under TCG emulation, on a machine that may be busy with other
// work (a boot takes about 5 s on two idle cores, over a minute on an
// overloaded one).
const bootTimeout = 10 * time.Minute

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
	t.Parallel()
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

// Scenario 2: release 1.2.0 never becomes healthy (its init exits, the
// kernel panics and reboots). GRUB boots it on trial until its try limit,
// then boots slot A again by itself; the agent sees the fallback, reverts
// its state with the floor unchanged, reports it, and does not install
// 1.2.0 again, on this power-on or the next.
func TestVMBrokenReleaseFallsBack(t *testing.T) {
	r := buildReleases(t)
	t.Parallel()
	s := newUpdateServer(t, r, []release{{"1.0.0", 1}, {"1.2.0", 2}}, [][2]string{{"1.0.0", "1.2.0"}})
	d := newDevice(t, r, s, "1.0.0", 1)

	on := d.powerOn(t)
	on.untilPowerOff(bootTimeout)
	on.inOrder(
		"OTASEAL boot slot=a release=1.0.0",
		`msg="slot written" slot=b via="delta acme-gw-r2/deltas/1.0.0-1.2.0.otz"`,
		`msg="switching to slot" slot=b version=1.2.0`,
		"OTASEAL grub boot_slot=b trial=b tries_left=2",
		"OTASEAL boot release=1.2.0 broken",
		"Kernel panic",
		"OTASEAL grub boot_slot=b trial=b tries_left=1",
		"OTASEAL boot release=1.2.0 broken",
		"OTASEAL grub boot_slot=b trial=b tries_left=0",
		"OTASEAL boot release=1.2.0 broken",
		"OTASEAL grub boot_slot=a trial= tries_left=",
		"OTASEAL boot slot=a release=1.0.0",
		`msg=booted slot=a installed=1.0.0 installed_slot=a pending="1.2.0 in slot b" security_floor=1`,
		`level=ERROR msg="bootloader fell back: the release never confirmed a boot within the try limit; reverting and not retrying it" version=1.2.0 slot=b booted=a`,
		`msg="install reverted: the device started its installed image" version=1.2.0 slot=b`,
		`msg=running version=1.0.0 slot=a security_floor=1`,
		`msg="not installing a release that failed on this device before" version=1.2.0`,
		"OTASEAL agent exit=0",
	)
	assert.Equal(t, 3, on.count("OTASEAL boot release=1.2.0 broken"), "GRUB's try limit: three trial boots")
	assert.Equal(t, 1, on.count(`msg="writing slot"`), "one install")
	assert.Equal(t, r.sha256(t, "1.0.0"), d.slotHash(t, "a", fileSize(t, r.images["1.0.0"])), "slot A untouched")

	on2 := d.powerOn(t)
	on2.untilPowerOff(bootTimeout)
	on2.inOrder(
		"OTASEAL grub boot_slot=a trial= ",
		`msg=booted slot=a installed=1.0.0 installed_slot=a pending=none security_floor=1`,
		`msg=running version=1.0.0 slot=a security_floor=1`,
		`msg="not installing a release that failed on this device before" version=1.2.0`,
		"OTASEAL agent exit=0",
	)
	assert.Equal(t, -1, on2.find(0, `msg="writing slot"`), "no second attempt")
	assert.Equal(t, -1, on2.find(0, "boot_slot=b"))
}

// Scenario 4: a rollback attempt. The device runs 1.1.0 with security
// floor 2; the repository offers only the older 1.0.0, validly signed,
// with security version 1. The agent refuses it
// inside the VM: nothing is written, and the next power-on finds the
// state as it was.
func TestVMRollbackRefused(t *testing.T) {
	r := buildReleases(t)
	t.Parallel()
	s := newUpdateServer(t, r, []release{{"1.0.0", 1}}, nil)
	d := newDevice(t, r, s, "1.1.0", 2)

	for i := 0; i < 2; i++ {
		on := d.powerOn(t)
		on.untilPowerOff(bootTimeout)
		on.inOrder(
			"OTASEAL boot slot=a release=1.1.0",
			`msg=booted slot=a installed=1.1.0 installed_slot=a pending=none security_floor=2`,
			`msg=running version=1.1.0 slot=a security_floor=2`,
			"security version below floor",
			"OTASEAL agent exit=0",
		)
		assert.Equal(t, -1, on.find(0, `msg="writing slot"`), "power-on %d: nothing written", i+1)
		assert.Equal(t, -1, on.find(0, "boot_slot=b"), "power-on %d", i+1)
	}
	zeros := sha256.Sum256(make([]byte, slotSize*sectorSize))
	assert.Equal(t, hex.EncodeToString(zeros[:]), d.slotHash(t, "b", slotSize*sectorSize), "slot B never written")
	assert.Zero(t, s.deltaTx.Load()+s.imageTx.Load(), "no image fetched")
}
