package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/otaseal/otaseal/rollback"
)

// bootControl is the agent's view of the device's bootloader. The slots
// themselves are written through verify.Slots (slotFiles: a file or a
// partition per slot); bootControl decides which slot runs. The agent
// calls it in this order for an update: ArmTrial, Reboot; at the next
// start Booted and FellBack, then MarkGood after the health check (before
// the state's Confirm raises the floor), or, after a failed check,
// MarkGood of the old slot and Reboot.
//
// Two backends: bootFiles, no bootloader at all (the slots are files and
// the "reboot" happens inside the agent), and bootGRUB, GRUB's environment
// block with a try counter (grub.cfg in examples/vmdevice). A device with
// U-Boot implements the same five steps over its environment: see the
// README's section for device makers.
type bootControl interface {
	// Booted names the slot the running system was started from.
	Booted(ctx context.Context) (string, error)
	// ArmTrial makes the next boots start slot until the bootloader's try
	// limit, after which it starts the confirmed slot again by itself.
	ArmTrial(slot string) error
	// MarkGood makes slot the confirmed one, started at every boot, and
	// disarms any trial.
	MarkGood(slot string) error
	// FellBack names the slot whose trial the bootloader gave up on ("":
	// none) since the last ClearFellBack.
	FellBack() (string, error)
	// ClearFellBack forgets the fallback once the agent has recorded it.
	ClearFellBack() error
	// Reboot restarts the device into the bootloader; it returns only on
	// failure, or with false when the backend has no real reboot and the
	// agent carries on as if it had booted the armed slot.
	Reboot() (bool, error)
}

// bootFiles stands in for a bootloader on a device whose slots are files:
// the slot "booted" is the one the state says, or the pending one once its
// image is complete (as if the agent had been killed after writing it and
// the device rebooted into it).
type bootFiles struct {
	a *agent
}

func (b bootFiles) Booted(ctx context.Context) (string, error) {
	st, err := b.a.state.Status(ctx)
	if err != nil {
		return "", err
	}
	if p := st.Pending; p != nil {
		if ok, _ := b.a.cycle.SlotHolds(*p); ok {
			b.a.log.Info("resuming: pending image complete; booting it", "version", p.Version, "slot", p.Slot)
			return p.Slot, nil
		}
		b.a.log.Warn("resuming: pending image incomplete; rolling back", "version", p.Version, "slot", p.Slot)
	}
	return st.Installed.Slot, nil
}

func (bootFiles) ArmTrial(string) error     { return nil }
func (bootFiles) MarkGood(string) error     { return nil }
func (bootFiles) FellBack() (string, error) { return "", nil }
func (bootFiles) ClearFellBack() error      { return nil }
func (bootFiles) Reboot() (bool, error)     { return false, nil }
func (bootFiles) String() string            { return "files" }
func (b *bootGRUB) String() string          { return "grub" }

var _, _ bootControl = bootFiles{}, (*bootGRUB)(nil)

// GRUB environment variables of the A/B scheme; grub.cfg reads the same
// names (examples/vmdevice/disk.go).
const (
	grubVarSlot     = "otaseal_slot"     // the confirmed slot: "a" or "b"
	grubVarTrial    = "otaseal_trial"    // the slot armed for a trial, "" for none
	grubVarTries    = "otaseal_tries"    // tries left for the trial; GRUB counts down before each
	grubVarFellBack = "otaseal_fellback" // set by GRUB: the trial slot it gave up on
	// grubTries is how many boots a trial gets; grub.cfg's ladder
	// allows up to 3.
	grubTries = "3"
	// grubCmdlineSlot is the kernel parameter grub.cfg passes: the slot
	// it booted.
	grubCmdlineSlot = "otaseal.slot="
)

// bootGRUB drives GRUB through its environment block (grub-editenv's
// format): a confirmed slot, a trial slot with a try counter that GRUB
// itself decrements before each boot, and the slot GRUB fell back from.
// The slot that booted is what GRUB put on the kernel command line.
type bootGRUB struct {
	env     string       // path of the environment block, e.g. /boot/grub/grubenv
	cmdline string       // /proc/cmdline
	reboot  func() error // restarts the machine: reboot(2), or a test's stand-in
}

func (g *bootGRUB) Booted(context.Context) (string, error) {
	b, err := os.ReadFile(g.cmdline)
	if err != nil {
		return "", err
	}
	for _, w := range strings.Fields(string(b)) {
		if s, ok := strings.CutPrefix(w, grubCmdlineSlot); ok && (s == "a" || s == "b") {
			return s, nil
		}
	}
	return "", fmt.Errorf("%s: no %sa or %sb: was the device started by the A/B grub.cfg?", g.cmdline, grubCmdlineSlot, grubCmdlineSlot)
}

// update reads the block, sets the variables (name, value, name,
// value...), and writes it back only when one changed: each write is a
// write to boot flash.
func (g *bootGRUB) update(change ...string) error {
	e, err := readGRUBEnv(g.env)
	if err != nil {
		return err
	}
	same := true
	for i := 0; i+1 < len(change); i += 2 {
		if cur, ok := e.values[change[i]]; !ok || cur != change[i+1] {
			same = false
			e.set(change[i], change[i+1])
		}
	}
	if same {
		return nil
	}
	return writeGRUBEnv(g.env, e)
}

func (g *bootGRUB) ArmTrial(slot string) error {
	return g.update(grubVarTrial, slot, grubVarTries, grubTries, grubVarFellBack, "")
}

func (g *bootGRUB) MarkGood(slot string) error {
	return g.update(grubVarSlot, slot, grubVarTrial, "", grubVarTries, "")
}

func (g *bootGRUB) FellBack() (string, error) {
	e, err := readGRUBEnv(g.env)
	if err != nil {
		return "", err
	}
	return e.get(grubVarFellBack), nil
}

func (g *bootGRUB) ClearFellBack() error {
	return g.update(grubVarFellBack, "")
}

func (g *bootGRUB) Reboot() (bool, error) {
	return true, g.reboot()
}

// newBootControl returns the backend -boot names.
func newBootControl(c *config, a *agent) (bootControl, error) {
	switch c.boot {
	case "", "files":
		return bootFiles{a: a}, nil
	case "grub":
		if c.grubEnv == "" {
			return nil, errors.New("-boot grub needs -grubenv")
		}
		if _, err := readGRUBEnv(c.grubEnv); err != nil {
			return nil, err
		}
		return &bootGRUB{env: c.grubEnv, cmdline: "/proc/cmdline", reboot: reboot}, nil
	}
	return nil, fmt.Errorf("-boot %q: want files or grub", c.boot)
}

// fellBack handles, at start, a trial the bootloader gave up on: the
// pending release is recorded as failed before the state drops it, so a
// power cut between the two steps loses neither.
func (a *agent) fellBack(ctx context.Context, booted string) error {
	slot, err := a.boot.FellBack()
	if err != nil || slot == "" {
		return err
	}
	st, err := a.state.Status(ctx)
	if err != nil {
		return err
	}
	if p := st.Pending; p != nil && p.Slot == slot && booted != slot {
		a.log.Error("bootloader fell back: the release never confirmed a boot within the try limit; reverting and not retrying it",
			"version", p.Version, "slot", slot, "booted", booted)
		if err := a.failed.add(*p); err != nil {
			return err
		}
	}
	return nil
}

// rollbackImageKey names a release in the failed list.
func rollbackImageKey(img rollback.Image) string {
	return fmt.Sprintf("%s %x", img.TargetPath, img.SHA256)
}
