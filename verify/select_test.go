package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"testing"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/rollback"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

func firmwareSetter(t *testing.T, v string, sv uint64, hw ...string) func(*metadata.TargetFiles) {
	return func(tf *metadata.TargetFiles) {
		require.NoError(t, manifest.SetFirmware(tf, manifest.Firmware{Version: manifest.MustParseVersion(v), SecurityVersion: sv,
			HardwareIDs: hw, Severity: manifest.SeveritySecurity, Advisories: []string{"CVE-2026-0001"}}))
	}
}

// releaseRepo: 1.0.0 and 1.1.0 in targets, 1.2.0 and a delta 1.0.0->1.2.0
// in a delegated role, and a release for other hardware.
func releaseRepo(t *testing.T) (*repo, map[string][]byte) {
	r := newRepo(t)
	img := map[string][]byte{
		"1.0.0": bytes.Repeat([]byte("one "), 1000),
		"1.1.0": bytes.Repeat([]byte("two "), 1000),
		"1.2.0": bytes.Repeat([]byte("three "), 1000),
	}
	r.AddTarget("targets", "acme-gw-r2/1.0.0/fw.bin", img["1.0.0"], firmwareSetter(t, "1.0.0", 1, "acme-gw-r2"))
	r.AddTarget("targets", "acme-gw-r2/1.1.0/fw.bin", img["1.1.0"], firmwareSetter(t, "1.1.0", 1, "acme-gw-r2"))
	r.AddTarget("targets", "acme-lock/9.0.0/fw.bin", []byte("lock"), firmwareSetter(t, "9.0.0", 9, "acme-lock"))
	r.Delegate("targets", metadata.DelegatedRole{Name: "gw-team", Paths: []string{"acme-gw-r2/*/*"}})
	r.AddTarget("gw-team", "acme-gw-r2/1.2.0/fw.bin", img["1.2.0"], firmwareSetter(t, "1.2.0", 2, "acme-gw-r2"))
	from, to := sha256.Sum256(img["1.0.0"]), sha256.Sum256(img["1.2.0"])
	r.AddTarget("gw-team", "acme-gw-r2/deltas/1.0.0-1.2.0.zst", []byte("small patch"), func(tf *metadata.TargetFiles) {
		require.NoError(t, manifest.SetDelta(tf, manifest.Delta{Format: manifest.FormatZstdStream,
			From: manifest.DeltaEnd{Path: "acme-gw-r2/1.0.0/fw.bin", Length: int64(len(img["1.0.0"])), SHA256: from[:]},
			To:   manifest.DeltaEnd{Path: "acme-gw-r2/1.2.0/fw.bin", Length: int64(len(img["1.2.0"])), SHA256: to[:]}}))
	})
	return r, img
}

func installedImage(v string, sv uint64, data []byte) *rollback.Image {
	sum := sha256.Sum256(data)
	return &rollback.Image{HardwareID: "acme-gw-r2", TargetPath: "acme-gw-r2/" + v + "/fw.bin",
		Version: manifest.MustParseVersion(v), SecurityVersion: sv, Length: int64(len(data)), SHA256: sum[:], Slot: "a"}
}

// newDevice returns the trusted state of a device of hardwareID running
// installed (nil: never provisioned), its hardware counter at floor.
func newDevice(t testing.TB, hardwareID string, installed *rollback.Image, floor uint64, policy rollback.InstallPolicy) *rollback.State {
	ctx := context.Background()
	counter := rollback.NewStoreCounter(rollback.NewMemStore(), "counter")
	require.NoError(t, counter.Advance(ctx, floor))
	st, err := rollback.OpenState(ctx, rollback.NewMemStore(), rollback.StateOptions{HardwareID: hardwareID, Counter: counter, Policy: policy})
	require.NoError(t, err)
	if installed != nil {
		require.NoError(t, st.Provision(ctx, *installed))
	}
	return st
}

// gateway is an acme-gw-r2 device with the default policy.
func gateway(t testing.TB, installed *rollback.Image) *rollback.State {
	return newDevice(t, "acme-gw-r2", installed, 0, rollback.InstallPolicy{})
}

func TestSelect(t *testing.T) {
	ctx := context.Background()
	r, img := releaseRepo(t)
	c := refreshed(t, r)

	u, err := c.Select(ctx, gateway(t, installedImage("1.0.0", 1, img["1.0.0"])))
	require.NoError(t, err)
	assert.Equal(t, "acme-gw-r2/1.2.0/fw.bin", u.Release.Path)
	assert.Equal(t, "gw-team", u.Role)
	assert.Equal(t, manifest.SeveritySecurity, u.Release.Firmware.Severity)
	assert.Equal(t, []string{"CVE-2026-0001"}, u.Release.Firmware.Advisories)
	require.NotNil(t, u.Patch, "a delta from the installed image is the cheaper route")
	assert.Equal(t, "acme-gw-r2/deltas/1.0.0-1.2.0.zst", u.Patch.Path)

	// From 1.1.0 there is no delta: the full image.
	u, err = c.Select(ctx, gateway(t, installedImage("1.1.0", 1, img["1.1.0"])))
	require.NoError(t, err)
	assert.Equal(t, "acme-gw-r2/1.2.0/fw.bin", u.Release.Path)
	assert.Nil(t, u.Patch)

	// A device never provisioned takes the newest.
	u, err = c.Select(ctx, gateway(t, nil))
	require.NoError(t, err)
	assert.Equal(t, "1.2.0", u.Release.Firmware.Version.String())

	// Up to date.
	_, err = c.Select(ctx, gateway(t, installedImage("1.2.0", 2, img["1.2.0"])))
	assert.ErrorIs(t, err, ErrNoUpdate)
	assert.ErrorIs(t, err, rollback.ErrVersionEqual)

	// Every release below the floor: refused as a security rollback.
	_, err = c.Select(ctx, newDevice(t, "acme-gw-r2", nil, 3, rollback.InstallPolicy{}))
	assert.ErrorIs(t, err, ErrNoUpdate)
	assert.ErrorIs(t, err, rollback.ErrSecurityVersionLower)

	// Other hardware sees only its own release.
	u, err = c.Select(ctx, newDevice(t, "acme-lock", nil, 0, rollback.InstallPolicy{}))
	require.NoError(t, err)
	assert.Equal(t, "acme-lock/9.0.0/fw.bin", u.Release.Path)
	_, err = c.Select(ctx, newDevice(t, "acme-unknown", nil, 0, rollback.InstallPolicy{}))
	assert.ErrorIs(t, err, ErrNoReleases)
}

// beginImage is the pending record an agent writes for rel before
// installing it into slot b.
func beginImage(hardwareID string, rel manifest.Release) rollback.Image {
	return rollback.Image{HardwareID: hardwareID, TargetPath: rel.Path, Version: rel.Firmware.Version, SecurityVersion: rel.Firmware.SecurityVersion,
		Length: rel.File.Length, SHA256: rel.File.Hashes["sha256"], Slot: "b"}
}

// TestSelectAgreesWithBegin: the rollback policy has one owner, the device
// state. Whatever the installed image, floor and policy, Select offers only
// a release that the same state's Begin accepts, and when it offers none,
// Begin refuses every release of the device's hardware.
func TestSelectAgreesWithBegin(t *testing.T) {
	ctx := context.Background()
	r, img := releaseRepo(t)
	c := refreshed(t, r)
	releases := map[string]manifest.Release{}
	for _, v := range []string{"1.0.0", "1.1.0", "1.2.0"} {
		tf, _, err := c.FindTarget(ctx, "acme-gw-r2/"+v+"/fw.bin")
		require.NoError(t, err)
		fw, err := manifest.FirmwareOf(tf)
		require.NoError(t, err)
		releases[v] = manifest.Release{Path: "acme-gw-r2/" + v + "/fw.bin", File: tf, Firmware: fw}
	}
	offered := 0
	for _, v := range []string{"1.0.0", "1.1.0", "1.2.0"} {
		for floor := uint64(0); floor <= 3; floor++ {
			for _, policy := range []rollback.InstallPolicy{{}, {AllowDowngrade: true}} {
				installed := installedImage(v, releases[v].Firmware.SecurityVersion, img[v])
				st := newDevice(t, "acme-gw-r2", installed, floor, policy)
				u, err := c.Select(ctx, st)
				if err == nil {
					offered++
					assert.NoError(t, st.Begin(ctx, beginImage("acme-gw-r2", u.Release)), "installed %s, floor %d, %+v: offered %s", v, floor, policy, u.Release.Path)
					continue
				}
				require.ErrorIs(t, err, ErrNoUpdate)
				for _, rel := range releases {
					assert.Error(t, st.Begin(ctx, beginImage("acme-gw-r2", rel)), "installed %s, floor %d, %+v: Begin takes %s that Select did not offer", v, floor, policy, rel.Path)
				}
			}
		}
	}
	assert.Positive(t, offered)

	// The state's policy, not the caller's, decides: the default refuses
	// the same version, and a state cannot be told it is other hardware.
	_, err := c.Select(ctx, gateway(t, installedImage("1.2.0", 2, img["1.2.0"])))
	assert.ErrorIs(t, err, rollback.ErrVersionEqual)
	lock := newDevice(t, "acme-lock", nil, 0, rollback.InstallPolicy{})
	u, err := c.Select(ctx, lock)
	require.NoError(t, err)
	assert.Equal(t, []string{"acme-lock"}, u.Release.Firmware.HardwareIDs)
	assert.ErrorIs(t, lock.Check(ctx, releases["1.2.0"].Firmware), rollback.ErrWrongHardware)
}

// brokenState fails or misbehaves where a device state can.
type brokenState struct {
	*rollback.State
	best int
	err  error
}

func (b brokenState) Choose(context.Context, []*manifest.Firmware) (int, error) { return b.best, b.err }

// A state that cannot be read is an error, not "no update"; an index
// outside the candidates is refused rather than trusted.
func TestSelectStateErrors(t *testing.T) {
	ctx := context.Background()
	r, _ := releaseRepo(t)
	c := refreshed(t, r)
	_, err := c.Select(ctx, brokenState{gateway(t, nil), -1, rollback.ErrCorrupt})
	assert.ErrorIs(t, err, rollback.ErrCorrupt)
	assert.NotErrorIs(t, err, ErrNoUpdate)
	_, err = c.Select(ctx, brokenState{gateway(t, nil), 3, nil})
	assert.Error(t, err)
	assert.NotErrorIs(t, err, ErrNoUpdate)
	_, err = c.Select(ctx, brokenState{gateway(t, nil), -1, nil})
	assert.ErrorIs(t, err, ErrNoUpdate)
}

// A lower-priority role cannot override the release the delegation order
// trusts for a path.
func TestSelectRefusesOverride(t *testing.T) {
	r, _ := releaseRepo(t)
	// gw-team also lists 1.1.0's path, with other bytes and a higher version.
	r.AddTarget("gw-team", "acme-gw-r2/1.1.0/fw.bin", []byte("evil"), firmwareSetter(t, "9.9.9", 9, "acme-gw-r2"))
	c := refreshed(t, r)
	_, err := c.Select(context.Background(), gateway(t, nil))
	assert.ErrorIs(t, err, manifest.ErrRepository)
}
