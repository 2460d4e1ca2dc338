// Command encbench measures what encryption costs a device: it publishes
// the same image twice, plain and encrypted, serves both on 127.0.0.1, and
// installs each in a child process (verify.Client.Install into a slot
// file, fsynced), alternating, several times. It prints the install time
// (median) and the child's peak RSS (VmHWM, largest) of each, and the
// differences. Linux only, for the peak RSS.
//
// Usage:
//
//	go run ./examples/encbench [-size-mib 100] [-runs 5] [-kem mlkem768-x25519] [-cipher aes-256-gcm] [-chunk 65536]
//
// The target of issue 20 is at most 10% more time and at most 1 MiB more
// peak RSS for the encrypted install.
package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/otaseal/otaseal/encrypt"
	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
	"github.com/otaseal/otaseal/verify"
)

const (
	plainPath     = "bench-plain/1.0.0/firmware.bin"
	encryptedPath = "bench-enc/1.0.0/firmware.bin"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "child" {
		if err := child(os.Args[2:]); err != nil {
			fmt.Fprintf(os.Stderr, "encbench child: %v\n", err)
			os.Exit(1)
		}
		return
	}
	sizeMiB := flag.Int("size-mib", 100, "image size in MiB")
	runs := flag.Int("runs", 5, "installs of each kind")
	kemName := flag.String("kem", encrypt.MLKEM768X25519.String(), "recipient KEM: mlkem768-x25519 or x25519")
	cipherName := flag.String("cipher", encrypt.AES256GCM.String(), "chunk cipher: aes-256-gcm or chacha20-poly1305")
	chunk := flag.Int("chunk", encrypt.DefaultChunkSize, "chunk size in bytes")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: encbench [flags]\n\nInstalls the same image plain and encrypted in child processes and compares\ntheir install time and peak RSS.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := run(os.Stdout, *sizeMiB, *runs, *kemName, *cipherName, *chunk); err != nil {
		fmt.Fprintf(os.Stderr, "encbench: %v\n", err)
		os.Exit(1)
	}
}

// run publishes, installs in child processes (this program run with
// "child") and writes the summary to out.
func run(out io.Writer, sizeMiB, runs int, kemName, cipherName string, chunk int) error {
	ctx := context.Background()
	kem, err := encrypt.ParseKEM(kemName)
	if err != nil {
		return err
	}
	cipher, err := encrypt.ParseCipher(cipherName)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "encbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	fmt.Fprintf(os.Stderr, "publishing a %d MiB image plain and encrypted (%v, %v, %d-byte chunks)...\n", sizeMiB, kem, cipher, chunk)
	image := make([]byte, sizeMiB<<20)
	rng := mrand.NewChaCha8([32]byte{1})
	rng.Read(image)
	rootJSON, repo, signers, err := newRepo(ctx, filepath.Join(dir, "repo"), dir)
	if err != nil {
		return err
	}
	defer repo.Close()
	group, err := encrypt.GenerateKey(kem)
	if err != nil {
		return err
	}
	fw := func(hw string) manifest.Firmware {
		return manifest.Firmware{Version: manifest.MustParseVersion("1.0.0"), SecurityVersion: 1, HardwareIDs: []string{hw}}
	}
	if err := repo.AddFirmware(ctx, plainPath, bytes.NewReader(image), fw("bench-plain")); err != nil {
		return err
	}
	if _, err := repo.AddEncryptedFirmware(ctx, encryptedPath, bytes.NewReader(image), fw("bench-enc"),
		sign.EncryptOptions{Recipients: []*encrypt.PublicKey{group.Public()}, Params: encrypt.Params{Cipher: cipher, ChunkSize: chunk}}); err != nil {
		return err
	}
	if err := repo.Publish(ctx, signers); err != nil {
		return err
	}
	image = nil
	rootFile, keyFile := filepath.Join(dir, "root.json"), filepath.Join(dir, "group.key")
	pem, err := encrypt.MarshalPrivateKey(group)
	if err != nil {
		return err
	}
	if err := os.WriteFile(rootFile, rootJSON, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, pem, 0o600); err != nil {
		return err
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(filepath.Join(dir, "repo"))))
	defer srv.Close()
	self, err := os.Executable()
	if err != nil {
		return err
	}

	type sample struct {
		install time.Duration
		rssKiB  int64
		cpu     time.Duration // the child's user + system time, refresh included
	}
	results := map[string][]sample{}
	kinds := []string{"plain", "encrypted"}
	for i := 0; i < runs; i++ {
		for _, kind := range kinds {
			target := plainPath
			if kind == "encrypted" {
				target = encryptedPath
			}
			slot := filepath.Join(dir, "slot-"+kind)
			cmd := exec.Command(self, "child", srv.URL, rootFile, target, keyFile, slot, filepath.Join(dir, fmt.Sprintf("trust-%s-%d", kind, i)))
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("%s install: %v: %s", kind, err, stderr.String())
			}
			var ns, rss int64
			if _, err := fmt.Sscan(stdout.String(), &ns, &rss); err != nil {
				return fmt.Errorf("%s install: %q", kind, stdout.String())
			}
			var cpu time.Duration
			if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
				cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			}
			results[kind] = append(results[kind], sample{time.Duration(ns), rss, cpu})
			os.Remove(slot)
			fmt.Fprintf(os.Stderr, "  run %d %-9s %v (CPU %v), peak RSS %d KiB\n", i+1, kind, time.Duration(ns).Round(time.Millisecond), cpu.Round(time.Millisecond), rss)
		}
	}
	medianOf := func(s []sample, f func(sample) time.Duration) time.Duration {
		d := make([]time.Duration, len(s))
		for i, x := range s {
			d[i] = f(x)
		}
		slices.Sort(d)
		return d[len(d)/2]
	}
	median := func(s []sample) time.Duration { return medianOf(s, func(x sample) time.Duration { return x.install }) }
	medianCPU := func(s []sample) time.Duration { return medianOf(s, func(x sample) time.Duration { return x.cpu }) }
	peak := func(s []sample) int64 {
		var m int64
		for _, x := range s {
			m = max(m, x.rssKiB)
		}
		return m
	}
	fmt.Fprintf(out, "%d MiB image, %d runs each, %v recipient, %v, %d-byte chunks\n", sizeMiB, runs, kem, cipher, chunk)
	fmt.Fprintf(out, "%-10s %14s %10s %14s %16s\n", "install", "median time", "MiB/s", "median CPU", "peak RSS (KiB)")
	for _, kind := range kinds {
		m := median(results[kind])
		fmt.Fprintf(out, "%-10s %14v %10.0f %14v %16d\n", kind, m.Round(time.Millisecond), float64(sizeMiB)/m.Seconds(),
			medianCPU(results[kind]).Round(time.Millisecond), peak(results[kind]))
	}
	mp, me := median(results["plain"]), median(results["encrypted"])
	cp, ce := medianCPU(results["plain"]), medianCPU(results["encrypted"])
	fmt.Fprintf(out, "encrypted vs plain: time %+.1f%%, CPU %+.1f%%, peak RSS %+d KiB\n", 100*(me.Seconds()/mp.Seconds()-1),
		100*(ce.Seconds()/cp.Seconds()-1), peak(results["encrypted"])-peak(results["plain"]))
	return nil
}

// newRepo creates a repository with one fresh ed25519 key per role.
func newRepo(ctx context.Context, repoDir, tmp string) ([]byte, *sign.Repository, []*sign.Signer, error) {
	keys := map[string]*sign.Signer{}
	roles := map[string]sign.RoleKeys{}
	for _, role := range []string{manifest.RoleRoot, manifest.RoleTargets, manifest.RoleSnapshot, manifest.RoleTimestamp} {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, nil, err
		}
		if keys[role], err = sign.SignerFromPrivateKey(ctx, priv); err != nil {
			return nil, nil, nil, err
		}
		roles[role] = sign.RoleKeys{Threshold: 1, Keys: []*manifest.Key{keys[role].Key()}}
	}
	root, err := sign.NewRoot(sign.RootSpec{Roles: roles}, time.Now().Add(sign.DefaultRootExpiry))
	if err != nil {
		return nil, nil, nil, err
	}
	policy, err := sign.PolicyFromRoot(&root.Signed)
	if err != nil {
		return nil, nil, nil, err
	}
	if _, err := sign.SignRole(ctx, policy, manifest.RoleRoot, root, []*sign.Signer{keys[manifest.RoleRoot]}); err != nil {
		return nil, nil, nil, err
	}
	rootJSON, err := root.ToBytes(false)
	if err != nil {
		return nil, nil, nil, err
	}
	store, err := sign.NewDirStorage(repoDir)
	if err != nil {
		return nil, nil, nil, err
	}
	repo, err := sign.CreateRepository(ctx, store, root, sign.RepositoryOptions{TempDir: tmp})
	if err != nil {
		return nil, nil, nil, err
	}
	return rootJSON, repo, []*sign.Signer{keys[manifest.RoleTargets], keys[manifest.RoleSnapshot], keys[manifest.RoleTimestamp]}, nil
}

// child is one device install: refresh, look the release up, install it
// into the slot file and fsync. It prints the install's nanoseconds.
func child(args []string) error {
	if len(args) != 6 {
		return errors.New("want URL ROOT TARGET KEY SLOT TRUSTDIR")
	}
	url, rootFile, target, keyFile, slot, trustDir := args[0], args[1], args[2], args[3], args[4], args[5]
	ctx := context.Background()
	rootJSON, err := os.ReadFile(rootFile)
	if err != nil {
		return err
	}
	pem, err := os.ReadFile(keyFile)
	if err != nil {
		return err
	}
	key, err := encrypt.ParsePrivateKey(pem)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(trustDir, 0o700); err != nil {
		return err
	}
	store := verify.DirTrustStore{Dir: trustDir}
	if err := verify.Bootstrap(ctx, store, rootJSON, manifest.Limits{}); err != nil {
		return err
	}
	c, err := verify.New(ctx, verify.Config{MetadataURL: url + "/metadata/", TargetsURL: url + "/targets/",
		Store: store, Clock: verify.SystemClock{}, DecryptionKeys: []verify.DecryptionKey{key}})
	if err != nil {
		return err
	}
	if err := c.Refresh(ctx); err != nil {
		return err
	}
	tf, role, err := c.FindTarget(ctx, target)
	if err != nil {
		return err
	}
	fw, err := manifest.FirmwareOf(tf)
	if err != nil {
		return err
	}
	u := &verify.Update{Release: manifest.Release{Path: target, File: tf, Firmware: fw}, Role: role}
	start := time.Now()
	f, err := os.Create(slot)
	if err != nil {
		return err
	}
	err = c.Install(ctx, u, f, verify.InstallOptions{})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	fmt.Println(time.Since(start).Nanoseconds(), peakRSS())
	return nil
}

// peakRSS is the process's peak resident set in KiB (VmHWM). The rusage
// of a child is no measure here: on Linux it starts from the parent's
// resident set at fork, and the parent holds the image it published.
func peakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	return -1
}
