package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// device is one VM device: its disk, built from the factory image.
type device struct {
	disk string
	r    *releases
}

func newDevice(t *testing.T, r *releases, s *updateServer, factory string, factorySV uint64) *device {
	d := &device{disk: filepath.Join(t.TempDir(), "disk.img"), r: r}
	require.NoError(t, buildDisk(r.cfg, r.images[factory], deviceConfig{Server: s.guestURL, HardwareID: hw,
		FactoryVersion: factory, FactorySecurityVersion: factorySV, Root: s.root}, d.disk))
	return d
}

// slotHash is the SHA-256 of the first n bytes of slot "a" or "b", read
// from the disk on the host.
func (d *device) slotHash(t *testing.T, slot string, n int64) string {
	f, err := os.Open(d.disk)
	require.NoError(t, err)
	defer f.Close()
	start := map[string]int64{"a": slotAStart, "b": slotBStart}[slot] * sectorSize
	h := sha256.New()
	_, err = io.Copy(h, io.NewSectionReader(f, start, n))
	require.NoError(t, err)
	return hex.EncodeToString(h.Sum(nil))
}

// line is one line of the serial console and when the host read it.
type line struct {
	at   time.Time
	text string
}

// run is one power-on of a device, read through its serial console.
type vmRun struct {
	t     *testing.T
	vm    *qemu
	mu    sync.Mutex
	lines []line
	cond  *sync.Cond
	done  bool
	err   error
}

// powerOn starts the VM; the test reads its console with waitFor.
func (d *device) powerOn(t *testing.T) *vmRun {
	pr, pw := io.Pipe()
	r := &vmRun{t: t, vm: &qemu{Disk: d.disk, Stdout: pw}}
	r.cond = sync.NewCond(&r.mu)
	require.NoError(t, r.vm.Start(context.Background()))
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			r.mu.Lock()
			r.lines = append(r.lines, line{time.Now(), strings.TrimRight(sc.Text(), "\r")})
			r.cond.Broadcast()
			r.mu.Unlock()
		}
	}()
	go func() {
		err := r.vm.Wait()
		pw.Close()
		time.Sleep(50 * time.Millisecond) // let the reader take the last lines
		r.mu.Lock()
		r.done, r.err = true, err
		r.cond.Broadcast()
		r.mu.Unlock()
	}()
	t.Cleanup(func() {
		r.mu.Lock()
		done := r.done
		r.mu.Unlock()
		if !done {
			_ = r.vm.Kill()
			r.wait(30 * time.Second)
		}
		if t.Failed() || os.Getenv("OTASEAL_VM_CONSOLE") == "1" {
			t.Logf("serial console:\n%s", r.console())
		}
	})
	return r
}

// waitFor waits until a line after index from contains s; it returns the
// line's index, or -1 when the VM ended or the timeout passed first.
func (r *vmRun) waitFor(from int, s string, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() { r.mu.Lock(); r.cond.Broadcast(); r.mu.Unlock() })
	defer timer.Stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := max(from, 0); ; {
		for ; i < len(r.lines); i++ {
			if strings.Contains(r.lines[i].text, s) {
				return i
			}
		}
		if r.done || time.Now().After(deadline) {
			return -1
		}
		r.cond.Wait()
	}
}

// wait waits for the VM to end and reports whether it did in time.
func (r *vmRun) wait(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() { r.mu.Lock(); r.cond.Broadcast(); r.mu.Unlock() })
	defer timer.Stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	for !r.done && time.Now().Before(deadline) {
		r.cond.Wait()
	}
	return r.done
}

// untilPowerOff waits for the guest's own power-off and fails the test if
// it does not come.
func (r *vmRun) untilPowerOff(timeout time.Duration) {
	r.t.Helper()
	if !r.wait(timeout) {
		r.t.Fatalf("the VM did not power off within %v", timeout)
	}
	require.NotEqual(r.t, -1, r.find(0, "OTASEAL poweroff"), "the guest powered off by itself")
}

func (r *vmRun) find(from int, s string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := max(from, 0); i < len(r.lines); i++ {
		if strings.Contains(r.lines[i].text, s) {
			return i
		}
	}
	return -1
}

func (r *vmRun) count(s string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, l := range r.lines {
		if strings.Contains(l.text, s) {
			n++
		}
	}
	return n
}

func (r *vmRun) snapshot() []line {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]line(nil), r.lines...)
}

func (r *vmRun) at(i int) line {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lines[i]
}

func (r *vmRun) console() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, l := range r.lines {
		fmt.Fprintf(&b, "%6.2f ", l.at.Sub(r.lines[0].at).Seconds())
		b.WriteString(l.text)
		b.WriteByte('\n')
	}
	return b.String()
}

// inOrder checks that the console holds each of want, in this order, and
// returns their line indexes.
func (r *vmRun) inOrder(want ...string) []int {
	r.t.Helper()
	var idx []int
	from := 0
	for _, w := range want {
		i := r.find(from, w)
		if i < 0 {
			r.t.Fatalf("console lacks %q after line %d", w, from)
		}
		idx = append(idx, i)
		from = i + 1
	}
	return idx
}
