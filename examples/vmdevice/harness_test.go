package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/delta"
	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

const hw = "acme-gw-r2"

// vmParts finds what the VM scenarios need, or skips (fails under
// CI=true) saying which Debian package to install. The scenarios boot
// QEMU many times, so a plain go test skips them unless CI=true or
// OTASEAL_VM=1.
func vmParts(t *testing.T) *buildConfig {
	t.Helper()
	ci := os.Getenv("CI") == "true"
	if !ci && os.Getenv("OTASEAL_VM") != "1" {
		t.Skip("VM scenarios boot QEMU for minutes: run them with OTASEAL_VM=1 (CI=true runs them always)")
	}
	missing := func(what string) {
		t.Helper()
		msg := what + ": install the Debian packages .ci/run installs (qemu-system-x86 grub-pc-bin grub-common busybox-static e2fsprogs) and unpack linux-image-cloud-amd64's kernel package into $OTASEAL_VM_KERNEL"
		if ci {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	for _, tool := range []string{"qemu-system-x86_64", "grub-mkimage", "grub-editenv", "mke2fs"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing(tool + " not found")
		}
	}
	c := &buildConfig{KernelDir: os.Getenv("OTASEAL_VM_KERNEL"), Busybox: "/bin/busybox", GrubDir: "/usr/lib/grub/i386-pc"}
	if c.KernelDir == "" {
		c.KernelDir = filepath.Join(cacheDir(t), "kernel")
	}
	if _, err := kernelImage(c.KernelDir); err != nil {
		missing("no kernel: " + err.Error())
	}
	if _, err := os.Stat(filepath.Join(c.GrubDir, "boot.img")); err != nil {
		missing("GRUB for BIOS (grub-pc-bin) not found")
	}
	if !isStatic(c.Busybox) {
		missing("no static busybox at /bin/busybox (busybox-static)")
	}
	return c
}

// isStatic reports whether path is an ELF executable without an
// interpreter: one that runs in the bare initramfs.
func isStatic(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

// cacheDir keeps the kernel and the built release images between runs:
// $OTASEAL_VM_CACHE, else the user cache directory.
func cacheDir(t *testing.T) string {
	if d := os.Getenv("OTASEAL_VM_CACHE"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	require.NoError(t, err)
	return filepath.Join(d, "otaseal-vm")
}

// releases are the slot images the scenarios publish, built once per test
// binary and cached on disk by the hash of everything that goes in.
type releases struct {
	cfg    *buildConfig
	images map[string]string // version -> image file
	cache  string
}

var (
	patchMu    sync.Mutex
	buildOnce  sync.Once
	builtParts *releases
	buildErr   error
)

func buildReleases(t *testing.T) *releases {
	c := vmParts(t)
	buildOnce.Do(func() {
		start := time.Now()
		builtParts, buildErr = doBuild(c, cacheDir(t))
		t.Logf("release images ready in %v", time.Since(start).Round(time.Millisecond))
	})
	require.NoError(t, buildErr)
	return builtParts
}

func doBuild(c *buildConfig, cache string) (*releases, error) {
	out := filepath.Join(cache, "build")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	module, err := moduleRoot(wd)
	if err != nil {
		return nil, err
	}
	cc := *c
	cc.Agent = filepath.Join(out, "deviceagent")
	if err := buildAgent(context.Background(), module, cc.Agent); err != nil {
		return nil, err
	}
	kernel, err := kernelImage(c.KernelDir)
	if err != nil {
		return nil, err
	}
	r := &releases{cfg: &cc, images: map[string]string{}, cache: out}
	for _, rel := range []struct {
		version string
		healthy bool
	}{{"1.0.0", true}, {"1.1.0", true}, {"1.2.0", false}} {
		h := sha256.New()
		for _, f := range []string{cc.Agent, c.Busybox, kernel} {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			h.Write(b)
		}
		fmt.Fprintf(h, "%s %v %q %q %q %d", rel.version, rel.healthy, initScript, brokenInitScript, grubConfig, slotImageSize)
		img := filepath.Join(out, fmt.Sprintf("release-%s-%x.img", rel.version, h.Sum(nil)[:8]))
		if _, err := os.Stat(img); err != nil {
			if err := buildSlotImage(&cc, rel.version, rel.healthy, img+".tmp"); err != nil {
				return nil, err
			}
			if err := os.Rename(img+".tmp", img); err != nil {
				return nil, err
			}
		}
		r.images[rel.version] = img
	}
	return r, nil
}

// patch returns the streaming delta from one release image to another,
// cached by the two images' hashes.
func (r *releases) patch(t *testing.T, from, to string) []byte {
	patchMu.Lock() // parallel tests share the cache
	defer patchMu.Unlock()
	a, err := os.ReadFile(r.images[from])
	require.NoError(t, err)
	b, err := os.ReadFile(r.images[to])
	require.NoError(t, err)
	ha, hb := sha256.Sum256(a), sha256.Sum256(b)
	p := filepath.Join(r.cache, fmt.Sprintf("delta-%x-%x.otz", ha[:8], hb[:8]))
	if cached, err := os.ReadFile(p); err == nil {
		return cached
	}
	start := time.Now()
	d, err := delta.Diff(a, b)
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, d.Encode(&buf, delta.FormatStream))
	require.NoError(t, os.WriteFile(p, buf.Bytes(), 0o644))
	t.Logf("delta %s -> %s: %d bytes, made in %v", from, to, buf.Len(), time.Since(start).Round(time.Millisecond))
	return buf.Bytes()
}

func (r *releases) sha256(t *testing.T, version string) string {
	b, err := os.ReadFile(r.images[version])
	require.NoError(t, err)
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// release is one release a test server publishes.
type release struct {
	version         string
	securityVersion uint64
}

// updateServer is a repository signed with package sign and served on
// the host's 127.0.0.1, which the guest reaches as 10.0.2.2.
type updateServer struct {
	guestURL string
	root     []byte
	repo     *sign.Repository
	keys     map[string]*sign.Signer
	deltaTx  atomic.Int64 // bytes of delta targets served
	imageTx  atomic.Int64 // bytes of full images served
}

func newUpdateServer(t *testing.T, r *releases, rels []release, deltas [][2]string) *updateServer {
	ctx := context.Background()
	dir := t.TempDir()
	s := &updateServer{keys: map[string]*sign.Signer{}}
	roles := map[string]sign.RoleKeys{}
	for _, role := range []string{"root", "targets", "snapshot", "timestamp"} {
		seed := sha256.Sum256([]byte("vmdevice test " + role))
		k, err := sign.SignerFromPrivateKey(ctx, ed25519.NewKeyFromSeed(seed[:]))
		require.NoError(t, err)
		s.keys[role] = k
		roles[role] = sign.RoleKeys{Threshold: 1, Keys: []*manifest.Key{k.Key()}}
	}
	root, err := sign.NewRoot(sign.RootSpec{Roles: roles}, time.Now().AddDate(1, 0, 0))
	require.NoError(t, err)
	p, err := sign.PolicyFromRoot(&root.Signed)
	require.NoError(t, err)
	_, err = sign.SignRole(ctx, p, "root", root, []*sign.Signer{s.keys["root"]})
	require.NoError(t, err)
	storage, err := sign.NewDirStorage(filepath.Join(dir, "repo"))
	require.NoError(t, err)
	s.repo, err = sign.CreateRepository(ctx, storage, root, sign.RepositoryOptions{TempDir: dir})
	require.NoError(t, err)
	t.Cleanup(func() { s.repo.Close() })
	for _, rel := range rels {
		f, err := os.Open(r.images[rel.version])
		require.NoError(t, err)
		fw := manifest.Firmware{Version: manifest.MustParseVersion(rel.version), SecurityVersion: rel.securityVersion,
			HardwareIDs: []string{hw}, Severity: manifest.SeveritySecurity, Advisories: []string{"CVE-2026-" + rel.version}}
		require.NoError(t, s.repo.AddFirmware(ctx, hw+"/"+rel.version+"/firmware.bin", f, fw))
		f.Close()
	}
	for _, d := range deltas {
		patch := r.patch(t, d[0], d[1])
		require.NoError(t, s.repo.AddDelta(ctx, hw+"/deltas/"+d[0]+"-"+d[1]+".otz",
			hw+"/"+d[0]+"/firmware.bin", hw+"/"+d[1]+"/firmware.bin", bytes.NewReader(patch)))
	}
	s.publish(t, "targets", "snapshot", "timestamp")
	s.root, err = root.ToBytes(false)
	require.NoError(t, err)

	files := http.FileServer(http.Dir(filepath.Join(dir, "repo")))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		cw := &countingWriter{ResponseWriter: w}
		files.ServeHTTP(cw, req)
		switch {
		case strings.Contains(req.URL.Path, "/deltas/"):
			s.deltaTx.Add(cw.n)
		case strings.HasPrefix(req.URL.Path, "/targets/"):
			s.imageTx.Add(cw.n)
		}
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	s.guestURL = fmt.Sprintf("http://10.0.2.2:%d", ln.Addr().(*net.TCPAddr).Port)
	return s
}

func (s *updateServer) publish(t *testing.T, roles ...string) {
	var signers []*sign.Signer
	for _, r := range roles {
		signers = append(signers, s.keys[r])
	}
	require.NoError(t, s.repo.Publish(context.Background(), signers))
}

type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n += int64(n)
	return n, err
}

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
