// Command miniagent is a whole device agent in otaseal's public API, for
// a device with two file slots, "a" and "b", whose pretend bootloader starts
// the slot named in the file "booted". Each run is one boot: resume,
// confirm a new image that booted, check, install into the other slot,
// "reboot" by rewriting "booted". Exit codes: 0 done or nothing to do, 1
// the update or the device failed, 2 bad usage.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/otaseal/otaseal/rollback"
	"github.com/otaseal/otaseal/verify"
)

func main() {
	flags := flag.NewFlagSet("miniagent", flag.ContinueOnError)
	server := flags.String("server", "", "update server base URL (serving metadata/ and targets/)")
	dir := flags.String("dir", "", "device directory: state/, counter/, slots a and b, file booted")
	hardwareID := flags.String("hardware-id", "", "this device's hardware ID")
	root := flags.String("root", "", "root.json shipped with the device (sign's Repository.DeviceRoot)")
	factory := flags.String("factory", "", "target path of the image in slot a, recorded on the first run")
	if err := flags.Parse(os.Args[1:]); err != nil || *server == "" || *dir == "" || *hardwareID == "" || *root == "" {
		fmt.Fprintln(os.Stderr, "usage: miniagent -server URL -dir DIR -hardware-id ID -root FILE [-factory PATH]")
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(context.Background(), log, *server, *dir, *hardwareID, *root, *factory); err != nil {
		log.Error("agent failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, server, dir, hardwareID, rootFile, factory string) error {
	store, err := rollback.OpenFileStore(filepath.Join(dir, "state"), rollback.FileStoreOptions{Logger: log})
	if err != nil {
		return err // another agent holds the state: rollback.ErrLocked
	}
	defer store.Close()
	counter, err := rollback.OpenFileCounter(filepath.Join(dir, "counter")) // a TPM or eFuses on real hardware
	if err != nil {
		return err
	}
	defer counter.Close()
	state, err := rollback.OpenState(ctx, store, rollback.StateOptions{HardwareID: hardwareID, Counter: counter})
	if err != nil {
		return err
	}
	clock, err := rollback.OpenTrustedClock(ctx, store, rollback.TrustedClockOptions{Now: time.Now})
	if err != nil {
		return err
	}
	shipped, err := os.ReadFile(rootFile) // trusted on the first run, and again if the stored root is lost
	if err != nil {
		return err
	}
	client, err := verify.New(ctx, verify.Config{MetadataURL: server + "/metadata/", TargetsURL: server + "/targets/",
		Store: verify.StateTrustStore{State: state}, Clock: clock, ShippedRoot: shipped, Logger: log})
	if err != nil {
		return err
	}
	cycle := &verify.Cycle{Client: client, State: state, Slots: verify.DirSlots(dir), ScratchDir: dir}
	if st, err := state.Status(ctx); err == nil && st.Installed == nil && factory != "" {
		if _, err := cycle.Provision(ctx, factory, "a"); err != nil {
			return fmt.Errorf("provision: %w", err)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "booted")) // none before the first reboot
	booted := cmp.Or(strings.TrimSpace(string(b)), "a")
	other := map[string]string{"a": "b", "b": "a"}[booted]
	action, img, err := cycle.Resume(ctx, booted)
	if err != nil {
		return err
	}
	log.Info("booted", "slot", booted, "action", action, "version", img.Version)
	if action == verify.ResumeTrial {
		if img, err = cycle.Confirm(ctx); err != nil { // the health check: the slot holds the image
			_, rerr := cycle.Revert(ctx)
			return reboot(dir, other, errors.Join(err, rerr))
		}
		log.Info("confirmed", "version", img.Version, "security_version", img.SecurityVersion)
	}
	u, err := cycle.Check(ctx)
	switch {
	case errors.Is(err, verify.ErrNoUpdate):
		log.Info("up to date")
		return nil
	case errors.Is(err, verify.ErrNoReleases):
		log.Warn("the repository has no release for this hardware ID", "hardware_id", hardwareID)
		return nil
	case err != nil:
		return err
	}
	if _, err := cycle.Begin(ctx, u, other); err != nil {
		return err
	}
	report, err := cycle.Install(ctx, u)
	if err != nil {
		return err // the next run's Resume drops the pending record
	}
	log.Info("installed", "version", u.Release.Firmware.Version, "slot", other, "patch", report.Patch, "patch_err", report.PatchErr, "downloaded", report.Downloaded)
	return reboot(dir, other, nil)
}

// reboot tells the pretend bootloader which slot to start next.
func reboot(dir, slot string, cause error) error {
	return errors.Join(cause, os.WriteFile(filepath.Join(dir, "booted"), []byte(slot), 0o600))
}
