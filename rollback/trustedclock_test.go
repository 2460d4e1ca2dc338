package rollback

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/manifest"
)

// fakeTime is a settable system clock without monotonic readings, so that
// setting it back behaves like a wall clock reset.
type fakeTime struct{ t time.Time }

func (f *fakeTime) Now() time.Time { return f.t }

var epoch = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)

func TestClockFloorAgainstReset(t *testing.T) {
	ctx := context.Background()
	store := NewMemStore()
	sys := &fakeTime{time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	c, err := OpenTrustedClock(ctx, store, TrustedClockOptions{Now: sys.Now})
	require.NoError(t, err)
	assert.True(t, c.Floor().IsZero())
	assert.Equal(t, sys.t, c.Now(), "no floor: the system clock")

	// A verified timestamp proves its signing time.
	ts := &manifest.Timestamp{}
	signed := time.Date(2026, 11, 26, 11, 0, 0, 0, time.UTC)
	manifest.SetSignedAt(ts, signed)
	at, ok, err := manifest.SignedAt(ts)
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, c.Observe(ctx, at))
	assert.Equal(t, signed, c.Floor())
	assert.Equal(t, sys.t, c.Now(), "system clock ahead of the floor")

	// The clock resets to 1970 and the device reboots: Now stays at the
	// floor, so a document that expired before it stays expired.
	sys.t = epoch
	c, err = OpenTrustedClock(ctx, store, TrustedClockOptions{Now: sys.Now})
	require.NoError(t, err)
	expiredAt := signed.Add(-time.Minute)
	assert.Equal(t, signed, c.Now())
	assert.True(t, c.Now().After(expiredAt), "expired metadata stays expired")

	// Time elapsed since the floor was loaded counts.
	sys.t = epoch.Add(time.Hour)
	assert.Equal(t, signed.Add(time.Hour), c.Now())
	// A wall clock set back during the run is ignored.
	sys.t = epoch.Add(-time.Hour)
	assert.Equal(t, signed, c.Now())

	// The floor never moves back.
	require.NoError(t, c.Observe(ctx, signed.Add(-24*time.Hour)))
	assert.Equal(t, signed, c.Floor())
	require.NoError(t, c.Observe(ctx, signed))
	r, err := store.Load(ctx, clockRecordName)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), r.Seq, "nothing written for an older or equal time")
}

func TestClockMonotonicElapsed(t *testing.T) {
	ctx := context.Background()
	// With time.Now (monotonic readings) the elapsed time since the floor
	// was loaded counts, whatever the wall clock says: here the wall clock
	// is decades behind the floor.
	store := NewMemStore()
	floor := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err := store.CompareAndSwap(ctx, clockRecordName, 0, []byte(floor.Format(time.RFC3339Nano)))
	require.NoError(t, err)
	c, err := OpenTrustedClock(ctx, store, TrustedClockOptions{Now: time.Now})
	require.NoError(t, err)
	time.Sleep(20 * time.Millisecond)
	got := c.Now()
	assert.GreaterOrEqual(t, got.Sub(floor), 20*time.Millisecond)
	assert.Less(t, got.Sub(floor), time.Minute)
}

func TestClockFresh(t *testing.T) {
	ctx := context.Background()
	sys := &fakeTime{time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	c, err := OpenTrustedClock(ctx, NewMemStore(), TrustedClockOptions{Now: sys.Now, MaxStaleness: 24 * time.Hour})
	require.NoError(t, err)
	var se *StaleError
	require.ErrorAs(t, c.Fresh(), &se, "never proven")
	assert.True(t, se.Floor.IsZero())
	assert.ErrorContains(t, se, "never proven")

	require.NoError(t, c.Observe(ctx, sys.t.Add(-time.Hour)))
	assert.NoError(t, c.Fresh())
	sys.t = sys.t.Add(48 * time.Hour)
	require.ErrorAs(t, c.Fresh(), &se)
	assert.Equal(t, 24*time.Hour, se.MaxStaleness)
	assert.Equal(t, 49*time.Hour, se.Age)
	assert.Equal(t, sys.t.Add(-49*time.Hour), se.Floor)
	assert.Contains(t, se.Error(), "rollback: ")

	allow, err := OpenTrustedClock(ctx, NewMemStore(), TrustedClockOptions{Now: sys.Now, AllowStale: true})
	require.NoError(t, err)
	assert.NoError(t, allow.Fresh())

	def, err := OpenTrustedClock(ctx, NewMemStore(), TrustedClockOptions{Now: sys.Now})
	require.NoError(t, err)
	require.NoError(t, def.Observe(ctx, sys.t.Add(-DefaultMaxStaleness+time.Second)))
	assert.NoError(t, def.Fresh())
	sys.t = sys.t.Add(time.Minute)
	assert.ErrorIs(t, def.Fresh(), ErrStale)
}

func TestClockSync(t *testing.T) {
	ctx := context.Background()
	sys := &fakeTime{epoch}
	proven := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
	var fail error
	src := TimeSourceFunc(func(context.Context) (time.Time, error) { return proven, fail })
	c, err := OpenTrustedClock(ctx, NewMemStore(), TrustedClockOptions{Now: sys.Now, Source: src})
	require.NoError(t, err)
	require.NoError(t, c.Sync(ctx))
	assert.Equal(t, proven, c.Now())
	fail = errors.New("roughtime: bad signature")
	assert.ErrorIs(t, c.Sync(ctx), fail)

	none, err := OpenTrustedClock(ctx, NewMemStore(), TrustedClockOptions{Now: sys.Now})
	require.NoError(t, err)
	assert.ErrorIs(t, none.Sync(ctx), ErrNoTimeSource)
}

func TestClockErrors(t *testing.T) {
	ctx := context.Background()
	sys := &fakeTime{epoch}
	_, err := OpenTrustedClock(ctx, NewMemStore(), TrustedClockOptions{})
	assert.Error(t, err)
	_, err = OpenTrustedClock(ctx, NewMemStore(), TrustedClockOptions{Now: sys.Now, MaxStaleness: -1})
	assert.Error(t, err)
	for _, bad := range []string{"yesterday", "2026-11-26T12:00:00+01:00", "2026-11-26T12:00:00.000Z", ""} {
		store := NewMemStore()
		_, err := store.CompareAndSwap(ctx, clockRecordName, 0, []byte(bad))
		require.NoError(t, err)
		_, err = OpenTrustedClock(ctx, store, TrustedClockOptions{Now: sys.Now})
		assert.ErrorIs(t, err, ErrCorrupt, bad)
	}
}

// TestClockConflict: two clocks on one store; each only moves the floor
// forward, and a stale one picks up the other's value.
func TestClockConflict(t *testing.T) {
	ctx := context.Background()
	sys := &fakeTime{epoch}
	store := NewMemStore()
	a, err := OpenTrustedClock(ctx, store, TrustedClockOptions{Now: sys.Now})
	require.NoError(t, err)
	b, err := OpenTrustedClock(ctx, store, TrustedClockOptions{Now: sys.Now})
	require.NoError(t, err)
	t1 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	require.NoError(t, a.Observe(ctx, t1.Add(time.Hour)))
	require.NoError(t, b.Observe(ctx, t1))
	assert.Equal(t, t1.Add(time.Hour), b.Floor(), "b took a's later floor")
	require.NoError(t, b.Observe(ctx, t1.Add(2*time.Hour)))
	c, err := OpenTrustedClock(ctx, store, TrustedClockOptions{Now: sys.Now})
	require.NoError(t, err)
	assert.Equal(t, t1.Add(2*time.Hour), c.Floor())

	// Store failures surface.
	r, err := store.Load(ctx, clockRecordName)
	require.NoError(t, err)
	_, err = store.CompareAndSwap(ctx, clockRecordName, r.Seq, []byte("junk"))
	require.NoError(t, err)
	assert.ErrorIs(t, a.Observe(ctx, t1.Add(3*time.Hour)), ErrCorrupt)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	assert.ErrorIs(t, c.Observe(cancelled, t1.Add(4*time.Hour)), context.Canceled)
	_, err = OpenTrustedClock(cancelled, store, TrustedClockOptions{Now: sys.Now})
	assert.ErrorIs(t, err, context.Canceled)
}

// A device clock set ahead moves Now, which only makes documents expire
// sooner, but not ProvenNow, which rollouts are judged by.
func TestProvenNowIgnoresClockAhead(t *testing.T) {
	ctx := context.Background()
	ahead := 60 * 24 * time.Hour
	c, err := OpenTrustedClock(ctx, NewMemStore(), TrustedClockOptions{Now: func() time.Time { return time.Now().Add(ahead) }})
	require.NoError(t, err)
	assert.True(t, c.ProvenNow().IsZero(), "nothing proven yet")
	proven := time.Now().Add(-time.Hour).UTC().Round(0).Truncate(time.Second)
	require.NoError(t, c.Observe(ctx, proven))
	assert.WithinDuration(t, time.Now().Add(ahead), c.Now(), time.Minute)
	got := c.ProvenNow()
	assert.False(t, got.Before(proven))
	assert.WithinDuration(t, proven, got, time.Minute, "the clock's lead is not proven time")
}
