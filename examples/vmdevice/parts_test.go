package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/delta"
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
		// Mark it used, for pruneCache.
		now := time.Now()
		if err := os.Chtimes(img, now, now); err != nil {
			return nil, err
		}
	}
	pruneCache(out, cacheMaxAge)
	return r, nil
}

// cacheMaxAge is how long a cached release image or delta may go unused
// before pruneCache removes it. Every change to the agent makes new
// images (three of 24 MiB), so without pruning the cache grows by a run's
// worth each time the code changes; hours keep a concurrent run's files.
const cacheMaxAge = 6 * time.Hour

// pruneCache removes release images and deltas in dir unused for maxAge.
// Failures are ignored: the cache is an optimisation.
func pruneCache(dir string, maxAge time.Duration) {
	for _, pattern := range []string{"release-*.img", "delta-*.otz"} {
		files, _ := filepath.Glob(filepath.Join(dir, pattern))
		for _, f := range files {
			if fi, err := os.Stat(f); err == nil && time.Since(fi.ModTime()) > maxAge {
				os.Remove(f)
			}
		}
	}
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
		now := time.Now()
		os.Chtimes(p, now, now) // used: kept by pruneCache
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

// pruneCache removes images and deltas unused for longer than its age,
// and nothing else.
func TestPruneCache(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-2 * cacheMaxAge)
	for name, stale := range map[string]bool{
		"release-1.0.0-aa.img": true, "release-1.0.0-bb.img": false,
		"delta-aa-bb.otz": true, "delta-bb-cc.otz": false, "deviceagent": true,
	} {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(name), 0o644))
		if stale {
			require.NoError(t, os.Chtimes(p, old, old))
		}
	}
	pruneCache(dir, cacheMaxAge)
	left, err := filepath.Glob(filepath.Join(dir, "*"))
	require.NoError(t, err)
	for i := range left {
		left[i] = filepath.Base(left[i])
	}
	assert.ElementsMatch(t, []string{"release-1.0.0-bb.img", "delta-bb-cc.otz", "deviceagent"}, left)
}
