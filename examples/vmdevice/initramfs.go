package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// virtioModules are the kernel modules the guest loads, in dependency
// order: Debian's cloud kernel builds virtio, its block and its network
// drivers as modules.
var virtioModules = []string{
	"drivers/virtio/virtio_ring.ko", "drivers/virtio/virtio.ko",
	"drivers/virtio/virtio_pci_legacy_dev.ko", "drivers/virtio/virtio_pci_modern_dev.ko",
	"drivers/virtio/virtio_pci.ko", "drivers/block/virtio_blk.ko",
	"net/core/failover.ko", "drivers/net/net_failover.ko", "drivers/net/virtio_net.ko",
}

// initScript is /init of a healthy release: it brings up the disk and the
// network, mounts the boot and data partitions, and runs the agent once.
// Every line the test reads starts with "OTASEAL ". The agent itself
// reboots into a newly written slot; when it returns, the device powers
// off, which ends the QEMU run.
const initScript = `#!/bin/sh
/bin/busybox mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sys /sys
for m in %s; do insmod /lib/modules/$m; done
slot=
for w in $(cat /proc/cmdline); do
  case "$w" in otaseal.slot=*) slot="${w#otaseal.slot=}";; esac
done
echo "OTASEAL boot slot=$slot release=$(cat /etc/otaseal-release)"
i=0
while [ ! -b /dev/vda4 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
mkdir -p /boot /data
mount -t ext2 /dev/vda1 /boot || echo "OTASEAL error mount boot"
mount -t ext4 /dev/vda4 /data || echo "OTASEAL error mount data"
. /data/device.conf
echo "OTASEAL agent start"
time -v -o /tmp/agent.time /bin/deviceagent -once -server "$SERVER" -hardware-id "$HARDWARE_ID" \
  -state /data/ota -root /data/root.json \
  -factory-version "$FACTORY_VERSION" -factory-security-version "$FACTORY_SECURITY_VERSION" -factory-length "$FACTORY_LENGTH" \
  -boot grub -grubenv /boot/grub/grubenv \
  -slot-a /dev/vda2 -slot-b /dev/vda3 -health-check /bin/healthcheck $AGENT_FLAGS
rc=$?
echo "OTASEAL agent peak-rss-kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' /tmp/agent.time)"
echo "OTASEAL agent exit=$rc"
sync
umount /data /boot
echo "OTASEAL poweroff"
poweroff -f
`

// brokenInitScript is /init of a release that never becomes healthy: it
// exits at once, the kernel panics ("Attempted to kill init") and, with
// panic=1 on its command line, reboots: the bootloader's try counter is
// all that brings the device back.
const brokenInitScript = `#!/bin/sh
/bin/busybox mount -t devtmpfs dev /dev
echo "OTASEAL boot release=$(cat /etc/otaseal-release) broken: init exits" >/dev/console
exit 1
`

// healthCheck is the release's health check: the booted system must be
// the release the agent installed (the kernel started from the slot the
// state names) and the update server must answer.
const healthCheck = `#!/bin/sh
want="$OTASEAL_VERSION"
got="$(cat /etc/otaseal-release)"
[ "$got" = "$want" ] || { echo "running $got, want $want"; exit 1; }
`

// buildInitramfs returns the initramfs of one release, gzipped: static
// busybox, the statically linked agent, the virtio modules, /init and the
// release name. The files that differ between releases come last in the
// archive, so the compressed streams of two releases share their start
// and a delta between their slot images stays small.
func buildInitramfs(c *buildConfig, version string, healthy bool) ([]byte, error) {
	busybox, err := os.ReadFile(c.Busybox)
	if err != nil {
		return nil, err
	}
	agent, err := os.ReadFile(c.Agent)
	if err != nil {
		return nil, err
	}
	e := []cpioEntry{
		{name: "bin", mode: modeDir | 0o755}, {name: "dev", mode: modeDir | 0o755},
		{name: "etc", mode: modeDir | 0o755}, {name: "lib", mode: modeDir | 0o755},
		{name: "lib/modules", mode: modeDir | 0o755}, {name: "proc", mode: modeDir | 0o755},
		{name: "sys", mode: modeDir | 0o755}, {name: "tmp", mode: modeDir | 0o1777},
		{name: "dev/console", mode: modeChar | 0o600, dev: 5<<8 | 1},
		{name: "bin/busybox", mode: modeFile | 0o755, data: busybox},
		{name: "bin/deviceagent", mode: modeFile | 0o755, data: agent},
		{name: "bin/healthcheck", mode: modeFile | 0o755, data: []byte(healthCheck)},
	}
	for _, applet := range []string{"sh", "mount", "umount", "insmod", "ip", "sleep", "cat", "echo", "sed", "grep", "mkdir", "sync", "poweroff", "reboot", "time", "sha256sum", "dd"} {
		e = append(e, cpioEntry{name: "bin/" + applet, mode: modeLink | 0o777, data: []byte("busybox")})
	}
	mods, err := kernelModulesDir(c.KernelDir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, m := range virtioModules {
		b, err := os.ReadFile(filepath.Join(mods, "kernel", m))
		if err != nil {
			return nil, err
		}
		e = append(e, cpioEntry{name: "lib/modules/" + filepath.Base(m), mode: modeFile | 0o644, data: b})
		names = append(names, filepath.Base(m))
	}
	script := brokenInitScript
	if healthy {
		script = fmt.Sprintf(initScript, strings.Join(names, " "))
	}
	e = append(e, cpioEntry{name: "init", mode: modeFile | 0o755, data: []byte(script)},
		cpioEntry{name: "etc/otaseal-release", mode: modeFile | 0o644, data: []byte(version + "\n")})
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if err := writeCPIO(zw, e); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// kernelModulesDir is lib/modules/<release> under the unpacked kernel
// package.
func kernelModulesDir(kernelDir string) (string, error) {
	m, err := filepath.Glob(filepath.Join(kernelDir, "lib", "modules", "*"))
	if err != nil || len(m) != 1 {
		return "", fmt.Errorf("%s: want exactly one lib/modules/<release> (unpack the kernel package with dpkg-deb -x), found %d", kernelDir, len(m))
	}
	return m[0], nil
}

// kernelImage is boot/vmlinuz-<release> under the unpacked kernel package.
func kernelImage(kernelDir string) (string, error) {
	m, err := filepath.Glob(filepath.Join(kernelDir, "boot", "vmlinuz-*"))
	if err != nil || len(m) != 1 {
		return "", fmt.Errorf("%s: want exactly one boot/vmlinuz-*, found %d", kernelDir, len(m))
	}
	return m[0], nil
}
