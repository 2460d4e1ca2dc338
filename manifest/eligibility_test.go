package manifest

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const fleetSize = 10000

// fleet returns n device rollout IDs like the random ones package
// rollback generates (32 hex digits).
func fleet(n int) []string {
	rng := rand.New(rand.NewPCG(1, 2))
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64())
	}
	return ids
}

// At each wave the share of a 10,000-device fleet that may install is the
// schedule's, within one percentage point.
func TestRolloutSharePerWave(t *testing.T) {
	const path = "acme-gw-r2/2.4.1/firmware.bin"
	r := testRollout()
	ids := fleet(fleetSize)
	for i, w := range r.Waves {
		at := r.Start.Add(w.Offset)
		eligible := 0
		for _, id := range ids {
			if r.Eligible(path, id, at) {
				eligible++
			}
		}
		got := 100 * float64(eligible) / fleetSize
		want := float64(w.Share) / 100
		t.Logf("wave %d (+%v): schedule %5.2f%%, measured %5.2f%% (%d of %d)", i, w.Offset, want, got, eligible, fleetSize)
		assert.InDelta(t, want, got, 1.0, "wave %d", i)
		// Just before the wave, only the previous wave's devices.
		if i > 0 {
			before := 0
			for _, id := range ids {
				if r.Eligible(path, id, at.Add(-time.Second)) {
					before++
				}
			}
			assert.Less(t, before, eligible, "wave %d adds devices", i)
		}
	}
	nobody := 0
	for _, id := range ids {
		if r.Eligible(path, id, r.Start.Add(-time.Second)) {
			nobody++
		}
	}
	assert.Zero(t, nobody, "no device before the start")
}

// Two releases start on different devices: the first 10% of one overlaps
// the first 10% of the other about as two independent draws would (10%).
func TestRolloutOrderDiffersPerRelease(t *testing.T) {
	ids := fleet(fleetSize)
	first := func(path string) map[string]bool {
		m := map[string]bool{}
		for _, id := range ids {
			if RolloutBucket(path, id) < 1000 {
				m[id] = true
			}
		}
		return m
	}
	a, b := first("acme-gw-r2/2.4.1/firmware.bin"), first("acme-gw-r2/2.5.0/firmware.bin")
	both := 0
	for id := range a {
		if b[id] {
			both++
		}
	}
	overlap := 100 * float64(both) / float64(len(a))
	t.Logf("first 10%%: %d and %d devices, %d in both: overlap %.2f%% of the first release's", len(a), len(b), both, overlap)
	assert.True(t, overlap >= 5 && overlap <= 15, "overlap %.2f%% outside 5..15%%", overlap)
}

// A device eligible at t is eligible at every later t, for any schedule:
// random valid schedules, devices and pairs of times.
func TestRolloutEligibilityMonotonic(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := 0; trial < 300; trial++ {
		r := &Rollout{Start: rolloutStart}
		n := 1 + rng.IntN(MaxWaves)
		var off time.Duration
		share := 0
		for i := 0; i < n; i++ {
			off += time.Duration(1+rng.IntN(100000)) * time.Second
			share += rng.IntN(FullShare - share + 1)
			if i == n-1 {
				share = FullShare
			}
			r.Waves = append(r.Waves, Wave{Offset: off, Share: share})
		}
		require.NoError(t, r.Validate())
		last := r.Start.Add(off)
		id := fmt.Sprint(rng.Uint64())
		path := fmt.Sprintf("hw/%d/fw.bin", trial)
		from := r.EligibleFrom(path, id)
		assert.False(t, from.Before(r.Start), "trial %d", trial)
		assert.False(t, from.After(last), "trial %d: everybody by the last wave", trial)
		for k := 0; k < 20; k++ {
			t1 := r.Start.Add(time.Duration(rng.Int64N(int64(off+time.Hour))) - time.Hour/2)
			t2 := t1.Add(time.Duration(rng.Int64N(int64(off))))
			if r.Eligible(path, id, t1) {
				assert.True(t, r.Eligible(path, id, t2), "trial %d: eligible at %v, not at %v", trial, t1, t2)
			}
			assert.Equal(t, !t1.Before(from), r.Eligible(path, id, t1), "trial %d: EligibleFrom agrees", trial)
		}
	}
}

func TestRolloutBucket(t *testing.T) {
	// The definition, spelled out: a change to it re-orders every fleet.
	// (Python: int.from_bytes(sha256(b"a/1.0.0/fw.bin\0dev-1").digest()[:8], "big") % 10000)
	assert.Equal(t, 7703, RolloutBucket("a/1.0.0/fw.bin", "dev-1"))
	assert.NotEqual(t, RolloutBucket("a/b", "c"), RolloutBucket("a/", "bc"), "the separator keeps path and ID apart")
	for _, id := range fleet(1000) {
		b := RolloutBucket("p", id)
		assert.True(t, b >= 0 && b < FullShare)
	}
	// A hand-built schedule without a full last wave reaches no one,
	// rather than everyone.
	r := &Rollout{Start: rolloutStart, Waves: []Wave{{0, 0}}}
	assert.False(t, r.Eligible("p", "id", rolloutStart.Add(MaxWaveOffset)))
}
