// Command vmdevice assembles the disk of a virtual device that runs the
// otaseal device agent under a real bootloader, and boots it in QEMU: the
// worked example of mapping the agent's slot backend to a partition
// layout and a bootloader (see the README's section for device makers).
//
// Everything comes from Debian packages: the kernel is Debian's
// linux-image-cloud-amd64 unpacked with dpkg-deb -x (not installed), the
// userland is busybox-static, the bootloader is GRUB for BIOS
// (grub-pc-bin), the disk is assembled with mke2fs -d and plain writes at
// partition offsets: no loop device, no mount, no root.
//
//	apt-get download linux-image-6.1.0-56-cloud-amd64   # the version linux-image-cloud-amd64 depends on
//	dpkg-deb -x linux-image-*.deb kernel/
//	go run ./examples/vmdevice -kernel kernel -out vm/ -server http://10.0.2.2:8080 \
//	    -root root.json -factory-version 1.0.0 -factory-security-version 1
//	go run ./examples/vmdevice -kernel kernel -out vm/ -release 1.1.0    # another release's slot image
//	go run ./examples/vmdevice -boot vm/disk.img                         # power on
//
// The disk (MBR, 512-byte sectors):
//
//	sectors 1-2047  GRUB core image (grub-mkimage, i386-pc)
//	vda1  8 MiB     boot: ext2, /grub/grub.cfg and /grub/grubenv
//	vda2  48 MiB    slot A: a release image (ext2: /vmlinuz, /initrd.img)
//	vda3  48 MiB    slot B
//	vda4  24 MiB    data: ext4, the agent's state and the device's config
//
// A release image is what the update server publishes: a file system
// with the kernel and an initramfs holding static busybox and the agent
// built with CGO_ENABLED=0. GRUB boots the slot its environment block
// names, or the slot armed for a trial while tries remain (grub.cfg in
// disk.go); the agent drives that block through its "grub" slot backend.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// buildConfig says where the build finds its Debian parts and the agent.
type buildConfig struct {
	KernelDir string // linux-image-*-cloud-amd64 unpacked by dpkg-deb -x
	Busybox   string // a static busybox (busybox-static: /bin/busybox)
	GrubDir   string // GRUB's i386-pc modules and boot.img (grub-pc-bin)
	Agent     string // the deviceagent, statically linked
}

// buildAgent builds examples/deviceagent statically (CGO_ENABLED=0) for
// the guest, from the module at moduleDir, into out.
func buildAgent(ctx context.Context, moduleDir, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./examples/deviceagent")
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building the agent: %v: %s", err, b)
	}
	return nil
}

func main() {
	err := run(context.Background(), os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmdevice:", err)
		var u usageError
		if errors.As(err, &u) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError struct{ error }

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("vmdevice", flag.ContinueOnError)
	var (
		c                                       buildConfig
		out, server, root, factory, release, hw string
		boot                                    string
		factorySV                               uint64
		broken                                  bool
	)
	fs.StringVar(&c.KernelDir, "kernel", "", "directory of the unpacked linux-image-*-cloud-amd64 package (dpkg-deb -x)")
	fs.StringVar(&c.Busybox, "busybox", "/bin/busybox", "static busybox (Debian's busybox-static)")
	fs.StringVar(&c.GrubDir, "grub", "/usr/lib/grub/i386-pc", "GRUB's i386-pc directory (Debian's grub-pc-bin)")
	fs.StringVar(&out, "out", "", "output directory")
	fs.StringVar(&server, "server", "http://10.0.2.2:8080", "update server URL as the guest sees it (10.0.2.2 is the host's 127.0.0.1)")
	fs.StringVar(&root, "root", "", "the repository's root.json, shipped on the data partition")
	fs.StringVar(&hw, "hardware-id", "acme-gw-r2", "the device's hardware ID")
	fs.StringVar(&factory, "factory-version", "1.0.0", "version of the factory image in slot A")
	fs.Uint64Var(&factorySV, "factory-security-version", 1, "its security version")
	fs.StringVar(&release, "release", "", "build only the slot image of this release (release-VERSION.img) and exit")
	fs.BoolVar(&broken, "broken", false, "with -release: a release whose init exits, so it never becomes healthy")
	fs.StringVar(&boot, "boot", "", "boot this disk image in QEMU (serial console on stdout) and exit")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: vmdevice -kernel DIR -out DIR -root root.json [flags]   build a device's disk
       vmdevice -kernel DIR -out DIR -release VERSION [-broken]   build a release image
       vmdevice -boot DISK                                         power the device on

Builds a virtual device for the otaseal device agent from Debian packages
(QEMU, GRUB for BIOS, busybox-static, the cloud kernel unpacked with
dpkg-deb -x) without loop mounts, and boots it in QEMU (TCG; OTASEAL_VM_KVM=1
for KVM). Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if boot != "" {
		vm := &qemu{Disk: boot, Stdout: os.Stdout}
		if err := vm.Start(ctx); err != nil {
			return err
		}
		return vm.Wait()
	}
	if c.KernelDir == "" || out == "" {
		return usageError{errors.New("-kernel and -out are required")}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	module, err := moduleRoot(wd)
	if err != nil {
		return err
	}
	c.Agent = filepath.Join(out, "deviceagent")
	if err := buildAgent(ctx, module, c.Agent); err != nil {
		return err
	}
	if release != "" {
		img := filepath.Join(out, "release-"+release+".img")
		if err := buildSlotImage(&c, release, !broken, img); err != nil {
			return err
		}
		fmt.Println(img)
		return nil
	}
	if root == "" {
		return usageError{errors.New("-root is required to build a disk")}
	}
	rootJSON, err := os.ReadFile(root)
	if err != nil {
		return err
	}
	img := filepath.Join(out, "release-"+factory+".img")
	if err := buildSlotImage(&c, factory, true, img); err != nil {
		return err
	}
	disk := filepath.Join(out, "disk.img")
	err = buildDisk(&c, img, deviceConfig{Server: server, HardwareID: hw, FactoryVersion: factory,
		FactorySecurityVersion: factorySV, Root: rootJSON}, disk)
	if err != nil {
		return err
	}
	fmt.Println(disk)
	return nil
}

// moduleRoot is the directory of the go.mod above dir.
func moduleRoot(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/otaseal/otaseal\n") {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("%s is not inside the otaseal module", dir)
		}
	}
}
