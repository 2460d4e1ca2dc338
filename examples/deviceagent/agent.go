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

	"github.com/otaseal/otaseal/fleet"
	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/rollback"
	"github.com/otaseal/otaseal/verify"
)

// agent is one device: its trusted state, the update cycle over it, and
// its two slot files.
type agent struct {
	cfg     *config
	state   *rollback.State
	cycle   *verify.Cycle
	store   *rollback.FileStore    // locked until close
	counter *rollback.StoreCounter // locked until close
	slots   *slotFiles
	boot    bootControl     // which slot the bootloader starts
	failed  *failedReleases // releases not to install again
	log     *slog.Logger
	// nextWave is when a release held back by its staged rollout opens
	// to this device (zero: none): the loop checks again then rather
	// than a whole -interval later.
	nextWave time.Time
	// reporter sends install reports (nil: -reports off); clock is the
	// trusted clock they are dated by.
	reporter *reporter
	clock    *rollback.TrustedClock
}

// close releases the state directory and the counter for the next agent.
func (a *agent) close() error {
	var err error
	if a.counter != nil {
		err = a.counter.Close()
	}
	return errors.Join(err, a.store.Close())
}

func openAgent(ctx context.Context, c *config, log *slog.Logger) (_ *agent, err error) {
	if err := os.MkdirAll(c.stateDir, 0o700); err != nil {
		return nil, err
	}
	store, err := rollback.OpenFileStore(c.stateDir, rollback.FileStoreOptions{Logger: log})
	if err != nil {
		return nil, err
	}
	a := &agent{cfg: c, log: log, store: store, slots: &slotFiles{paths: map[string]string{"a": c.slotA, "b": c.slotB}, log: log}}
	defer func() {
		if err != nil {
			_ = a.close()
		}
	}()
	if a.failed, err = openFailed(c.stateDir); err != nil {
		return nil, err
	}
	// The floor is mirrored in a counter apart from the state, so that
	// whoever rewrites the state alone cannot lower it. A file stands in
	// here; a real board passes its TPM NV index or eFuses.
	if a.counter, err = rollback.OpenFileCounter(filepath.Join(c.stateDir, "counter")); err != nil {
		return nil, err
	}
	a.state, err = rollback.OpenState(ctx, store, rollback.StateOptions{HardwareID: c.hardwareID, Counter: a.counter,
		Policy: rollback.InstallPolicy{AllowDowngrade: c.allowDowngrade}, RolloutID: c.rolloutID})
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
	keys, err := loadDecryptionKeys(c.decryptionKeys, log)
	if err != nil {
		return nil, err
	}
	client, err := verify.New(ctx, verify.Config{
		MetadataURL: c.server + "/metadata/",
		TargetsURL:  c.server + "/targets/",
		Mirrors:     mirrorsOf(c.mirrors),
		Fetcher:     &verify.HTTPFetcher{Client: httpClient, UserAgent: "otaseal-deviceagent", Retries: retries(c.retries), Logger: log},
		Store:       trust,
		Clock:       clock,
		ShippedRoot: shipped,
		Logger:      log,

		// -decryption-key: the device's keys for encrypted releases.
		DecryptionKeys: keys,
	})
	if errors.Is(err, verify.ErrNoTrustedRoot) {
		return nil, errors.New("no trusted root yet: pass -root on first start")
	} else if err != nil {
		return nil, err
	}
	a.cycle = &verify.Cycle{Client: client, State: a.state, Slots: a.slots}
	a.clock = clock
	if a.reporter, err = openReporter(c, httpClient, a.state.RolloutID()); err != nil {
		return nil, err
	}
	if a.boot, err = newBootControl(c, a); err != nil {
		return nil, err
	}
	return a, a.resume(ctx)
}

// provision records the factory image in slot A on a device without state.
// The factory image need not be in the repository, so its record comes
// from the flags rather than from Cycle.Provision.
func (a *agent) provision(ctx context.Context) error {
	st, err := a.state.Status(ctx)
	if err != nil || st.Installed != nil {
		return err
	}
	if a.cfg.factoryVersion == "" {
		return errors.New("device not provisioned: pass -factory-version and -factory-security-version on first start")
	}
	v, err := manifest.ParseVersion(a.cfg.factoryVersion)
	if err != nil {
		return err
	}
	length, sum, err := hashFile(a.cfg.slotA, a.cfg.factoryLength)
	if err != nil {
		return fmt.Errorf("reading the factory image: %w", fileErr("slot-a", a.cfg.slotA, err))
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

// resume runs at every start: it asks the bootloader which slot booted
// and whether it gave up on a trial, lets Cycle.Resume confirm, revert or
// carry on, and brings the bootloader in line with the state. It then
// refuses to run unless the installed slot holds its image.
func (a *agent) resume(ctx context.Context) error {
	booted, err := a.boot.Booted(ctx)
	if err != nil {
		return err
	}
	st, err := a.state.Status(ctx)
	if err != nil {
		return err
	}
	pending := "none"
	if st.Pending != nil {
		pending = st.Pending.Version.String() + " in slot " + st.Pending.Slot
	}
	a.log.Info("booted", "slot", booted, "installed", st.Installed.Version, "installed_slot", st.Installed.Slot,
		"pending", pending, "security_floor", st.Floors[a.cfg.hardwareID], "boot", a.boot)
	if err := a.fellBack(ctx, booted); err != nil {
		return err
	}
	act, img, err := a.cycle.Resume(ctx, booted)
	if errors.Is(err, verify.ErrBootedSlot) {
		// The bootloader started a slot the state does not run, e.g. a
		// trial still armed after a revert the power cut interrupted:
		// point it back at the installed slot and start that.
		a.log.Warn("booted a slot the state does not run; restarting into the installed one", "booted", booted, "installed_slot", st.Installed.Slot)
		return a.restartInto(st.Installed.Slot, err)
	} else if err != nil {
		return err
	}
	switch act {
	case verify.ResumeTrial:
		if err := a.confirm(ctx, img); err != nil {
			a.log.Warn("resumed install not confirmed", "err", err)
		}
	case verify.ResumeReverted:
		a.log.Warn("install reverted: the device started its installed image", "version", img.Version, "slot", img.Slot)
	}
	if st, err = a.state.Status(ctx); err != nil {
		return err
	}
	if st.Pending == nil {
		if err := a.boot.MarkGood(st.Installed.Slot); err != nil {
			return err
		}
		if err := a.boot.ClearFellBack(); err != nil {
			return err
		}
	}
	if ok, err := a.cycle.SlotHolds(*st.Installed); err != nil || !ok {
		return fmt.Errorf("slot %s does not hold the installed %s (%v): refusing to run", st.Installed.Slot, st.Installed.Version, err)
	}
	a.log.Info("running", "version", st.Installed.Version, "slot", st.Installed.Slot, "security_floor", st.Floors[a.cfg.hardwareID],
		"rollout_id", a.state.RolloutID())
	return nil
}

// restartInto makes slot the bootloader's confirmed slot and reboots into
// it; with no real reboot it returns cause.
func (a *agent) restartInto(slot string, cause error) error {
	if err := a.boot.MarkGood(slot); err != nil {
		return errors.Join(cause, err)
	}
	rebooted, err := a.boot.Reboot()
	if err != nil || !rebooted {
		return errors.Join(cause, err)
	}
	return nil
}

// update is one update check: each reason for nothing to do is its own
// line; an update is begun, written, and switched to.
func (a *agent) update(ctx context.Context) error {
	u, err := a.cycle.Check(ctx)
	switch {
	case errors.Is(err, verify.ErrNoUpdate), errors.Is(err, verify.ErrNotEligible), errors.Is(err, verify.ErrWithdrawn),
		errors.Is(err, verify.ErrPaused):
		// Nothing to install now: say why, one line per reason.
		a.logDecision(err)
		return nil
	case errors.Is(err, verify.ErrNoReleases):
		return err
	case err != nil && isNetwork(err):
		return fmt.Errorf("fetching metadata: %w", err)
	case err != nil:
		a.record(ctx, fleet.Failed, nil, fleet.ErrorVerification, err)
		return fmt.Errorf("metadata refused: %w", err)
	}
	for _, n := range u.Notices {
		a.logDecision(n)
	}
	fw := u.Release.Firmware
	a.log.Info("security notice", "version", fw.Version, "security_version", fw.SecurityVersion,
		"severity", fw.Severity, "advisories", fw.Advisories, "notes", fw.Notes)
	st, err := a.state.Status(ctx)
	if err != nil {
		return err
	}
	target := map[string]string{"a": "b", "b": "a"}[st.Installed.Slot]
	if a.failed.has(u.Image(target)) {
		// It failed here before (no confirmed boot, or its health
		// check): trying again would only fail again.
		a.log.Warn("not installing a release that failed on this device before", "version", fw.Version, "target", u.Release.Path)
		return nil
	}
	// Pending before a byte is written: after a power cut the state says
	// which slot may hold a partial image.
	img, err := a.cycle.Begin(ctx, u, target)
	if err != nil {
		return err
	}
	imageLen, _ := manifest.ImageOf(u.Release.File, u.Release.Firmware)
	a.log.Info("writing slot", "slot", target, "version", fw.Version, "delta_offered", u.Patch != nil, "bytes", imageLen, "encrypted", fw.Encryption != nil)
	a.slots.total = imageLen
	a.cycle.ScratchDir = filepath.Dir(a.slots.paths[target])
	rep, err := a.cycle.Install(ctx, u)
	switch {
	case errors.Is(err, verify.ErrStateChanged):
		return err // the pending record is no longer ours to revert
	case err != nil:
		if _, rerr := a.cycle.Revert(ctx); rerr != nil {
			return errors.Join(err, rerr)
		}
		if isNetwork(err) {
			a.record(ctx, fleet.Failed, &img, fleet.ErrorNetwork, err)
			return fmt.Errorf("downloading %s: %w", fw.Version, err)
		}
		a.record(ctx, fleet.Failed, &img, fleet.ErrorVerification, err)
		return fmt.Errorf("install of %s refused: %w", fw.Version, err)
	}
	via := "full image"
	if rep.Patch != "" {
		via = "delta " + rep.Patch
	}
	a.log.Info("slot written", "slot", rep.Slot, "via", via, "downloaded", rep.Downloaded)
	// The reboot into the new slot: the bootloader starts it on trial.
	if err := a.boot.ArmTrial(img.Slot); err != nil {
		return err
	}
	a.log.Info("switching to slot", "slot", img.Slot, "version", img.Version)
	if rebooted, err := a.boot.Reboot(); err != nil || rebooted {
		return err
	}
	if _, img, err = a.cycle.Resume(ctx, img.Slot); err != nil {
		return err
	}
	return a.confirm(ctx, img)
}

// confirm runs the health check on the image on trial, then tells the
// bootloader the slot is good and commits it (Cycle.Confirm checks the
// slot and raises the floor), or records the release as failed, reverts,
// and restarts into the old slot. The bootloader is told first: a power
// cut between the two steps leaves a good slot still pending, which the
// next start confirms; the other order could leave the floor raised on a
// slot the bootloader would give up on.
func (a *agent) confirm(ctx context.Context, img rollback.Image) error {
	err := a.healthHook(ctx, img)
	if err == nil {
		a.log.Info("health check passed", "version", img.Version, "slot", img.Slot)
		if err := a.boot.MarkGood(img.Slot); err != nil {
			return err
		}
		done, cerr := a.cycle.Confirm(ctx)
		if cerr == nil {
			a.log.Info("update confirmed", "version", done.Version, "slot", done.Slot, "security_floor", done.SecurityVersion)
			a.record(ctx, fleet.Confirmed, &done, "", nil)
			return nil
		}
		if err = cerr; !errors.Is(err, verify.ErrSlotContent) {
			return err
		}
	}
	a.log.Error("health check failed; reverting to the previous slot", "version", img.Version, "err", err)
	if ferr := a.failed.add(img); ferr != nil {
		return errors.Join(err, ferr)
	}
	if _, rerr := a.cycle.Revert(ctx); rerr != nil {
		return errors.Join(err, rerr)
	}
	a.record(ctx, fleet.Reverted, &img, "", err)
	st, serr := a.state.Status(ctx)
	if serr != nil {
		return errors.Join(err, serr)
	}
	err = fmt.Errorf("health check of %s: %w", img.Version, err)
	return a.restartInto(st.Installed.Slot, err)
}

// healthHook runs -health-check, if set, on the new image.
func (a *agent) healthHook(ctx context.Context, img rollback.Image) error {
	if a.cfg.healthCheck == "" {
		return nil
	}
	cmd := exec.CommandContext(ctx, "sh", "-c", a.cfg.healthCheck)
	cmd.Env = append(os.Environ(), "OTASEAL_SLOT="+img.Slot, "OTASEAL_SLOT_FILE="+a.slots.paths[img.Slot], "OTASEAL_VERSION="+img.Version.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, bytes.TrimSpace(out))
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

// hashFile hashes the first length bytes of path (all of it when length
// is 0): a partition is longer than the image it holds.
func hashFile(path string, length int64) (int64, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	var r io.Reader = f
	if length > 0 {
		r = io.LimitReader(f, length)
	}
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err == nil && length > 0 && n != length {
		err = fmt.Errorf("%d bytes, shorter than -factory-length %d", n, length)
	}
	return n, h.Sum(nil), err
}
