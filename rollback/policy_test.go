package rollback

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"testing/quick"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/manifest"
)

const hw = "acme-gw-r2"

func fw(version string, sv uint64, hardware ...string) *manifest.Firmware {
	if len(hardware) == 0 {
		hardware = []string{hw}
	}
	return &manifest.Firmware{Version: manifest.MustParseVersion(version), SecurityVersion: sv, HardwareIDs: hardware}
}

func img(version string, sv uint64) *Image {
	return &Image{
		HardwareID: hw, TargetPath: hw + "/" + version + "/firmware.bin",
		Version: manifest.MustParseVersion(version), SecurityVersion: sv,
		Length: 1024, SHA256: make([]byte, 32), Slot: "a",
	}
}

func TestCheck(t *testing.T) {
	allow := InstallPolicy{AllowDowngrade: true}
	otherHW := img("2.0.0", 5)
	otherHW.HardwareID = "other"
	tests := []struct {
		name      string
		installed *Image
		floors    Floors
		candidate *manifest.Firmware
		policy    InstallPolicy
		want      error
	}{
		{"newer version, same security version", img("2.0.0", 5), Floors{hw: 5}, fw("2.1.0", 5), InstallPolicy{}, nil},
		{"newer version, higher security version", img("2.0.0", 5), Floors{hw: 5}, fw("3.0.0", 6), InstallPolicy{}, nil},
		{"pre-release newer than older release", img("2.0.0", 5), Floors{hw: 5}, fw("2.1.0-rc.1", 5), InstallPolicy{}, nil},
		{"wrong hardware", img("2.0.0", 5), Floors{hw: 5}, fw("3.0.0", 6, "acme-lock"), InstallPolicy{}, ErrWrongHardware},
		{"wrong hardware even with downgrades allowed", img("2.0.0", 5), Floors{hw: 5}, fw("1.0.0", 5, "x"), allow, ErrWrongHardware},
		{"security version below floor", img("2.0.0", 5), Floors{hw: 6}, fw("3.0.0", 5), InstallPolicy{}, ErrSecurityVersionLower},
		{"below floor, downgrades allowed", img("2.0.0", 5), Floors{hw: 6}, fw("3.0.0", 5), allow, ErrSecurityVersionLower},
		{"below installed security version, floor lagging", img("2.0.0", 5), Floors{}, fw("3.0.0", 4), InstallPolicy{}, ErrSecurityVersionLower},
		{"lower version, lower security version", img("2.0.0", 5), Floors{hw: 5}, fw("1.0.0", 4), allow, ErrSecurityVersionLower},
		{"equal version", img("2.0.0", 5), Floors{hw: 5}, fw("2.0.0", 5), InstallPolicy{}, ErrVersionEqual},
		{"equal version, build metadata differs", img("2.0.0", 5), Floors{hw: 5}, fw("2.0.0+b2", 5), allow, ErrVersionEqual},
		{"lower version", img("2.0.0", 5), Floors{hw: 5}, fw("1.9.0", 5), InstallPolicy{}, ErrVersionLower},
		{"lower version, downgrades allowed", img("2.0.0", 5), Floors{hw: 5}, fw("1.9.0", 5), allow, nil},
		{"lower version, higher security version", img("2.0.0", 5), Floors{hw: 5}, fw("1.9.0", 6), allow, ErrVersionLower},
		{"nothing installed", nil, Floors{}, fw("0.1.0", 0), InstallPolicy{}, nil},
		{"nothing installed, floor applies", nil, Floors{hw: 3}, fw("9.0.0", 2), InstallPolicy{}, ErrSecurityVersionLower},
		{"installed for other hardware", otherHW, Floors{hw: 1}, fw("1.0.0", 1), InstallPolicy{}, nil},
		{"floor of other hardware ignored", img("2.0.0", 5), Floors{hw: 5, "other": 99}, fw("2.0.1", 5), InstallPolicy{}, nil},
		{"nil floors", img("2.0.0", 5), nil, fw("2.0.1", 5), InstallPolicy{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := check(hw, tt.installed, tt.floors, tt.candidate, tt.policy)
			if tt.want == nil {
				assert.NoError(t, got)
				return
			}
			assert.ErrorIs(t, got, tt.want)
			var re *RefusedError
			require.ErrorAs(t, got, &re)
			assert.Equal(t, tt.candidate.Version, re.Candidate)
			assert.Equal(t, tt.floors[hw], re.Floor)
			assert.Contains(t, got.Error(), "rollback: ")
			// Exactly one policy sentinel.
			n := 0
			for _, s := range []error{ErrWrongHardware, ErrSecurityVersionLower, ErrVersionLower, ErrVersionEqual} {
				if assert.ObjectsAreEqual(re.Err, s) {
					n++
				}
			}
			assert.Equal(t, 1, n)
		})
	}
}

func TestChoose(t *testing.T) {
	installed := img("2.0.0", 5)
	floors := Floors{hw: 5}
	tests := []struct {
		name       string
		candidates []*manifest.Firmware
		want       int
		wantErr    error
	}{
		{"empty", nil, -1, nil},
		{"newest allowed wins", []*manifest.Firmware{fw("2.1.0", 5), fw("2.3.0", 6), fw("2.2.0", 5)}, 1, nil},
		{"skips refused newer", []*manifest.Firmware{fw("2.1.0", 5), fw("9.0.0", 6, "other")}, 0, nil},
		{"none allowed reports the newest's refusal", []*manifest.Firmware{fw("1.0.0", 5), fw("2.0.0", 5), fw("1.5.0", 4)}, -1, ErrVersionEqual},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := choose(hw, installed, floors, tt.candidates, InstallPolicy{})
			assert.Equal(t, tt.want, got)
			if tt.wantErr == nil {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, tt.wantErr)
			}
		})
	}
}

// TestChooseDowngradeOnlyWhenWithdrawn: with downgrades allowed, a device
// on the newest listed release stays there (it used to be offered the
// release below, then the newest again on the next check, for ever); once
// its release is no longer listed, the newest listed below it is the way
// back.
func TestChooseDowngradeOnlyWhenWithdrawn(t *testing.T) {
	installed := img("2.0.0", 5)
	floors := Floors{hw: 5}
	allow := InstallPolicy{AllowDowngrade: true}
	tests := []struct {
		name       string
		candidates []*manifest.Firmware
		want       int
		wantErr    error
	}{
		{"installed still listed", []*manifest.Firmware{fw("1.9.0", 5), fw("2.0.0", 5)}, -1, ErrVersionEqual},
		{"newer listed", []*manifest.Firmware{fw("1.9.0", 5), fw("2.1.0", 5)}, 1, nil},
		{"newer refused, still no downgrade", []*manifest.Firmware{fw("1.9.0", 5), fw("2.1.0", 4)}, -1, ErrSecurityVersionLower},
		{"withdrawn: newest listed below", []*manifest.Firmware{fw("1.8.0", 5), fw("1.9.0", 5)}, 1, nil},
		{"withdrawn, newer only for other hardware", []*manifest.Firmware{fw("1.9.0", 5), fw("3.0.0", 5, "other")}, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := choose(hw, installed, floors, tt.candidates, allow)
			assert.Equal(t, tt.want, got)
			if tt.wantErr == nil {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, tt.wantErr)
			}
			// Each check alone still allows the downgrade: only the
			// choice among listed releases avoids it.
			assert.NoError(t, check(hw, installed, floors, fw("1.9.0", 5), allow))
		})
	}
}

// TestFloorsNeverFall: Raised never lowers any floor, and never changes its
// receiver.
func TestFloorsNeverFall(t *testing.T) {
	prop := func(start map[string]uint64, id string, sv uint64) bool {
		f := Floors(start)
		before := map[string]uint64{}
		for k, v := range f {
			before[k] = v
		}
		got := f.Raised(id, sv)
		for k, v := range before {
			if got[k] < v || f[k] != v {
				return false
			}
		}
		return got[id] == max(before[id], sv) && len(f) == len(before)
	}
	require.NoError(t, quick.Check(prop, &quick.Config{MaxCount: 2000}))
}

// TestPolicyProperty: whatever the inputs, an allowed candidate is never
// below the floor or the installed security version, and never equal to
// the installed version.
func TestPolicyProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 5000; i++ {
		installed := img(fmt.Sprintf("%d.%d.0", rng.IntN(3), rng.IntN(3)), rng.Uint64N(5))
		floors := Floors{hw: rng.Uint64N(6)}
		c := fw(fmt.Sprintf("%d.%d.0", rng.IntN(3), rng.IntN(3)), rng.Uint64N(6))
		p := InstallPolicy{AllowDowngrade: rng.IntN(2) == 0}
		if check(hw, installed, floors, c, p) != nil {
			continue
		}
		require.GreaterOrEqual(t, c.SecurityVersion, floors[hw])
		require.GreaterOrEqual(t, c.SecurityVersion, installed.SecurityVersion)
		require.NotZero(t, c.Version.Compare(installed.Version))
		if c.Version.Compare(installed.Version) < 0 {
			require.True(t, p.AllowDowngrade)
			require.Equal(t, installed.SecurityVersion, c.SecurityVersion)
		}
	}
}
