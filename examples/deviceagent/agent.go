package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/rollback"
	"github.com/otaseal/otaseal/verify"
)

// agent is one device: its trusted state, its clock, its TUF client and
// its two slots.
type agent struct {
	cfg    *config
	state  *rollback.State
	client *verify.Client
	store  *rollback.FileStore // locked until close
	slots  map[string]string   // slot name -> file
	log    *slog.Logger
}

// close releases the state directory for the next agent.
func (a *agent) close() error { return a.store.Close() }

func openAgent(ctx context.Context, c *config, log *slog.Logger) (a *agent, err error) {
	if err := os.MkdirAll(c.stateDir, 0o700); err != nil {
		return nil, err
	}
	store, err := rollback.OpenFileStore(c.stateDir, rollback.FileStoreOptions{Logger: log})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = store.Close()
		}
	}()
	a = &agent{cfg: c, log: log, store: store, slots: map[string]string{"a": c.slotA, "b": c.slotB}}
	// A board without a hardware counter; a real one passes a TPM NV or
	// eFuse counter as rollback.StateOptions.Counter.
	a.state, err = rollback.OpenState(ctx, store, rollback.StateOptions{HardwareID: c.hardwareID, AllowNoCounter: true,
		Policy: rollback.InstallPolicy{AllowDowngrade: c.allowDowngrade}})
	if err != nil {
		return nil, err
	}
	clock, err := rollback.OpenTrustedClock(ctx, store, rollback.TrustedClockOptions{Now: time.Now, Logger: log})
	if err != nil {
		return nil, err
	}
	if err := a.provision(ctx); err != nil {
		return nil, err
	}
	trust := verify.StateTrustStore{State: a.state, Logger: log}
	// The -root file is the root shipped with the device: installed on the
	// first start, and again if the stored root is ever lost.
	var shipped []byte
	if c.rootFile != "" {
		if shipped, err = os.ReadFile(c.rootFile); err != nil {
			return nil, fileErr("root", c.rootFile, err)
		}
	}
	httpClient, err := httpClientFor(c)
	if err != nil {
		return nil, err
	}
	a.client, err = verify.New(ctx, verify.Config{
		MetadataURL: c.server + "/metadata/",
		TargetsURL:  c.server + "/targets/",
		Fetcher:     &verify.HTTPFetcher{Client: httpClient, UserAgent: "otaseal-deviceagent", Retries: retries(c.retries), Logger: log},
		Store:       trust,
		Clock:       clock,
		ShippedRoot: shipped,
		Logger:      log,
	})
	if errors.Is(err, verify.ErrNoTrustedRoot) {
		return nil, errors.New("no trusted root yet: pass -root on first start")
	}
	if err != nil {
		return nil, err
	}
	return a, a.resume(ctx)
}

// provision records the factory image in slot A on a device without state.
func (a *agent) provision(ctx context.Context) error {
	st, err := a.state.Status(ctx)
	if err != nil {
		return err
	}
	if st.Installed != nil {
		return nil
	}
	if a.cfg.factoryVersion == "" {
		return errors.New("device not provisioned: pass -factory-version and -factory-security-version on first start")
	}
	v, err := manifest.ParseVersion(a.cfg.factoryVersion)
	if err != nil {
		return err
	}
	length, sum, err := hashFile(a.slots["a"])
	if err != nil {
		return fmt.Errorf("reading the factory image: %w", fileErr("slot-a", a.slots["a"], err))
	}
	img := rollback.Image{HardwareID: a.cfg.hardwareID, TargetPath: "factory/" + v.String(), Version: v,
		SecurityVersion: a.cfg.factorySecurityVersion, Length: length, SHA256: sum, Slot: "a"}
	if err := a.state.Provision(ctx, img); err != nil {
		return err
	}
	a.log.Info("provisioned", "version", v, "security_version", img.SecurityVersion, "slot", "a")
	return nil
}

// retries maps the flag (0 means none) to HTTPFetcher.Retries (0 means
// the default, negative none).
func retries(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}

func httpClientFor(c *config) (*http.Client, error) {
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.serverCA != "" {
		pem, err := os.ReadFile(c.serverCA)
		if err != nil {
			return nil, fileErr("server-ca", c.serverCA, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-server-ca %s: no certificate", c.serverCA)
		}
		tlsConf.RootCAs = pool
	}
	if c.clientCert != "" {
		cert, err := tls.LoadX509KeyPair(c.clientCert, c.clientKey)
		if err != nil {
			return nil, err
		}
		tlsConf.Certificates = []tls.Certificate{cert}
	}
	// Each step before the body is bounded, so a server that accepts the
	// connection and never answers fails the fetch (as a network failure)
	// instead of hanging the agent; the fetcher's speed guard bounds the
	// body. No bound on the whole request: a full image over a slow link
	// may rightly take an hour.
	dialer := &net.Dialer{Timeout: c.timeout, KeepAlive: 30 * time.Second}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	tr.DialContext = dialer.DialContext
	tr.TLSHandshakeTimeout = c.timeout
	tr.ResponseHeaderTimeout = c.timeout
	return &http.Client{Transport: tr}, nil
}

// resume finishes or rolls back an install a kill interrupted, and checks
// that the active slot holds the installed image.
func (a *agent) resume(ctx context.Context) error {
	st, err := a.state.Status(ctx)
	if err != nil {
		return err
	}
	if st.Pending != nil {
		p := st.Pending
		if a.checkSlot(p) == nil {
			// Killed after the image was written and checked: this is the
			// boot into the new slot.
			a.log.Info("resuming: pending image complete; booting it", "version", p.Version, "slot", p.Slot)
			if err := a.bootAndConfirm(ctx, p); err != nil {
				// Reverted (or the state store failed, which the status
				// read below reports): keep running the old image.
				a.log.Warn("resumed install not confirmed", "err", err)
			}
		} else {
			a.log.Warn("resuming: pending image incomplete; rolling back", "version", p.Version, "slot", p.Slot)
			if _, err := a.state.Revert(ctx); err != nil {
				return err
			}
		}
		if st, err = a.state.Status(ctx); err != nil {
			return err
		}
	}
	if err := a.checkSlot(st.Installed); err != nil {
		return fmt.Errorf("%w: refusing to run", err)
	}
	a.log.Info("running", "version", st.Installed.Version, "slot", st.Installed.Slot, "security_floor", st.Floors[a.cfg.hardwareID])
	return nil
}

// cycle is one update check.
func (a *agent) cycle(ctx context.Context) error {
	if err := a.client.Refresh(ctx); err != nil {
		if isNetwork(err) {
			return fmt.Errorf("fetching metadata: %w", err)
		}
		return fmt.Errorf("metadata refused: %w", err)
	}
	st, err := a.state.Status(ctx)
	if err != nil {
		return err
	}
	u, err := a.client.Select(ctx, a.state)
	if errors.Is(err, verify.ErrNoUpdate) {
		a.log.Info("up to date", "version", st.Installed.Version, "reason", err)
		return nil
	}
	if err != nil {
		return err
	}
	fw := u.Release.Firmware
	a.log.Info("security notice", "version", fw.Version, "security_version", fw.SecurityVersion,
		"severity", fw.Severity, "advisories", fw.Advisories, "notes", fw.Notes)

	target := "b"
	if st.Installed.Slot == "b" {
		target = "a"
	}
	img := rollback.Image{HardwareID: a.cfg.hardwareID, TargetPath: u.Release.Path, Version: fw.Version,
		SecurityVersion: fw.SecurityVersion, Length: u.Release.File.Length, SHA256: u.Release.File.Hashes["sha256"], Slot: target}
	// Pending before a byte is written: after a power cut the state says
	// which slot may hold a partial image.
	if err := a.state.Begin(ctx, img); err != nil {
		return err
	}
	err = a.install(ctx, u, &img, st.Installed)
	if errors.Is(err, errStateChanged) {
		// The pending record is no longer ours to revert.
		return err
	}
	if err != nil {
		if _, rerr := a.state.Revert(ctx); rerr != nil {
			return errors.Join(err, rerr)
		}
		if isNetwork(err) {
			return fmt.Errorf("downloading %s: %w", fw.Version, err)
		}
		return fmt.Errorf("install of %s refused: %w", fw.Version, err)
	}
	return a.bootAndConfirm(ctx, &img)
}

// install writes the update into img's slot: through the delta if there
// is one, and the full image if there is none or the delta fails.
func (a *agent) install(ctx context.Context, u *verify.Update, img, installed *rollback.Image) error {
	err := a.writeSlot(ctx, u, img, installed)
	if err == nil || u.Patch == nil || errors.Is(err, errStateChanged) {
		return err
	}
	a.log.Warn("delta refused; fetching the full image", "err", err)
	full := *u
	full.Patch = nil
	return a.writeSlot(ctx, &full, img, installed)
}

// writeSlot streams the update into img's slot file; nothing in it counts
// until Install returned nil.
func (a *agent) writeSlot(ctx context.Context, u *verify.Update, img, installed *rollback.Image) error {
	slot := img.Slot
	f, err := a.openInactiveSlot(ctx, img)
	if err != nil {
		return err
	}
	defer f.Close()
	active, err := os.Open(a.slots[installed.Slot])
	if err != nil {
		return fileErr("slot-"+installed.Slot, a.slots[installed.Slot], err)
	}
	defer active.Close()
	how := "full image"
	if u.Patch != nil {
		how = "delta " + u.Patch.Path
	}
	a.log.Info("writing slot", "slot", slot, "version", u.Release.Firmware.Version, "via", how, "bytes", u.Release.File.Length)
	pw := &progress{w: f, total: u.Release.File.Length, log: a.log}
	opts := verify.InstallOptions{Installed: active, InstalledSize: installed.Length, ScratchDir: filepath.Dir(a.slots[slot])}
	if err := a.client.Install(ctx, u, pw, opts); err != nil {
		return err
	}
	// The slot was opened without truncation: cut off what an older,
	// longer image left after the new one.
	if err := f.Truncate(pw.done); err != nil {
		return err
	}
	return f.Sync()
}

// errStateChanged reports that the device state no longer says this
// install may write its slot: another agent on the same state directory,
// or a revert or confirm since the cycle read the state.
var errStateChanged = errors.New("device state changed during the install")

// openInactiveSlot opens img's slot for writing, and only after checking,
// against the state as it is now, that the install of img is still
// pending and that its slot is not the one the installed image runs from.
// The state the cycle read earlier is not enough: two agents on one state
// directory once emptied the active slot when one confirmed slot b and the
// other's full-image fallback reopened b with truncation. The file is
// opened without O_TRUNC; writeSlot cuts it to length once written.
func (a *agent) openInactiveSlot(ctx context.Context, img *rollback.Image) (*os.File, error) {
	st, err := a.state.Status(ctx)
	if err != nil {
		return nil, err
	}
	switch {
	case st.Installed == nil || st.Installed.Slot == img.Slot:
		return nil, fmt.Errorf("%w: %w: slot %s runs the installed image; refusing to write it", errStateChanged, rollback.ErrActiveSlot, img.Slot)
	case st.Pending == nil || !st.Pending.Equal(img):
		return nil, fmt.Errorf("%w: the install of %s into slot %s is no longer pending; refusing to write the slot", errStateChanged, img.Version, img.Slot)
	}
	return os.OpenFile(a.slots[img.Slot], os.O_CREATE|os.O_WRONLY, 0o644)
}

// bootAndConfirm stands in for the reboot into the new slot, runs the
// health check there, and confirms (raising the floor) or reverts.
func (a *agent) bootAndConfirm(ctx context.Context, img *rollback.Image) error {
	a.log.Info("switching to slot", "slot", img.Slot, "version", img.Version)
	if err := a.healthy(ctx, img); err != nil {
		a.log.Error("health check failed; reverting to the previous slot", "version", img.Version, "err", err)
		if _, rerr := a.state.Revert(ctx); rerr != nil {
			return errors.Join(err, rerr)
		}
		return fmt.Errorf("health check of %s: %w", img.Version, err)
	}
	done, err := a.state.Confirm(ctx)
	if err != nil {
		return err
	}
	a.log.Info("update confirmed", "version", done.Version, "slot", done.Slot, "security_floor", done.SecurityVersion)
	return nil
}

func (a *agent) healthy(ctx context.Context, img *rollback.Image) error {
	if err := a.checkSlot(img); err != nil {
		return err
	}
	if a.cfg.healthCheck == "" {
		return nil
	}
	cmd := exec.CommandContext(ctx, "sh", "-c", a.cfg.healthCheck)
	cmd.Env = append(os.Environ(), "OTASEAL_SLOT="+img.Slot, "OTASEAL_SLOT_FILE="+a.slots[img.Slot], "OTASEAL_VERSION="+img.Version.String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// checkSlot returns nil if the image's slot holds exactly the image, and
// says why not otherwise.
func (a *agent) checkSlot(img *rollback.Image) error {
	path := a.slots[img.Slot]
	length, sum, err := hashFile(path)
	switch {
	case err != nil:
		return fmt.Errorf("slot %s: %w", img.Slot, fileErr("slot-"+img.Slot, path, err))
	case length != img.Length || !bytes.Equal(sum, img.SHA256):
		return fmt.Errorf("slot %s (%s) does not hold the image %s", img.Slot, path, img.Version)
	}
	return nil
}

// fileErr words a file error the way an operator reads it, naming the
// flag that gave the path.
func fileErr(flagName, path string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("-%s %s: file not found", flagName, path)
	}
	return fmt.Errorf("-%s %s: %w", flagName, path, err)
}

func hashFile(path string) (int64, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return n, h.Sum(nil), err
}

// progress logs every quarter of a slot write.
type progress struct {
	w           io.Writer
	total, done int64
	lastQuarter int64
	log         *slog.Logger
}

func (p *progress) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.done += int64(n)
	if p.total > 0 {
		if q := p.done * 4 / p.total; q > p.lastQuarter {
			p.lastQuarter = q
			p.log.Info("progress", "written", p.done, "of", p.total, "percent", q*25)
		}
	}
	return n, err
}
