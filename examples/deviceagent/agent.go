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
	"log/slog"
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
	slots  map[string]string // slot name -> file
	log    *slog.Logger
}

func openAgent(ctx context.Context, c *config, log *slog.Logger) (*agent, error) {
	if err := os.MkdirAll(c.stateDir, 0o700); err != nil {
		return nil, err
	}
	store, err := rollback.OpenFileStore(c.stateDir, rollback.FileStoreOptions{
		OnDamage: func(name, detail string) {
			log.Warn("damaged state record; using the other copy", "record", name, "detail", detail)
		},
	})
	if err != nil {
		return nil, err
	}
	a := &agent{cfg: c, log: log, slots: map[string]string{"a": c.slotA, "b": c.slotB}}
	// A board without a hardware counter; a real one passes a TPM NV or
	// eFuse counter as rollback.StateOptions.Counter.
	a.state, err = rollback.OpenState(ctx, store, rollback.StateOptions{HardwareID: c.hardwareID, AllowNoCounter: true,
		Policy: rollback.InstallPolicy{AllowDowngrade: c.allowDowngrade}})
	if err != nil {
		return nil, err
	}
	clock, err := rollback.OpenTrustedClock(ctx, store, rollback.TrustedClockOptions{Now: time.Now})
	if err != nil {
		return nil, err
	}
	if err := a.provision(ctx); err != nil {
		return nil, err
	}
	trust := verify.StateTrustStore{State: a.state, Logger: log}
	if root, err := trust.LoadMetadata(ctx, manifest.RoleRoot); err != nil {
		return nil, err
	} else if root == nil {
		if c.rootFile == "" {
			return nil, errors.New("no trusted root yet: pass -root on first start")
		}
		data, err := os.ReadFile(c.rootFile)
		if err != nil {
			return nil, err
		}
		if err := verify.Bootstrap(ctx, trust, data, manifest.Limits{}); err != nil {
			return nil, err
		}
		log.Info("trusted root installed", "file", c.rootFile)
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
		Logger:      log,
	})
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
		return fmt.Errorf("reading the factory image: %w", err)
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
			return nil, err
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
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
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
		if a.slotHolds(p) {
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
	if !a.slotHolds(st.Installed) {
		return fmt.Errorf("slot %s does not hold the installed image %s: refusing to run", st.Installed.Slot, st.Installed.Version)
	}
	a.log.Info("running", "version", st.Installed.Version, "slot", st.Installed.Slot, "security_floor", st.Floors[a.cfg.hardwareID])
	return nil
}

// cycle is one update check.
func (a *agent) cycle(ctx context.Context) error {
	if err := a.client.Refresh(ctx); err != nil {
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
	err = a.writeSlot(ctx, u, target, st.Installed)
	if err != nil && u.Patch != nil {
		a.log.Warn("delta refused; fetching the full image", "err", err)
		full := *u
		full.Patch = nil
		err = a.writeSlot(ctx, &full, target, st.Installed)
	}
	if err != nil {
		if _, rerr := a.state.Revert(ctx); rerr != nil {
			return errors.Join(err, rerr)
		}
		return fmt.Errorf("install of %s refused: %w", fw.Version, err)
	}
	return a.bootAndConfirm(ctx, &img)
}

// writeSlot streams the update into the slot file; nothing in it counts
// until Install returned nil.
func (a *agent) writeSlot(ctx context.Context, u *verify.Update, slot string, installed *rollback.Image) error {
	f, err := os.OpenFile(a.slots[slot], os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	active, err := os.Open(a.slots[installed.Slot])
	if err != nil {
		return err
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
	return f.Sync()
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
	if !a.slotHolds(img) {
		return errors.New("slot does not hold the image")
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

// slotHolds reports whether the image's slot holds exactly the image.
func (a *agent) slotHolds(img *rollback.Image) bool {
	length, sum, err := hashFile(a.slots[img.Slot])
	return err == nil && length == img.Length && bytes.Equal(sum, img.SHA256)
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
