package rollback_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/rollback"
)

func image(version string, securityVersion uint64, slot string) rollback.Image {
	return rollback.Image{
		HardwareID:      "acme-gw-r2",
		TargetPath:      "acme-gw-r2/" + version + "/firmware.bin",
		Version:         manifest.MustParseVersion(version),
		SecurityVersion: securityVersion,
		Length:          9234567,
		SHA256:          make([]byte, 32),
		Slot:            slot,
	}
}

// A device's install cycle: begin before writing the inactive slot, confirm
// after the new image booted and passed its health check.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "otaseal-state")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// Each directory is locked until Close: a second agent cannot start.
	store, err := rollback.OpenFileStore(filepath.Join(dir, "state"), rollback.FileStoreOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	counter, err := rollback.OpenFileCounter(filepath.Join(dir, "counter"))
	if err != nil {
		log.Fatal(err)
	}
	defer counter.Close()
	st, err := rollback.OpenState(ctx, store, rollback.StateOptions{HardwareID: "acme-gw-r2", Counter: counter})
	if err != nil {
		log.Fatal(err)
	}
	if err := st.Provision(ctx, image("2.3.0", 6, "a")); err != nil {
		log.Fatal(err)
	}

	// A candidate from verified targets metadata.
	if err := st.Begin(ctx, image("2.4.1", 7, "b")); err != nil {
		log.Fatal(err)
	}
	// ... write slot b, reboot into it, health check passes ...
	installed, err := st.Confirm(ctx)
	if err != nil {
		log.Fatal(err)
	}
	status, _ := st.Status(ctx)
	fmt.Println("installed", installed.Version, "in slot", installed.Slot, "floor", status.Floors["acme-gw-r2"])

	// The old image, with its known hole, is refused from now on.
	err = st.Begin(ctx, image("2.3.0", 6, "a"))
	fmt.Println(errors.Is(err, rollback.ErrSecurityVersionLower))
	// Output:
	// installed 2.4.1 in slot b floor 7
	// true
}

// A failed boot or health check reverts with the floors untouched.
func ExampleState_Revert() {
	ctx := context.Background()
	st, err := rollback.OpenState(ctx, rollback.NewMemStore(), rollback.StateOptions{
		HardwareID: "acme-gw-r2",
		Counter:    rollback.NewStoreCounter(rollback.NewMemStore(), "counter"),
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = st.Provision(ctx, image("2.3.0", 6, "a"))
	_ = st.Begin(ctx, image("2.4.1", 7, "b"))
	dropped, _ := st.Revert(ctx)
	status, _ := st.Status(ctx)
	fmt.Println("dropped", dropped.Version, "still", status.Installed.Version, "floor", status.Floors["acme-gw-r2"])
	// Output: dropped 2.4.1 still 2.3.0 floor 6
}

// Before downloading anything, ask the state whether a release may be
// installed: distinct errors for a lower security version, a lower version
// and the same version.
func ExampleState_Check() {
	ctx := context.Background()
	st, err := rollback.OpenState(ctx, rollback.NewMemStore(), rollback.StateOptions{HardwareID: "acme-gw-r2", AllowNoCounter: true})
	if err != nil {
		log.Fatal(err)
	}
	if err := st.Provision(ctx, image("2.4.1", 7, "a")); err != nil {
		log.Fatal(err)
	}
	for _, c := range []struct {
		version string
		sv      uint64
	}{{"2.5.0", 7}, {"2.3.0", 6}, {"2.4.0", 7}, {"2.4.1", 7}} {
		fw := &manifest.Firmware{Version: manifest.MustParseVersion(c.version), SecurityVersion: c.sv, HardwareIDs: []string{"acme-gw-r2"}}
		err := st.Check(ctx, fw)
		switch {
		case err == nil:
			fmt.Println(c.version, "install")
		case errors.Is(err, rollback.ErrSecurityVersionLower):
			fmt.Println(c.version, "refused: security version below floor")
		case errors.Is(err, rollback.ErrVersionLower):
			fmt.Println(c.version, "refused: older version")
		case errors.Is(err, rollback.ErrVersionEqual):
			fmt.Println(c.version, "nothing to do")
		}
	}
	// Output:
	// 2.5.0 install
	// 2.3.0 refused: security version below floor
	// 2.4.0 refused: older version
	// 2.4.1 nothing to do
}

// The clock after a reset to 1970: never earlier than the newest time a
// verified timestamp proved.
func ExampleTrustedClock() {
	ctx := context.Background()
	store := rollback.NewMemStore()
	device := time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	clock, err := rollback.OpenTrustedClock(ctx, store, rollback.TrustedClockOptions{Now: func() time.Time { return device }})
	if err != nil {
		log.Fatal(err)
	}
	// verify, after the timestamp's signatures checked out:
	ts := &manifest.Timestamp{}
	manifest.SetSignedAt(ts, time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	if at, ok, err := manifest.SignedAt(ts); err == nil && ok {
		if err := clock.Observe(ctx, at); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println(clock.Now().Format(time.RFC3339))
	// Output: 2026-11-26T12:00:00Z
}

// verify keeps each accepted document and re-verifies the stored ones at
// the next start.
func ExampleState_SetMetadata() {
	ctx := context.Background()
	st, err := rollback.OpenState(ctx, rollback.NewMemStore(), rollback.StateOptions{HardwareID: "acme-gw-r2", AllowNoCounter: true})
	if err != nil {
		log.Fatal(err)
	}
	cur, err := st.Metadata(ctx, "timestamp")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored before:", cur.Exists())
	// ... the new timestamp.json verified ...
	if _, err := st.SetMetadata(ctx, "timestamp", cur.Seq, []byte(`{"signed":{"_type":"timestamp"}}`)); err != nil {
		log.Fatal(err)
	}
	// A writer that read before this one loses instead of overwriting.
	_, err = st.SetMetadata(ctx, "timestamp", cur.Seq, []byte(`{}`))
	fmt.Println("stale writer:", errors.Is(err, rollback.ErrConflict))
	// Output:
	// stored before: false
	// stale writer: true
}
