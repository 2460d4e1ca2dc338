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
	"sync/atomic"
	"time"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/rollback"
	"github.com/otaseal/otaseal/verify"
)

// device is a gateway with two slot files standing in for its A/B
// partitions, its trusted state in a directory standing in for flash, and
// no battery-backed clock: its time comes from rollback's trusted clock.
type device struct {
	state  *rollback.State
	clock  *rollback.TrustedClock
	client *verify.Client
	slots  map[string]string // slot name -> file
	active string
	log    *slog.Logger

	mu         sync.Mutex
	skew       time.Duration // how far the device clock has run ahead (the freeze demo)
	downloaded atomic.Int64  // target bytes fetched, to show what a delta saves
}

func newDevice(ctx context.Context, dir, serverURL string, rootJSON, factory []byte, log *slog.Logger) (*device, error) {
	d := &device{log: log, active: "a", slots: map[string]string{
		"a": filepath.Join(dir, "device", "slot-a.img"),
		"b": filepath.Join(dir, "device", "slot-b.img"),
	}}
	store, err := rollback.OpenFileStore(filepath.Join(dir, "device", "state"), rollback.FileStoreOptions{})
	if err != nil {
		return nil, err
	}
	// A board without a monotonic counter; see rollback.Counter for eFuse
	// and TPM counters.
	if d.state, err = rollback.OpenState(ctx, store, rollback.StateOptions{HardwareID: hardwareID, AllowNoCounter: true}); err != nil {
		return nil, err
	}
	if d.clock, err = rollback.OpenTrustedClock(ctx, store, rollback.TrustedClockOptions{Now: d.systemTime}); err != nil {
		return nil, err
	}
	// Factory provisioning: the image in slot A and the first trusted root.
	if err := os.WriteFile(d.slots["a"], factory, 0o644); err != nil {
		return nil, err
	}
	if err := d.state.Provision(ctx, imageRecord("factory/0.9.0/firmware.bin", "0.9.0", 0, factory, "a")); err != nil {
		return nil, err
	}
	trust := verify.StateTrustStore{State: d.state, Logger: log}
	if err := verify.Bootstrap(ctx, trust, rootJSON, manifest.Limits{}); err != nil {
		return nil, err
	}
	d.client, err = verify.New(ctx, verify.Config{
		MetadataURL: serverURL + "/metadata/",
		TargetsURL:  serverURL + "/targets/",
		Fetcher:     verify.FetcherFunc(d.fetch(&verify.HTTPFetcher{Logger: log})),
		Store:       trust,
		Clock:       d.clock,
		Logger:      log,
	})
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

// fetch counts the target bytes that come over the wire.
func (d *device) fetch(f verify.Fetcher) func(context.Context, string, int64) (io.ReadCloser, error) {
	return func(ctx context.Context, url string, max int64) (io.ReadCloser, error) {
		rc, err := f.Fetch(ctx, url, max)
		if err != nil || !strings.Contains(url, "/targets/") {
			return rc, err
		}
		return countingReader{rc, &d.downloaded}, nil
	}
}

type countingReader struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
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
	upToDate  bool
	notice    string // the security notice of the release offered, if any
	deltaErr  error  // why the delta was refused before the full image was tried
	err       error
}

func (r result) describe() string {
	switch {
	case r.err != nil:
		return "error: " + r.err.Error()
	case r.upToDate:
		return "up to date"
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

// update is one cycle of a device agent: refresh, select, write the
// inactive slot, mark it pending, "reboot" into it, health check, confirm;
// any failure reverts and leaves the running image and the floors as they
// were.
func (d *device) update(ctx context.Context) result {
	if err := d.client.Refresh(ctx); err != nil {
		d.log.Error("refresh refused", "err", err)
		return result{err: err}
	}
	status, err := d.state.Status(ctx)
	if err != nil {
		return result{err: err}
	}
	u, err := d.client.Select(ctx, d.state)
	if errors.Is(err, verify.ErrNoUpdate) {
		return result{upToDate: true}
	}
	if err != nil {
		d.log.Error("selection refused", "err", err)
		return result{err: err}
	}
	fw := u.Release.Firmware
	d.log.Info("security notice", "version", fw.Version, "severity", fw.Severity, "advisories", fw.Advisories, "notes", fw.Notes)
	res := result{notice: fmt.Sprintf("security notice for %s: severity %s, advisories %s", fw.Version, fw.Severity, strings.Join(fw.Advisories, ", "))}

	target := "b"
	if status.Installed.Slot == "b" {
		target = "a"
	}
	img := rollback.Image{HardwareID: hardwareID, TargetPath: u.Release.Path, Version: fw.Version, SecurityVersion: fw.SecurityVersion,
		Length: u.Release.File.Length, SHA256: u.Release.File.Hashes["sha256"], Slot: target}
	if err := d.state.Begin(ctx, img); err != nil {
		res.err = err
		return res
	}
	before := d.downloaded.Load()
	res.viaPatch = u.Patch != nil
	err = d.writeSlot(ctx, u, &img, status.Installed)
	if err != nil && u.Patch != nil {
		d.log.Warn("delta refused; trying the full image", "err", err)
		full := *u
		full.Patch, res.viaPatch, res.deltaErr = nil, false, err
		err = d.writeSlot(ctx, &full, &img, status.Installed)
	}
	if err != nil {
		d.log.Error("install refused", "version", fw.Version, "err", err)
		if _, rerr := d.state.Revert(ctx); rerr != nil {
			err = errors.Join(err, rerr)
		}
		res.err = err
		return res
	}
	// "Reboot" into the new slot, then the health check: here, that the
	// slot still holds exactly the signed image.
	d.active = target
	if ok, herr := verify.FileMatches(d.slots[target], u.Release.File); herr != nil || !ok {
		d.active = status.Installed.Slot
		d.state.Revert(ctx)
		res.err = fmt.Errorf("health check failed: %v", herr)
		return res
	}
	if _, err := d.state.Confirm(ctx); err != nil {
		res.err = err
		return res
	}
	res.installed, res.saved = fw.Version.String(), u.Release.File.Length-(d.downloaded.Load()-before)
	return res
}

// writeSlot writes the update into img's slot, which it opens only after
// the state, read again now, says img is pending there and the installed
// image runs from the other slot: the running image is never opened for
// writing.
func (d *device) writeSlot(ctx context.Context, u *verify.Update, img, installed *rollback.Image) error {
	st, err := d.state.Status(ctx)
	if err != nil {
		return err
	}
	if st.Installed.Slot == img.Slot || st.Pending == nil || !st.Pending.Equal(img) {
		return fmt.Errorf("slot %s is not the pending, inactive slot: refusing to write it", img.Slot)
	}
	f, err := os.OpenFile(d.slots[img.Slot], os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	active, err := os.Open(d.slots[installed.Slot])
	if err != nil {
		return err
	}
	defer active.Close()
	opts := verify.InstallOptions{Installed: active, InstalledSize: installed.Length, ScratchDir: filepath.Dir(d.slots[img.Slot])}
	if err := d.client.Install(ctx, u, f, opts); err != nil {
		return err
	}
	// Cut off what a longer, older image left after the new one.
	end, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	if err := f.Truncate(end); err != nil {
		return err
	}
	return f.Sync()
}

func (d *device) version() string {
	st, err := d.state.Status(context.Background())
	if err != nil || st.Installed == nil {
		return "?"
	}
	return st.Installed.Version.String()
}

func (d *device) floor() uint64 {
	st, err := d.state.Status(context.Background())
	if err != nil {
		return 0
	}
	return st.Floors[hardwareID]
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
