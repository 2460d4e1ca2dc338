package verify_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/rollback"
	"github.com/otaseal/otaseal/verify"
)

// testDevice is a device with two file slots whose state survives a
// "crash": the stores outlive every Cycle opened on them.
type testDevice struct {
	t          *testing.T
	f          *fleet
	hardwareID string
	store      *rollback.MemStore
	counter    *rollback.StoreCounter
	slots      verify.Slots
	booted     string         // the slot the bootloader starts
	fetcher    verify.Fetcher // nil: an HTTPFetcher without retries
	keys       []verify.DecryptionKey
}

// factoryDevice is a device fresh from the factory: slotA in slot a, the
// root the repository hands out, not yet provisioned.
func factoryDevice(t *testing.T, f *fleet, hardwareID string, slotA []byte) *testDevice {
	d := &testDevice{t: t, f: f, hardwareID: hardwareID, store: rollback.NewMemStore(),
		counter: rollback.NewStoreCounter(rollback.NewMemStore(), "counter"), slots: verify.DirSlots(t.TempDir()), booted: "a"}
	_, root, err := f.repo.DeviceRoot()
	require.NoError(t, err)
	require.NoError(t, verify.Bootstrap(context.Background(), verify.StateTrustStore{State: d.state()}, root, manifest.Limits{}))
	d.writeSlot("a", slotA)
	return d
}

// newTestDevice provisions a device running release 1.0.0 in slot a.
func newTestDevice(t *testing.T, f *fleet, hardwareID string) *testDevice {
	ctx := context.Background()
	d := factoryDevice(t, f, hardwareID, f.images["1.0.0"])
	if hardwareID == f.hardwareID {
		_, err := d.cycle().Provision(ctx, f.imagePath("1.0.0"), "a")
		require.NoError(t, err)
	} else { // a device the repository has nothing for
		sum := sha256.Sum256(f.images["1.0.0"])
		require.NoError(t, d.state().Provision(ctx, rollback.Image{HardwareID: hardwareID, TargetPath: "factory.bin",
			Version: manifest.MustParseVersion("1.0.0"), SecurityVersion: 1, Length: int64(len(f.images["1.0.0"])), SHA256: sum[:], Slot: "a"}))
	}
	return d
}

// Provision takes the factory image's record from the signed release and
// checks the slot holds it.
func TestCycleProvision(t *testing.T) {
	ctx := context.Background()
	f, d := fleetAndDevice(t)
	st := d.status()
	got := st.Installed
	assert.Equal(t, f.imagePath("1.0.0"), got.TargetPath)
	assert.Equal(t, uint64(1), st.Floors["acme-gw-r2"])
	_, err := d.cycle().Provision(ctx, f.imagePath("1.0.0"), "a")
	assert.ErrorIs(t, err, rollback.ErrAlreadyProvisioned)

	fresh := factoryDevice(t, f, "acme-gw-r2", f.images["1.1.0"])
	_, err = fresh.cycle().Provision(ctx, f.imagePath("1.0.0"), "a")
	assert.ErrorIs(t, err, verify.ErrSlotContent)
	_, err = fresh.cycle().Provision(ctx, "acme-gw-r2/deltas/1.0.0-1.1.0.otz", "a")
	assert.ErrorIs(t, err, manifest.ErrWrongKind)
	assert.Nil(t, fresh.status().Installed)
}

func (d *testDevice) writeSlot(slot string, data []byte) {
	w, err := d.slots.Create(slot)
	require.NoError(d.t, err)
	_, err = w.Write(data)
	require.NoError(d.t, err)
	require.NoError(d.t, w.Close())
}

func (d *testDevice) state() *rollback.State {
	s, err := rollback.OpenState(context.Background(), d.store, rollback.StateOptions{HardwareID: d.hardwareID, Counter: d.counter})
	require.NoError(d.t, err)
	return s
}

// cycle opens a new Cycle on the device, as an agent does at start.
func (d *testDevice) cycle() *verify.Cycle {
	ctx := context.Background()
	state := d.state()
	clock, err := rollback.OpenTrustedClock(ctx, d.store, rollback.TrustedClockOptions{Now: time.Now})
	require.NoError(d.t, err)
	fetcher := d.fetcher
	if fetcher == nil {
		fetcher = &verify.HTTPFetcher{Retries: -1}
	}
	client, err := verify.New(ctx, verify.Config{MetadataURL: d.f.srv.URL + "/metadata/", TargetsURL: d.f.srv.URL + "/targets/",
		Fetcher: fetcher, Store: verify.StateTrustStore{State: state}, Clock: clock, DecryptionKeys: d.keys})
	require.NoError(d.t, err)
	return &verify.Cycle{Client: client, State: state, Slots: d.slots, ScratchDir: d.t.TempDir()}
}

func (d *testDevice) status() rollback.Status {
	st, err := d.state().Status(context.Background())
	require.NoError(d.t, err)
	return st
}

func newTestFleet(t *testing.T, hardwareID string) *fleet {
	f, err := newFleet(hardwareID)
	require.NoError(t, err)
	t.Cleanup(f.close)
	require.NoError(t, f.release("1.0.0", 1, ""))
	require.NoError(t, f.release("1.1.0", 2, "1.0.0"))
	return f
}

// fleetAndDevice is the usual start: releases 1.0.0 and 1.1.0 published,
// a device running 1.0.0.
func fleetAndDevice(t *testing.T) (*fleet, *testDevice) {
	f := newTestFleet(t, "acme-gw-r2")
	return f, newTestDevice(t, f, "acme-gw-r2")
}

// Finding 1 of issue 22: Client.Install without State.Begin wrote the slot
// and returned nil. The cycle refuses to write a slot the state has no
// pending record for, or a record of another update.
func TestCycleInstallNeedsBegin(t *testing.T) {
	ctx := context.Background()
	_, d := fleetAndDevice(t)
	c := d.cycle()
	u, err := c.Check(ctx)
	require.NoError(t, err)

	_, err = c.Install(ctx, u)
	assert.ErrorIs(t, err, verify.ErrNotBegun)
	_, err = d.slots.Open("b")
	assert.ErrorIs(t, err, os.ErrNotExist, "nothing written to slot b")

	// A pending record of another release does not let this one through.
	require.NoError(t, c.State.Begin(ctx, rollback.Image{HardwareID: "acme-gw-r2", TargetPath: "acme-gw-r2/1.1.0/other.bin",
		Version: u.Release.Firmware.Version, SecurityVersion: 2, Length: 1, SHA256: make([]byte, 32), Slot: "b"}))
	_, err = c.Install(ctx, u)
	assert.ErrorIs(t, err, verify.ErrNotBegun)
}

// Finding 2: the pending record comes from the update, field for field.
func TestUpdateImage(t *testing.T) {
	ctx := context.Background()
	f, d := fleetAndDevice(t)
	u, err := d.cycle().Check(ctx)
	require.NoError(t, err)
	sum := sha256.Sum256(f.images["1.1.0"])
	want := rollback.Image{HardwareID: "acme-gw-r2", TargetPath: f.imagePath("1.1.0"), Version: manifest.MustParseVersion("1.1.0"),
		SecurityVersion: 2, Length: int64(len(f.images["1.1.0"])), SHA256: sum[:], Slot: "b"}
	got := u.Image("b")
	assert.True(t, want.Equal(&got), "got %+v", got)
	require.NoError(t, got.Validate())
}

// Finding 3: a device whose hardware ID has no releases is told so, not
// "up to date".
func TestCheckReasons(t *testing.T) {
	ctx := context.Background()
	f := newTestFleet(t, "acme-gw-r2")
	_, err := newTestDevice(t, f, "acme-gw-r3").cycle().Check(ctx)
	assert.ErrorIs(t, err, verify.ErrNoReleases)
	assert.NotErrorIs(t, err, verify.ErrNoUpdate)

	d := newTestDevice(t, f, "acme-gw-r2")
	runToEnd(t, d)
	_, err = d.cycle().Check(ctx)
	assert.ErrorIs(t, err, verify.ErrNoUpdate)
	assert.ErrorIs(t, err, rollback.ErrVersionEqual)
	assert.NotErrorIs(t, err, verify.ErrNoReleases)
}

// Finding 4: a failed patch falls back to the full image by itself, and
// the report says which way the image came and how many bytes it took.
func TestCycleInstallFallsBack(t *testing.T) {
	ctx := context.Background()
	f := newTestFleet(t, "acme-gw-r2")
	full := int64(len(f.images["1.1.0"]))

	d := newTestDevice(t, f, "acme-gw-r2")
	c := d.cycle()
	u, err := c.Check(ctx)
	require.NoError(t, err)
	require.NotNil(t, u.Patch)
	_, err = c.Begin(ctx, u, "b")
	require.NoError(t, err)
	rep, err := c.Install(ctx, u)
	require.NoError(t, err)
	assert.Equal(t, verify.InstallReport{Slot: "b", Patch: u.Patch.Path, Downloaded: u.Patch.File.Length}, rep)

	for name, spoil := range map[string]func(d *testDevice){
		"patch bytes altered in transit": func(*testDevice) {
			f.setTamper(func(p string, b []byte) []byte {
				if strings.Contains(p, "/deltas/") {
					b = bytes.Clone(b)
					b[len(b)-1] ^= 1
				}
				return b
			})
		},
		"installed slot differs from its record": func(d *testDevice) { d.writeSlot("a", []byte("not 1.0.0")) },
	} {
		t.Run(name, func(t *testing.T) {
			d := newTestDevice(t, f, "acme-gw-r2")
			c := d.cycle()
			u, err := c.Check(ctx)
			require.NoError(t, err)
			_, err = c.Begin(ctx, u, "b")
			require.NoError(t, err)
			spoil(d)
			defer f.setTamper(nil)
			rep, err := c.Install(ctx, u)
			require.NoError(t, err)
			assert.Empty(t, rep.Patch)
			assert.Error(t, rep.PatchErr)
			assert.GreaterOrEqual(t, rep.Downloaded, full)
			assert.LessOrEqual(t, rep.Downloaded, full+u.Patch.File.Length)
			ok, err := c.SlotHolds(u.Image("b"))
			require.NoError(t, err)
			assert.True(t, ok)
		})
	}
}

// Finding 7: the root the repository hands out is the one a device
// bootstraps from, byte for byte, and under the name it is published.
func TestDeviceRootBootstraps(t *testing.T) {
	ctx := context.Background()
	f := newTestFleet(t, "acme-gw-r2")
	name, root, err := f.repo.DeviceRoot()
	require.NoError(t, err)
	onDisk, err := os.ReadFile(filepath.Join(f.dir, filepath.FromSlash(name)))
	require.NoError(t, err)
	assert.Equal(t, onDisk, root)

	store := &verify.MemTrustStore{}
	require.NoError(t, verify.Bootstrap(ctx, store, root, manifest.Limits{}))
	c, err := verify.New(ctx, verify.Config{MetadataURL: f.srv.URL + "/metadata/", TargetsURL: f.srv.URL + "/targets/", Store: store, Clock: verify.SystemClock{}})
	require.NoError(t, err)
	require.NoError(t, c.Refresh(ctx))
}

// runToEnd runs the agent's loop, a reboot between Install and Resume,
// until the device has nothing to do.
func runToEnd(t *testing.T, d *testDevice) {
	for range 4 {
		if done := drive(t, d, ""); done {
			return
		}
	}
	t.Fatal("the agent did not settle")
}

// drive is one start of an agent: Resume, then Check, Begin, Install and a
// reboot into the new slot. It stops early, as a power cut would, after
// the step named stop. It reports whether there was nothing to do.
func drive(t *testing.T, d *testDevice, stop string) (idle bool) {
	ctx := context.Background()
	c := d.cycle()
	act, _, err := c.Resume(ctx, d.booted)
	require.NoError(t, err)
	if stop == "resume" {
		return false
	}
	if act == verify.ResumeTrial {
		_, err := c.Confirm(ctx)
		require.NoError(t, err)
		return false
	}
	u, err := c.Check(ctx)
	if errors.Is(err, verify.ErrNoUpdate) {
		return true
	}
	require.NoError(t, err)
	if stop == "check" {
		return false
	}
	next := map[string]string{"a": "b", "b": "a"}[d.booted]
	_, err = c.Begin(ctx, u, next)
	require.NoError(t, err)
	if stop == "begin" {
		return false
	}
	if stop == "install-torn" {
		c.Slots = tornSlots{d.slots}
		_, err := c.Install(ctx, u)
		require.Error(t, err)
		return false
	}
	_, err = c.Install(ctx, u)
	require.NoError(t, err)
	if stop == "install" {
		return false
	}
	d.booted = next // the reboot; the bootloader now starts the new slot
	return false
}

// tornSlots cuts every write short, as a power cut during Install would.
type tornSlots struct{ verify.Slots }

func (s tornSlots) Create(slot string) (io.WriteCloser, error) {
	w, err := s.Slots.Create(slot)
	if err != nil {
		return nil, err
	}
	return &tornWriter{WriteCloser: w, left: 1000}, nil
}

type tornWriter struct {
	io.WriteCloser
	left int
}

func (w *tornWriter) Write(p []byte) (int, error) {
	if len(p) > w.left {
		n, _ := w.WriteCloser.Write(p[:w.left])
		w.left = 0
		return n, errors.New("power cut")
	}
	w.left -= len(p)
	return w.WriteCloser.Write(p)
}

// The cycle driven through every crash point: after a power cut between
// any two steps (or during the slot write), a new Cycle on the same state
// finds it consistent and the agent ends with 1.1.0 confirmed in slot b.
func TestCycleCrashPoints(t *testing.T) {
	f := newTestFleet(t, "acme-gw-r2")
	for _, stop := range []string{"resume", "check", "begin", "install-torn", "install", "reboot"} {
		t.Run(stop, func(t *testing.T) {
			d := newTestDevice(t, f, "acme-gw-r2")
			if stop == "reboot" {
				drive(t, d, "") // Install done, rebooted into b, not yet confirmed
			} else {
				drive(t, d, stop)
			}
			assertConsistent(t, d)
			runToEnd(t, d)
			assertConsistent(t, d)
			st := d.status()
			assert.Nil(t, st.Pending)
			assert.Equal(t, "1.1.0", st.Installed.Version.String())
			assert.Equal(t, "b", st.Installed.Slot)
			floor, err := d.counter.Value(context.Background())
			require.NoError(t, err)
			assert.Equal(t, uint64(2), floor)
		})
	}
}

// assertConsistent checks what must hold at any crash point: the installed
// slot holds the installed image, the floor is the installed image's, and
// a pending record is of the update in the other slot.
func assertConsistent(t *testing.T, d *testDevice) {
	t.Helper()
	st := d.status()
	ok, err := d.cycle().SlotHolds(*st.Installed)
	require.NoError(t, err)
	assert.True(t, ok, "slot %s holds %s", st.Installed.Slot, st.Installed.Version)
	assert.Equal(t, st.Installed.SecurityVersion, st.Floors[d.hardwareID])
	if st.Pending != nil {
		assert.NotEqual(t, st.Installed.Slot, st.Pending.Slot)
		assert.Equal(t, d.f.imagePath("1.1.0"), st.Pending.TargetPath)
	}
}

// A new image that fails its health check is reverted: the device is back
// on 1.0.0 with the floor where it was, and the next Check offers 1.1.0.
func TestCycleRevert(t *testing.T) {
	ctx := context.Background()
	_, d := fleetAndDevice(t)
	drive(t, d, "")
	c := d.cycle()
	act, img, err := c.Resume(ctx, "b")
	require.NoError(t, err)
	require.Equal(t, verify.ResumeTrial, act)
	assert.Equal(t, "1.1.0", img.Version.String())
	_, err = c.Revert(ctx)
	require.NoError(t, err)
	d.booted = "a"

	c = d.cycle()
	act, img, err = c.Resume(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, verify.ResumeRunning, act)
	assert.Equal(t, "1.0.0", img.Version.String())
	assertConsistent(t, d)
	u, err := c.Check(ctx)
	require.NoError(t, err)
	assert.Equal(t, "1.1.0", u.Release.Firmware.Version.String())

	_, _, err = c.Resume(ctx, "c")
	assert.ErrorIs(t, err, verify.ErrBootedSlot)
}

// Confirm refuses an image whose slot changed since it was written.
func TestCycleConfirmChecksSlot(t *testing.T) {
	ctx := context.Background()
	_, d := fleetAndDevice(t)
	drive(t, d, "")
	d.writeSlot("b", []byte("garbage"))
	_, err := d.cycle().Confirm(ctx)
	assert.ErrorIs(t, err, verify.ErrSlotContent)
	assert.NotNil(t, d.status().Pending, "state unchanged")
}
