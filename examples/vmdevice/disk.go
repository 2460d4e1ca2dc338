package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
)

// The disk of the VM device, in 512-byte sectors. An MBR disk as on many
// boards: GRUB's boot sector and core image before the first partition,
// then the boot partition with GRUB's configuration and environment
// block, the two slots, and the data partition with the agent's state.
const (
	sectorSize = 512
	bootStart  = 2048 // GRUB's core image sits in sectors 1..2047
	bootSize   = 8 << 20 / sectorSize
	slotSize   = 48 << 20 / sectorSize
	slotAStart = bootStart + bootSize
	slotBStart = slotAStart + slotSize
	dataStart  = slotBStart + slotSize
	dataSize   = 24 << 20 / sectorSize
	diskSize   = (dataStart + dataSize) * sectorSize

	// slotImageSize is the length of a release's image: an ext2 file
	// system holding the kernel and the initramfs, smaller than the slot
	// partition so that a release may grow.
	slotImageSize = 24 << 20
)

// partitions of the disk, in MBR order: (hd0,msdos1) is boot, vda2 slot
// A, vda3 slot B, vda4 data.
var partitions = [4][2]int64{{bootStart, bootSize}, {slotAStart, slotSize}, {slotBStart, slotSize}, {dataStart, dataSize}}

// grubModules are built into GRUB's core image, so that the boot
// partition needs no module directory.
var grubModules = []string{"biosdisk", "part_msdos", "ext2", "normal", "configfile", "loadenv", "test", "linux", "echo", "serial", "terminal", "reboot", "halt", "sleep"}

// grubConfig boots the confirmed slot, or the slot armed for a trial
// while it has tries left. The try counter is decremented and saved
// before the kernel starts, so a trial that hangs, panics or reboots
// without confirming uses up a try; when none is left GRUB clears the
// trial, records the slot it gave up on in otaseal_fellback for the
// agent to read, and boots the confirmed slot. GRUB's scripts have no
// arithmetic, hence the ladder; it allows up to three tries.
const grubConfig = `serial --unit=0 --speed=115200
terminal_output serial
load_env
if [ "${otaseal_slot}" != "b" ]; then set otaseal_slot=a; fi
set boot_slot="${otaseal_slot}"
if [ -n "${otaseal_trial}" ]; then
  if [ "${otaseal_tries}" = "3" ]; then
    set otaseal_tries=2
    set boot_slot="${otaseal_trial}"
  elif [ "${otaseal_tries}" = "2" ]; then
    set otaseal_tries=1
    set boot_slot="${otaseal_trial}"
  elif [ "${otaseal_tries}" = "1" ]; then
    set otaseal_tries=0
    set boot_slot="${otaseal_trial}"
  else
    set otaseal_fellback="${otaseal_trial}"
    set otaseal_trial=
    set otaseal_tries=
  fi
  save_env otaseal_trial otaseal_tries otaseal_fellback
fi
echo "OTASEAL grub boot_slot=${boot_slot} trial=${otaseal_trial} tries_left=${otaseal_tries}"
if [ "${boot_slot}" = "b" ]; then set root=(hd0,msdos3); else set root=(hd0,msdos2); fi
linux /vmlinuz console=ttyS0,115200 panic=1 quiet loglevel=3 otaseal.slot=${boot_slot}
initrd /initrd.img
boot
`

// buildSlotImage writes the slot image of one release to out: an ext2
// file system, made by mke2fs from a directory (no loop mount, no root),
// with the kernel, the initramfs and the release name.
func buildSlotImage(c *buildConfig, version string, healthy bool, out string) error {
	dir, err := os.MkdirTemp("", "otaseal-slot-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	kernel, err := kernelImage(c.KernelDir)
	if err != nil {
		return err
	}
	if err := copyFile(kernel, filepath.Join(dir, "vmlinuz")); err != nil {
		return err
	}
	initrd, err := buildInitramfs(c, version, healthy)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "initrd.img"), initrd, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "otaseal-release"), []byte(version+"\n"), 0o644); err != nil {
		return err
	}
	return mkfs(out, slotImageSize, "ext2", dir)
}

// mkfs makes a file system of size bytes at out from dir's contents, with
// fixed UUID, hash seed and time so that equal inputs give equal bytes.
func mkfs(out string, size int64, fstype, dir string) error {
	_ = os.Remove(out)
	cmd := exec.Command("mke2fs", "-q", "-F", "-t", fstype, "-b", "1024", "-m", "0", "-d", dir,
		"-U", "5e1f0a7a-0000-4000-8000-000000000001", "-E", "hash_seed=5e1f0a7a-0000-4000-8000-000000000002,root_owner=0:0",
		out, strconv.FormatInt(size/1024, 10))
	cmd.Env = append(os.Environ(), "E2FSPROGS_FAKE_TIME=1700000000")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mke2fs %s: %v: %s", out, err, b)
	}
	return nil
}

// deviceConfig is what the factory writes to the data partition.
type deviceConfig struct {
	Server, HardwareID, FactoryVersion string
	FactorySecurityVersion             uint64
	Root                               []byte // the repository's root.json
	AgentFlags                         string // extra agent flags
}

// buildDisk assembles a device's disk at out: GRUB in the MBR gap, the
// boot partition with grub.cfg and a fresh environment block (confirmed
// slot a), the factory image in slot A, slot B empty, and a data
// partition holding the device's configuration.
func buildDisk(c *buildConfig, factoryImage string, dev deviceConfig, out string) error {
	tmp, err := os.MkdirTemp("", "otaseal-disk-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	core := filepath.Join(tmp, "core.img")
	args := append([]string{"-O", "i386-pc", "-d", c.GrubDir, "-o", core, "-p", "(hd0,msdos1)/grub"}, grubModules...)
	if b, err := exec.Command("grub-mkimage", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("grub-mkimage: %v: %s", err, b)
	}
	bootDir := filepath.Join(tmp, "boot")
	if err := os.MkdirAll(filepath.Join(bootDir, "grub"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(bootDir, "grub", "grub.cfg"), []byte(grubConfig), 0o644); err != nil {
		return err
	}
	// The environment block is made by GRUB's own tool, so the agent's
	// writer meets the format GRUB itself reads.
	env := filepath.Join(bootDir, "grub", "grubenv")
	for _, a := range [][]string{{env, "create"}, {env, "set", "otaseal_slot=a"}} {
		if b, err := exec.Command("grub-editenv", a...).CombinedOutput(); err != nil {
			return fmt.Errorf("grub-editenv: %v: %s", err, b)
		}
	}
	dataDir := filepath.Join(tmp, "data")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return err
	}
	fi, err := os.Stat(factoryImage)
	if err != nil {
		return err
	}
	conf := fmt.Sprintf("SERVER=%q\nHARDWARE_ID=%q\nFACTORY_VERSION=%q\nFACTORY_SECURITY_VERSION=%d\nFACTORY_LENGTH=%d\nAGENT_FLAGS=%q\n",
		dev.Server, dev.HardwareID, dev.FactoryVersion, dev.FactorySecurityVersion, fi.Size(), dev.AgentFlags)
	if err := os.WriteFile(filepath.Join(dataDir, "device.conf"), []byte(conf), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dataDir, "root.json"), dev.Root, 0o644); err != nil {
		return err
	}
	bootImg, dataImg := filepath.Join(tmp, "boot.img"), filepath.Join(tmp, "data.img")
	if err := mkfs(bootImg, bootSize*sectorSize, "ext2", bootDir); err != nil {
		return err
	}
	if err := mkfs(dataImg, dataSize*sectorSize, "ext4", dataDir); err != nil {
		return err
	}

	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(diskSize); err != nil {
		return err
	}
	mbr, err := bootSector(filepath.Join(c.GrubDir, "boot.img"))
	if err != nil {
		return err
	}
	for _, w := range []struct {
		src    string
		sector int64
		max    int64
	}{
		{core, 1, bootStart - 1},
		{bootImg, bootStart, bootSize},
		{factoryImage, slotAStart, slotSize},
		{dataImg, dataStart, dataSize},
	} {
		if err := writeAt(f, w.src, w.sector*sectorSize, w.max*sectorSize); err != nil {
			return err
		}
	}
	if _, err := f.WriteAt(mbr, 0); err != nil {
		return err
	}
	return f.Close()
}

// bootSector is GRUB's boot.img with the partition table filled in.
// boot.img loads the core image from sector 1 (its default), and the core
// image's first sector lists the sectors that follow it (grub-mkimage
// fills in their count): no grub-install, no loop device.
func bootSector(bootImg string) ([]byte, error) {
	b, err := os.ReadFile(bootImg)
	if err != nil {
		return nil, err
	}
	if len(b) != sectorSize {
		return nil, fmt.Errorf("%s: %d bytes, want %d", bootImg, len(b), sectorSize)
	}
	for i, p := range partitions {
		e := b[446+16*i : 446+16*(i+1)]
		clear(e)
		if i == 0 {
			e[0] = 0x80 // active
		}
		e[4] = 0x83 // Linux
		copy(e[1:4], []byte{0xfe, 0xff, 0xff})
		copy(e[5:8], []byte{0xfe, 0xff, 0xff})
		binary.LittleEndian.PutUint32(e[8:], uint32(p[0]))
		binary.LittleEndian.PutUint32(e[12:], uint32(p[1]))
	}
	b[510], b[511] = 0x55, 0xaa
	return b, nil
}

// writeAt copies the file src into f at off, refusing one longer than max.
func writeAt(f *os.File, src string, off, max int64) error {
	s, err := os.Open(src)
	if err != nil {
		return err
	}
	defer s.Close()
	fi, err := s.Stat()
	if err != nil {
		return err
	}
	if fi.Size() > max {
		return fmt.Errorf("%s: %d bytes do not fit in %d", src, fi.Size(), max)
	}
	_, err = io.Copy(io.NewOffsetWriter(f, off), s)
	return err
}

func copyFile(src, dst string) error {
	s, err := os.Open(src)
	if err != nil {
		return err
	}
	defer s.Close()
	d, err := os.Create(dst)
	if err != nil {
		return err
	}
	_, err = io.Copy(d, s)
	return errors.Join(err, d.Close())
}
