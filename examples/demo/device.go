package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/rollback"
	"github.com/otaseal/otaseal/verify"
)

// device is a gateway with two slot files standing in for its A/B
// partitions, its trusted state in a directory standing in for flash, a
// file standing in for its hardware counter, and no battery-backed clock:
// its time comes from rollback's trusted clock.
type device struct {
	state   *rollback.State
	counter *rollback.StoreCounter // the hardware counter's stand-in
	cycle   *verify.Cycle
	active  string // the slot the device runs from
	log     *slog.Logger

	mu   sync.Mutex
	skew time.Duration // how far the device clock has run ahead (the freeze demo)
}

func newDevice(ctx context.Context, dir, serverURL string, rootJSON, factory []byte, log *slog.Logger) (*device, error) {
	return newDeviceIn(ctx, filepath.Join(dir, "device"), serverURL, rootJSON, factory, nil, log)
}

// newDeviceIn makes a device whose slots and state live in dir, holding
// keys for encrypted releases.
func newDeviceIn(ctx context.Context, dir, serverURL string, rootJSON, factory []byte, keys []verify.DecryptionKey, log *slog.Logger) (*device, error) {
	d := &device{log: log, active: "a"}
	store, err := rollback.OpenFileStore(filepath.Join(dir, "state"), rollback.FileStoreOptions{})
	if err != nil {
		return nil, err
	}
	// Confirm mirrors the floor in the counter, so that rewriting the
	// state alone cannot lower it; a board passes eFuses or a TPM NV index.
	if d.counter, err = rollback.OpenFileCounter(filepath.Join(dir, "counter")); err != nil {
		return nil, err
	}
	if d.state, err = rollback.OpenState(ctx, store, rollback.StateOptions{HardwareID: hardwareID, Counter: d.counter}); err != nil {
		return nil, err
	}
	clock, err := rollback.OpenTrustedClock(ctx, store, rollback.TrustedClockOptions{Now: d.systemTime})
	if err != nil {
		return nil, err
	}
	// Factory provisioning: the image in slot a and the first trusted root.
	slots := verify.DirSlots(dir) // the files a and b
	if err := os.WriteFile(filepath.Join(dir, "a"), factory, 0o644); err != nil {
		return nil, err
	}
	if err := d.state.Provision(ctx, imageRecord("factory/0.9.0/firmware.bin", "0.9.0", 0, factory, "a")); err != nil {
		return nil, err
	}
	trust := verify.StateTrustStore{State: d.state, Logger: log}
	if err := verify.Bootstrap(ctx, trust, rootJSON, manifest.Limits{}); err != nil {
		return nil, err
	}
	client, err := verify.New(ctx, verify.Config{
		MetadataURL: serverURL + "/metadata/",
		TargetsURL:  serverURL + "/targets/",
		Fetcher:     &verify.HTTPFetcher{Logger: log},
		Store:       trust,
		Clock:       clock,
		Logger:      log,

		DecryptionKeys: keys,
	})
	d.cycle = &verify.Cycle{Client: client, State: d.state, Slots: slots, ScratchDir: dir}
	return d, err
}

func (d *device) systemTime() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return time.Now().Add(d.skew)
}

// advanceClock moves the device's clock forward and returns its new time.
func (d *device) advanceClock(by time.Duration) time.Time {
	d.mu.Lock()
	d.skew += by
	d.mu.Unlock()
	return d.systemTime()
}

func imageRecord(path, version string, sv uint64, image []byte, slot string) rollback.Image {
	sum := sha256Sum(image)
	return rollback.Image{HardwareID: hardwareID, TargetPath: path, Version: manifest.MustParseVersion(version),
		SecurityVersion: sv, Length: int64(len(image)), SHA256: sum, Slot: slot}
}

// result is what one update cycle did.
type result struct {
	installed string
	viaPatch  bool
	saved     int64
	nothing   string // why there was nothing to install, if so
	notice    string // the security notice of the release offered, if any
	deltaErr  error  // why the delta was refused before the full image was tried
	err       error
}

func (r result) describe() string {
	switch {
	case r.err != nil:
		return "error: " + r.err.Error()
	case r.nothing != "":
		return r.nothing
	case r.viaPatch:
		return "installed " + r.installed + " through a delta"
	}
	return "installed " + r.installed
}

func (r result) errText() string {
	if r.err == nil {
		return "no error (the attack was not noticed!)"
	}
	return r.err.Error()
}

// nothingToDo words each reason Check gives for having nothing to install.
var nothingToDo = []struct {
	err  error
	text string
}{
	{verify.ErrNoUpdate, "up to date"},
	{verify.ErrNoReleases, "no releases for this hardware ID"},
	{verify.ErrNotEligible, "a newer release is not yet rolled out to this device"},
	{verify.ErrWithdrawn, "the newest release was withdrawn"},
}

// update is one cycle of a device agent: check, begin, install into the
// other slot, "reboot" into it, health check, confirm; any failure
// reverts and leaves the running image and the floors as they were.
func (d *device) update(ctx context.Context) result {
	u, err := d.cycle.Check(ctx)
	var paused *verify.PausedError
	if errors.As(err, &paused) {
		d.log.Info("release held back by rollout control", "version", paused.Version, "state", paused.State, "reason", paused.Reason)
		return result{nothing: fmt.Sprintf("release %s is %s by the rollout control: %q", paused.Version, paused.State, paused.Reason)}
	}
	for _, n := range nothingToDo {
		if errors.Is(err, n.err) {
			return result{nothing: n.text, notice: d.withdrawalNotice(err)}
		}
	}
	if err != nil {
		d.log.Error("check refused", "err", err)
		return result{err: err}
	}
	fw := u.Release.Firmware
	d.log.Info("security notice", "version", fw.Version, "severity", fw.Severity, "advisories", fw.Advisories, "notes", fw.Notes)
	res := result{notice: fmt.Sprintf("security notice for %s: severity %s, advisories %s", fw.Version, fw.Severity, strings.Join(fw.Advisories, ", "))}
	running := d.active
	next := map[string]string{"a": "b", "b": "a"}[running]
	if _, err := d.cycle.Begin(ctx, u, next); err != nil {
		res.err = err
		return res
	}
	rep, err := d.cycle.Install(ctx, u)
	res.viaPatch, res.deltaErr = rep.Patch != "", rep.PatchErr
	if err == nil {
		// "Reboot" into the new slot, which Resume finds on trial; the
		// health check is Confirm's own: the slot holds the signed image.
		d.active = next
		if _, _, err = d.cycle.Resume(ctx, next); err == nil {
			_, err = d.cycle.Confirm(ctx)
		}
	}
	if err != nil {
		d.log.Error("install refused", "version", fw.Version, "err", err)
		d.active = running
		if _, rerr := d.cycle.Revert(ctx); rerr != nil {
			err = errors.Join(err, rerr)
		}
		res.err = err
		return res
	}
	res.installed, res.saved = fw.Version.String(), u.Release.File.Length-rep.Downloaded
	return res
}

func (d *device) version() string {
	st, err := d.state.Status(context.Background())
	if err != nil || st.Installed == nil {
		return "?"
	}
	return st.Installed.Version.String()
}

// floors returns the security floor in the state and the value of the
// hardware counter that mirrors it.
func (d *device) floors() (state, counter uint64) {
	ctx := context.Background()
	if st, err := d.state.Status(ctx); err == nil {
		state = st.Floors[hardwareID]
	}
	counter, _ = d.counter.Value(ctx)
	return state, counter
}

// tell prints what the device noticed on the way: the release it was
// offered, and a delta it refused before falling back to the full image.
func (r result) tell(out io.Writer) {
	if r.notice != "" {
		fmt.Fprintf(out, "  device: %s\n", r.notice)
	}
	if r.deltaErr != nil {
		fmt.Fprintf(out, "  device: delta refused (the attacker tampered it too): %v; trying the full image\n", r.deltaErr)
	}
}

// withdrawalNotice logs and words a withdrawn release Check skipped, or
// the running one, "" if none.
func (d *device) withdrawalNotice(err error) string {
	var w *verify.WithdrawnError
	if !errors.As(err, &w) {
		return ""
	}
	d.log.Warn("withdrawn release", "version", w.Version, "running", w.Installed, "reason", w.Withdrawal.Reason, "advisories", w.Withdrawal.Advisories)
	what := "skips withdrawn release " + w.Version.String()
	if w.Installed {
		what = "security notice: the running release " + w.Version.String() + " was withdrawn"
	}
	return fmt.Sprintf("%s: %q (advisories %s)", what, w.Withdrawal.Reason, strings.Join(w.Withdrawal.Advisories, ", "))
}
