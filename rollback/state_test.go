package rollback

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/manifest"
)

func slotImg(version string, sv uint64, slot string) Image {
	i := img(version, sv)
	i.Slot = slot
	return *i
}

func newState(t *testing.T) (*State, *StoreCounter, Store) {
	t.Helper()
	store := NewMemStore()
	counter := NewStoreCounter(NewMemStore(), "counter")
	st, err := OpenState(context.Background(), store, StateOptions{HardwareID: hw, Counter: counter})
	require.NoError(t, err)
	return st, counter, store
}

func TestOpenOptions(t *testing.T) {
	ctx := context.Background()
	_, err := OpenState(ctx, NewMemStore(), StateOptions{Counter: NewStoreCounter(NewMemStore(), "c")})
	assert.Error(t, err)
	_, err = OpenState(ctx, NewMemStore(), StateOptions{HardwareID: hw})
	assert.ErrorIs(t, err, ErrNoCounter)
	st, err := OpenState(ctx, NewMemStore(), StateOptions{HardwareID: hw, AllowNoCounter: true})
	require.NoError(t, err)
	require.NoError(t, st.Provision(ctx, slotImg("1.0.0", 3, "a")))
	s, err := st.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, Floors{hw: 3}, s.Floors)
}

func TestInstallLifecycle(t *testing.T) {
	ctx := context.Background()
	st, counter, _ := newState(t)

	// Before provisioning.
	s, err := st.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, Status{Floors: Floors{}}, s)
	assert.ErrorIs(t, st.Begin(ctx, slotImg("1.1.0", 3, "b")), ErrNotProvisioned)
	bad := slotImg("1.0.0", 3, "a")
	bad.HardwareID = "other"
	assert.ErrorIs(t, st.Provision(ctx, bad), ErrWrongHardware)
	bad = slotImg("1.0.0", 3, "a")
	bad.SHA256 = nil
	assert.ErrorIs(t, st.Provision(ctx, bad), ErrInvalidImage)

	require.NoError(t, st.Provision(ctx, slotImg("1.0.0", 3, "a")))
	assert.ErrorIs(t, st.Provision(ctx, slotImg("1.0.0", 3, "a")), ErrAlreadyProvisioned)
	v, err := counter.Value(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(3), v)

	// Begin: policy, slot and pending checks; floors untouched.
	assert.ErrorIs(t, st.Begin(ctx, slotImg("1.1.0", 4, "a")), ErrActiveSlot)
	assert.ErrorIs(t, st.Begin(ctx, slotImg("1.0.0", 3, "b")), ErrVersionEqual)
	assert.ErrorIs(t, st.Begin(ctx, slotImg("1.1.0", 2, "b")), ErrSecurityVersionLower)
	assert.ErrorIs(t, st.Check(ctx, fw("0.9.0", 3)), ErrVersionLower)
	assert.NoError(t, st.Check(ctx, fw("1.1.0", 4)))
	cand := slotImg("1.1.0", 4, "b")
	require.NoError(t, st.Begin(ctx, cand))
	require.NoError(t, st.Begin(ctx, cand), "same candidate again is a no-op")
	assert.ErrorIs(t, st.Begin(ctx, slotImg("1.2.0", 4, "b")), ErrPendingExists)
	s, err = st.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, Floors{hw: 3}, s.Floors, "Begin raises nothing")
	assert.True(t, s.Pending.Equal(&cand))
	v, err = counter.Value(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(3), v, "Begin does not touch the counter")

	// Revert: pending gone, floors untouched.
	got, err := st.Revert(ctx)
	require.NoError(t, err)
	assert.True(t, got.Equal(&cand))
	_, err = st.Revert(ctx)
	assert.ErrorIs(t, err, ErrNoPending)
	_, err = st.Confirm(ctx)
	assert.ErrorIs(t, err, ErrNoPending)
	s, err = st.Status(ctx)
	require.NoError(t, err)
	assert.Nil(t, s.Pending)
	assert.Equal(t, "1.0.0", s.Installed.Version.String())
	assert.Equal(t, Floors{hw: 3}, s.Floors)

	// Confirm: floors and counter rise, installed changes.
	require.NoError(t, st.Begin(ctx, cand))
	got, err = st.Confirm(ctx)
	require.NoError(t, err)
	assert.True(t, got.Equal(&cand))
	s, err = st.Status(ctx)
	require.NoError(t, err)
	assert.Nil(t, s.Pending)
	assert.True(t, s.Installed.Equal(&cand))
	assert.Equal(t, Floors{hw: 4}, s.Floors)
	v, err = counter.Value(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(4), v)

	// The old image is now refused; the next one goes to the other slot.
	assert.ErrorIs(t, st.Begin(ctx, slotImg("1.0.0", 3, "a")), ErrSecurityVersionLower)
	require.NoError(t, st.Begin(ctx, slotImg("1.2.0", 4, "a")))
}

func TestDowngradePolicy(t *testing.T) {
	ctx := context.Background()
	counter := NewStoreCounter(NewMemStore(), "c")
	st, err := OpenState(ctx, NewMemStore(), StateOptions{HardwareID: hw, Counter: counter, Policy: InstallPolicy{AllowDowngrade: true}})
	require.NoError(t, err)
	require.NoError(t, st.Provision(ctx, slotImg("2.0.0", 5, "a")))
	require.NoError(t, st.Begin(ctx, slotImg("1.9.0", 5, "b")))
	_, err = st.Revert(ctx)
	require.NoError(t, err)
	assert.ErrorIs(t, st.Begin(ctx, slotImg("1.9.0", 4, "b")), ErrSecurityVersionLower)
}

// TestStateChoose: Choose applies the State's own policy and floors, the
// counter's included, so whatever it picks Begin accepts, and when it picks
// nothing Begin refuses every candidate (but a downgrade that Choose holds
// back because a release at or above the installed one is still listed).
func TestStateChoose(t *testing.T) {
	ctx := context.Background()
	for i, policy := range []InstallPolicy{{}, {AllowDowngrade: true}, {}, {AllowDowngrade: true}} {
		counter := NewStoreCounter(NewMemStore(), "c")
		st, err := OpenState(ctx, NewMemStore(), StateOptions{HardwareID: hw, Counter: counter, Policy: policy})
		require.NoError(t, err)
		assert.Equal(t, hw, st.HardwareID())
		require.NoError(t, st.Provision(ctx, slotImg("2.0.0", 5, "a")))
		if i >= 2 {
			// The counter is ahead of the stored floor (a restored backup).
			require.NoError(t, counter.Advance(ctx, 6))
		}

		got, err := st.Choose(ctx, nil)
		assert.Equal(t, -1, got)
		assert.NoError(t, err)

		rng := rand.New(rand.NewPCG(3, 4))
		for i := 0; i < 300; i++ {
			var cands []*manifest.Firmware
			for j := rng.IntN(4); j >= 0; j-- {
				hardware := hw
				if rng.IntN(5) == 0 {
					hardware = "other"
				}
				cands = append(cands, fw(fmt.Sprintf("%d.%d.0", 1+rng.IntN(3), rng.IntN(3)), 4+rng.Uint64N(4), hardware))
			}
			best, err := st.Choose(ctx, cands)
			if best >= 0 {
				require.NoError(t, err)
				c := cands[best]
				require.NoError(t, st.Begin(ctx, slotImg(c.Version.String(), c.SecurityVersion, "b")), "policy %+v: %s", policy, c.Version)
				_, err = st.Revert(ctx)
				require.NoError(t, err)
				continue
			}
			var re *RefusedError
			require.ErrorAs(t, err, &re)
			// A downgrade that Begin would take is not offered while a
			// release at or above the installed version is listed.
			installed := manifest.MustParseVersion("2.0.0")
			holdsDowngrades := policy.AllowDowngrade && listsAtLeast(hw, installed, cands)
			for _, c := range cands {
				if !c.Supports(hw) || holdsDowngrades && c.Version.Compare(installed) < 0 {
					continue
				}
				assert.Error(t, st.Begin(ctx, slotImg(c.Version.String(), c.SecurityVersion, "b")), "policy %+v: %s", policy, c.Version)
			}
		}
	}
}

// TestCounterHoldsFloor: a floors record rolled back on disk (restored
// backup) cannot undercut the hardware counter, and a crash between the
// commit and the counter advance is finished by Open.
func TestCounterHoldsFloor(t *testing.T) {
	ctx := context.Background()
	st, counter, store := newState(t)
	require.NoError(t, st.Provision(ctx, slotImg("1.0.0", 3, "a")))
	old, err := store.Load(ctx, installRecordName)
	require.NoError(t, err)
	require.NoError(t, st.Begin(ctx, slotImg("2.0.0", 7, "b")))
	_, err = st.Confirm(ctx)
	require.NoError(t, err)

	// Roll the install record back to the provisioned one.
	cur, err := store.Load(ctx, installRecordName)
	require.NoError(t, err)
	_, err = store.CompareAndSwap(ctx, installRecordName, cur.Seq, old.Data)
	require.NoError(t, err)
	s, err := st.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(7), s.Floors[hw], "counter holds the floor")
	assert.ErrorIs(t, st.Begin(ctx, slotImg("1.5.0", 6, "b")), ErrSecurityVersionLower)

	// Commit without counter advance, as a crash would leave it.
	lagging := NewStoreCounter(NewMemStore(), "c")
	st2, err := OpenState(ctx, store, StateOptions{HardwareID: hw, Counter: lagging})
	require.NoError(t, err)
	require.NoError(t, st2.Begin(ctx, slotImg("1.5.0", 9, "b")))
	rec, seq, err := st2.load(ctx)
	require.NoError(t, err)
	rec.Installed, rec.Pending, rec.Floors = rec.Pending, nil, rec.Floors.Raised(hw, 9)
	require.NoError(t, st2.save(ctx, seq, rec))
	v, err := lagging.Value(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(3), v)
	_, err = OpenState(ctx, store, StateOptions{HardwareID: hw, Counter: lagging})
	require.NoError(t, err)
	v, err = lagging.Value(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(9), v, "Open finished the confirm")
	_ = counter
}

// failingCounter fails every call after the first n.
type failingCounter struct {
	Counter
	n int
}

var errCounter = errors.New("counter broke")

func (f *failingCounter) Value(ctx context.Context) (uint64, error) {
	if f.n <= 0 {
		return 0, errCounter
	}
	f.n--
	return f.Counter.Value(ctx)
}

func (f *failingCounter) Advance(ctx context.Context, v uint64) error {
	if f.n <= 0 {
		return errCounter
	}
	f.n--
	return f.Counter.Advance(ctx, v)
}

func TestStateErrors(t *testing.T) {
	ctx := context.Background()
	store := NewMemStore()
	_, err := OpenState(ctx, store, StateOptions{HardwareID: hw, Counter: &failingCounter{Counter: NewStoreCounter(NewMemStore(), "c")}})
	assert.ErrorIs(t, err, errCounter)

	fc := &failingCounter{Counter: NewStoreCounter(NewMemStore(), "c"), n: 1}
	st, err := OpenState(ctx, store, StateOptions{HardwareID: hw, Counter: fc})
	require.NoError(t, err)
	_, err = st.Status(ctx)
	assert.ErrorIs(t, err, errCounter)
	assert.ErrorIs(t, st.Check(ctx, fw("1.0.0", 1)), errCounter)
	got, err := st.Choose(ctx, []*manifest.Firmware{fw("1.0.0", 1)})
	assert.Equal(t, -1, got)
	assert.ErrorIs(t, err, errCounter, "a state that cannot be read chooses nothing")
	assert.ErrorIs(t, st.Provision(ctx, slotImg("1.0.0", 1, "a")), errCounter, "record committed, counter not")
	assert.ErrorIs(t, st.Begin(ctx, slotImg("1.1.0", 1, "b")), errCounter)
	fc.n = 1
	require.NoError(t, st.Begin(ctx, slotImg("1.1.0", 1, "b")))
	_, err = st.Confirm(ctx)
	assert.ErrorIs(t, err, errCounter)

	// A corrupt install record is reported, never trusted.
	cur, err := store.Load(ctx, installRecordName)
	require.NoError(t, err)
	for _, data := range []string{"{", `{"format":2}`, `{"format":1,"x":1}`, `{"format":1} {}`,
		`{"format":1,"installed":{"version":"v1"}}`, `{"format":1,"pending":{"version":"1.0.0","sha256":"AA"}}`,
		`{"format":1,"installed":{"version":"1.0.0","sha256":"00"}}`, `{"format":1,"floors":{"":1}}`} {
		cur.Seq, err = store.CompareAndSwap(ctx, installRecordName, cur.Seq, []byte(data))
		require.NoError(t, err)
		_, err = OpenState(ctx, store, StateOptions{HardwareID: hw, AllowNoCounter: true})
		assert.ErrorIs(t, err, ErrCorrupt, data)
		st, err := OpenState(ctx, NewMemStore(), StateOptions{HardwareID: hw, AllowNoCounter: true})
		require.NoError(t, err)
		st.store = store
		_, err = st.Status(ctx)
		assert.ErrorIs(t, err, ErrCorrupt)
		assert.ErrorIs(t, st.Provision(ctx, slotImg("1.0.0", 1, "a")), ErrCorrupt)
		assert.ErrorIs(t, st.Begin(ctx, slotImg("1.0.0", 1, "a")), ErrCorrupt)
		assert.ErrorIs(t, st.Check(ctx, fw("1.0.0", 1)), ErrCorrupt)
		_, err = st.Choose(ctx, []*manifest.Firmware{fw("1.0.0", 1)})
		assert.ErrorIs(t, err, ErrCorrupt)
		_, err = st.Confirm(ctx)
		assert.ErrorIs(t, err, ErrCorrupt)
		_, err = st.Revert(ctx)
		assert.ErrorIs(t, err, ErrCorrupt)
	}
	assert.ErrorIs(t, st.Begin(ctx, Image{}), ErrInvalidImage)
}

// TestStateMachineProperty drives random operation sequences and checks
// the invariants: floors never fall, they change only on Confirm, and the
// installed image never sits below its floor.
func TestStateMachineProperty(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 11))
	for run := 0; run < 50; run++ {
		st, counter, _ := newState(t)
		require.NoError(t, st.Provision(ctx, slotImg("1.0.0", 1, "a")))
		prev, err := st.Status(ctx)
		require.NoError(t, err)
		for step := 0; step < 60; step++ {
			op := rng.IntN(3)
			switch op {
			case 0:
				slot := []string{"a", "b"}[rng.IntN(2)]
				v := []string{"0.5.0", "1.0.0", "1.5.0", "2.0.0", "3.0.0"}[rng.IntN(5)]
				_ = st.Begin(ctx, slotImg(v+"-"+string(rune('a'+step%26)), rng.Uint64N(8), slot))
			case 1:
				_, _ = st.Confirm(ctx)
			case 2:
				_, _ = st.Revert(ctx)
			}
			s, err := st.Status(ctx)
			require.NoError(t, err)
			require.GreaterOrEqual(t, s.Floors[hw], prev.Floors[hw], "floor fell")
			if op != 1 {
				require.Equal(t, prev.Floors, s.Floors, "floor moved outside Confirm")
			}
			require.GreaterOrEqual(t, s.Installed.SecurityVersion, uint64(1))
			require.Equal(t, s.Floors[hw], max(s.Installed.SecurityVersion, prev.Floors[hw]))
			cv, err := counter.Value(ctx)
			require.NoError(t, err)
			require.Equal(t, s.Floors[hw], cv)
			prev = s
		}
	}
}

func TestMetadata(t *testing.T) {
	ctx := context.Background()
	store, err := OpenFileStore(filepath.Join(t.TempDir(), "s"), FileStoreOptions{})
	require.NoError(t, err)
	st, err := OpenState(ctx, store, StateOptions{HardwareID: hw, AllowNoCounter: true})
	require.NoError(t, err)
	for _, role := range []string{"root", "timestamp", "snapshot", "targets", "acme/gw-r2", "../../x"} {
		r, err := st.Metadata(ctx, role)
		require.NoError(t, err)
		assert.False(t, r.Exists())
		seq, err := st.SetMetadata(ctx, role, r.Seq, []byte(`{"signed":"`+role+`"}`))
		require.NoError(t, err)
		_, err = st.SetMetadata(ctx, role, r.Seq, []byte("stale writer"))
		assert.ErrorIs(t, err, ErrConflict)
		r, err = st.Metadata(ctx, role)
		require.NoError(t, err)
		assert.Equal(t, `{"signed":"`+role+`"}`, string(r.Data))
		_, err = st.SetMetadata(ctx, role, seq, nil)
		require.NoError(t, err)
		r, err = st.Metadata(ctx, role)
		require.NoError(t, err)
		assert.False(t, r.Exists())
	}
}
