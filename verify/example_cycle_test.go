package verify_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/rollback"
	"github.com/otaseal/otaseal/verify"
)

// A whole update cycle on a device with two file slots, as an agent runs
// it at every start: Resume, Check, Begin, Install, reboot, Resume,
// Confirm. (exampleRepository plays the vendor and its server.)
func ExampleCycle() {
	ctx := context.Background()
	url, shippedRoot, factory, stop := exampleRepository()
	defer stop()
	dir, _ := os.MkdirTemp("", "otaseal-device-")
	defer os.RemoveAll(dir)
	slots := verify.DirSlots(dir) // files "a" and "b"; partitions implement verify.Slots

	// The device's state, its hardware counter and the root shipped with
	// it (sign's Repository.DeviceRoot).
	store := rollback.NewMemStore() // rollback.OpenFileStore on flash
	counter := rollback.NewStoreCounter(rollback.NewMemStore(), "counter")
	state, err := rollback.OpenState(ctx, store, rollback.StateOptions{HardwareID: "acme-gw-r2", Counter: counter})
	if err != nil {
		log.Fatal(err)
	}
	trust := verify.StateTrustStore{State: state}
	if err := verify.Bootstrap(ctx, trust, shippedRoot, manifest.Limits{}); err != nil {
		log.Fatal(err)
	}
	clock, err := rollback.OpenTrustedClock(ctx, store, rollback.TrustedClockOptions{Now: time.Now})
	if err != nil {
		log.Fatal(err)
	}
	client, err := verify.New(ctx, verify.Config{MetadataURL: url + "/metadata/", TargetsURL: url + "/targets/", Store: trust, Clock: clock})
	if err != nil {
		log.Fatal(err)
	}
	cycle := &verify.Cycle{Client: client, State: state, Slots: slots}

	// Once, at the factory: slot a holds the signed release 1.0.0.
	if err := os.WriteFile(dir+"/a", factory, 0o600); err != nil {
		log.Fatal(err)
	}
	if _, err := cycle.Provision(ctx, "acme-gw-r2/1.0.0/firmware.bin", "a"); err != nil {
		log.Fatal(err)
	}

	// Each start of the agent; booted is what the bootloader says.
	start := func(booted string) (reboot string) {
		action, img, err := cycle.Resume(ctx, booted)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(action, img.Version, "in slot", img.Slot)
		if action == verify.ResumeTrial { // the health check would run here
			img, err := cycle.Confirm(ctx)
			if err != nil {
				log.Fatal(err)
			}
			floor, _ := counter.Value(ctx)
			fmt.Println("confirmed", img.Version, "floor", floor)
		}
		u, err := cycle.Check(ctx)
		switch {
		case errors.Is(err, verify.ErrNoUpdate):
			fmt.Println("up to date")
			return ""
		case err != nil:
			log.Fatal(err)
		}
		next := map[string]string{"a": "b", "b": "a"}[booted]
		if _, err := cycle.Begin(ctx, u, next); err != nil {
			log.Fatal(err)
		}
		report, err := cycle.Install(ctx, u)
		if err != nil {
			log.Fatal(err) // the next start's Resume reverts the pending record
		}
		fmt.Println("installed", u.Release.Firmware.Version, "in slot", report.Slot, "by delta:", report.Patch != "")
		return next
	}
	if next := start("a"); next != "" {
		start(next)
	}
	// Output:
	// running 1.0.0 in slot a
	// installed 1.1.0 in slot b by delta: true
	// trial 1.1.0 in slot b
	// confirmed 1.1.0 floor 2
	// up to date
}
