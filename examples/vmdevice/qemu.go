package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// qemu is one power-on of the VM device: QEMU with the disk on virtio,
// user networking (the guest reaches the host's 127.0.0.1 at 10.0.2.2),
// the serial console on Stdout and the monitor on a Unix socket, through
// which Kill pulls the plug. TCG emulation by default: KVM only when
// OTASEAL_VM_KVM=1, as a KVM guest may hang on some hosts.
type qemu struct {
	Disk   string
	Stdout io.Writer
	cmd    *exec.Cmd
	mon    string
	dir    string
}

// Start powers the VM on.
func (q *qemu) Start(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "otaseal-qemu-")
	if err != nil {
		return err
	}
	q.dir = dir
	q.mon = filepath.Join(dir, "monitor.sock")
	args := []string{
		"-nodefaults", "-no-user-config", "-display", "none",
		"-m", "256", "-smp", "1",
		"-drive", "file=" + q.Disk + ",format=raw,if=virtio,cache=writeback",
		"-netdev", "user,id=net0,ipv6=off", "-device", "virtio-net-pci,netdev=net0",
		"-serial", "stdio",
		"-monitor", "unix:" + q.mon + ",server=on,wait=off",
	}
	if os.Getenv("OTASEAL_VM_KVM") == "1" {
		args = append(args, "-accel", "kvm", "-cpu", "host")
	} else {
		cpu := os.Getenv("OTASEAL_VM_CPU")
		if cpu == "" {
			cpu = "max"
		}
		args = append(args, "-accel", "tcg", "-cpu", cpu)
	}
	q.cmd = exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	q.cmd.Stdout = q.Stdout
	q.cmd.Stderr = q.Stdout
	return q.cmd.Start()
}

// Wait waits for the VM to power off (or be killed).
func (q *qemu) Wait() error {
	err := q.cmd.Wait()
	os.RemoveAll(q.dir)
	return err
}

// Kill cuts the power: "quit" on the monitor ends QEMU at once, with no
// shutdown in the guest; what the guest had not written to the disk is
// lost, as in a power cut.
func (q *qemu) Kill() error {
	var c net.Conn
	var err error
	for i := 0; i < 50; i++ {
		if c, err = net.Dial("unix", q.mon); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("qemu monitor: %w", err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "quit\n"); err != nil {
		return err
	}
	// Read until QEMU closes the monitor: it quits then. Closing our end
	// first can make QEMU drop the command unread.
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, err = io.Copy(io.Discard, c)
	return err
}
