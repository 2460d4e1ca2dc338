package verify_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log"
	"time"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/rollback"
	"github.com/otaseal/otaseal/verify"
)

// The device side of an update, end to end: trusted state, the shipped
// root, refresh, select, install into the inactive slot, confirm. The
// README's device-side quick start mirrors this function; change both
// together. (exampleRepository, below, plays the vendor and its server.)
func Example() {
	ctx := context.Background()
	url, shippedRoot, factory, stop := exampleRepository()
	defer stop()

	// Trusted state: on a device, rollback.OpenFileStore on flash and a
	// hardware counter (TPM, eFuses) that holds the security floor.
	store := rollback.NewMemStore()
	counter := rollback.NewStoreCounter(rollback.NewMemStore(), "counter")
	state, err := rollback.OpenState(ctx, store, rollback.StateOptions{HardwareID: "acme-gw-r2", Counter: counter})
	if err != nil {
		log.Fatal(err)
	}
	clock, err := rollback.OpenTrustedClock(ctx, store, rollback.TrustedClockOptions{Now: time.Now})
	if err != nil {
		log.Fatal(err)
	}
	trust := verify.StateTrustStore{State: state}

	// Once, at the factory: the image in slot a and the root shipped with it.
	sum := sha256.Sum256(factory)
	if err := state.Provision(ctx, rollback.Image{HardwareID: "acme-gw-r2", TargetPath: "factory.bin",
		Version: manifest.MustParseVersion("1.0.0"), SecurityVersion: 1, Length: int64(len(factory)), SHA256: sum[:], Slot: "a"}); err != nil {
		log.Fatal(err)
	}
	if err := verify.Bootstrap(ctx, trust, shippedRoot, manifest.Limits{}); err != nil {
		log.Fatal(err)
	}

	// Every update check.
	client, err := verify.New(ctx, verify.Config{MetadataURL: url + "/metadata/", TargetsURL: url + "/targets/", Store: trust, Clock: clock})
	if err != nil {
		log.Fatal(err)
	}
	if err := client.Refresh(ctx); err != nil {
		log.Fatal(err) // a TUF check failed closed: keep running the old image
	}
	u, err := client.Select(ctx, state) // the state's policy and floors decide
	if err != nil {
		log.Fatal(err) // verify.ErrNoUpdate when up to date
	}
	fw := u.Release.Firmware
	fmt.Println("update:", fw.Version, fw.Severity, fw.Advisories)
	// Pending before a byte is written to the inactive slot; floors unchanged.
	if err := state.Begin(ctx, rollback.Image{HardwareID: state.HardwareID(), TargetPath: u.Release.Path, Version: fw.Version,
		SecurityVersion: fw.SecurityVersion, Length: u.Release.File.Length, SHA256: u.Release.File.Hashes["sha256"], Slot: "b"}); err != nil {
		log.Fatal(err)
	}
	var slotB bytes.Buffer // the inactive partition
	if err := client.Install(ctx, u, &slotB, verify.InstallOptions{Installed: bytes.NewReader(factory), InstalledSize: int64(len(factory))}); err != nil {
		state.Revert(ctx)
		log.Fatal(err)
	}
	// ... reboot into slot b, run the health check, then, and only then,
	// the security floor rises:
	img, err := state.Confirm(ctx)
	if err != nil {
		log.Fatal(err)
	}
	floor, _ := counter.Value(ctx)
	fmt.Println("installed:", img.Version, "in slot", img.Slot, "floor:", floor)
	// Output:
	// update: 1.1.0 security [CVE-2026-0001]
	// installed: 1.1.0 in slot b floor: 2
}

// exampleRepository publishes firmware 1.0.0 and 1.1.0 (and a delta
// between them) with package sign and serves them on 127.0.0.1.
func exampleRepository() (url string, shippedRoot, factory []byte, stop func()) {
	f, err := newFleet("acme-gw-r2")
	if err != nil {
		log.Fatal(err)
	}
	if err := f.release("1.0.0", 1, ""); err != nil {
		log.Fatal(err)
	}
	if err := f.release("1.1.0", 2, "1.0.0"); err != nil {
		log.Fatal(err)
	}
	// The root to build into devices: the repository hands it out.
	_, shippedRoot, err = f.repo.DeviceRoot()
	if err != nil {
		log.Fatal(err)
	}
	return f.srv.URL, shippedRoot, f.images["1.0.0"], f.close
}
