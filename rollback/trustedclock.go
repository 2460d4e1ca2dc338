package rollback

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/otaseal/otaseal/manifest"
)

// DefaultMaxStaleness is the maximum staleness of a Clock whose options
// leave it zero: how old the newest proof of time may be before Fresh
// reports ErrStale.
const DefaultMaxStaleness = 7 * 24 * time.Hour

// TimeSource is an external secure time source: Roughtime, NTS-secured
// NTP, a GNSS receiver with authentication, a secure element's clock.
//
// Contract: Now returns a time the source has authenticated (signature,
// AEAD) and that is a lower bound of the current time: for Roughtime the
// midpoint minus the radius. It never returns a time it could not
// authenticate; a failure is an error.
type TimeSource interface {
	Now(ctx context.Context) (time.Time, error)
}

// TimeSourceFunc adapts a function to TimeSource (a fake in tests).
type TimeSourceFunc func(ctx context.Context) (time.Time, error)

// Now implements TimeSource.
func (f TimeSourceFunc) Now(ctx context.Context) (time.Time, error) { return f(ctx) }

// TrustedClockOptions configures a TrustedClock.
type TrustedClockOptions struct {
	// Now reads the device clock; time.Now in production. Required:
	// time is injected so tests (and devices with odd clocks) control it.
	Now func() time.Time
	// MaxStaleness bounds how old the newest proof of time may be before
	// Fresh fails. 0 means DefaultMaxStaleness.
	MaxStaleness time.Duration
	// AllowStale makes Fresh always succeed: for devices that may spend
	// months offline and accept the freeze risk that brings.
	AllowStale bool
	// Source is an optional secure time source that Sync consults.
	Source TimeSource
	// Logger hears, at level WARN with the message "state recovered", when
	// OpenTrustedClock re-derives a lost or damaged floor. nil means none.
	Logger *slog.Logger
}

// TrustedClock is the trusted clock against freeze attacks. Its Now is the latest
// of the system clock, the persisted floor, and the floor plus the
// monotonic time elapsed since the floor was read or raised. The floor is
// the newest time proven by verified metadata (the signing time a verified
// timestamp document carries, see manifest.SignedAt) or by a secure time
// source; it only moves forward and is persisted before Observe returns.
//
// What the floor defends against: a device clock reset to 1970, or set
// back by an attacker, cannot make metadata that expired before the newest
// verified document valid again; an attacker replaying a frozen but still
// validly signed timestamp gains only until that document's own expiry
// passes the floor plus the device's uptime.
//
// What it cannot: without a working clock or a secure time source, time
// between boots is unknown, so a device that was off for a month and
// sees only a frozen repository believes it is still the floor's time
// (Fresh reports that staleness); a compromised timestamp key can sign a
// signing time in the far future and push the floor there, making every
// document look expired (denial of service, not rollback; the floor
// cannot be lowered through this API); and an attacker who rewrites the
// state directory can lower it.
type TrustedClock struct {
	store Store
	opts  TrustedClockOptions

	mu      sync.Mutex
	floor   time.Time // zero when nothing was ever proven
	seq     uint64    // store sequence of the clock record
	floorAt time.Time // system time (with monotonic reading) the floor was last loaded or raised
}

// OpenTrustedClock loads the persisted floor from store.
//
// A clock record that is missing or has no intact copy while the store
// holds a timestamp document is a lost floor, not a new device: the floor
// is re-derived from that document's signing time (manifest.SignedAt; the
// document was verified when stored), persisted, and logged. Without such
// a document a damaged clock record fails with ErrCorrupt: the clock never
// silently starts again from zero.
func OpenTrustedClock(ctx context.Context, store Store, opts TrustedClockOptions) (*TrustedClock, error) {
	if opts.Now == nil {
		return nil, fmt.Errorf("rollback: TrustedClockOptions.Now is required")
	}
	if opts.MaxStaleness < 0 {
		return nil, fmt.Errorf("rollback: negative MaxStaleness")
	}
	if opts.MaxStaleness == 0 {
		opts.MaxStaleness = DefaultMaxStaleness
	}
	c := &TrustedClock{store: store, opts: opts}
	err := c.reload(ctx)
	if err != nil && !errors.Is(err, ErrCorrupt) {
		return nil, err
	}
	if err := c.catchUp(ctx, err); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *TrustedClock) reload(ctx context.Context) error {
	floor, seq, err := c.loadFloor(ctx)
	if err != nil {
		return err
	}
	c.floor, c.seq, c.floorAt = floor, seq, c.opts.Now()
	return nil
}

func (c *TrustedClock) loadFloor(ctx context.Context) (time.Time, uint64, error) {
	r, err := c.store.Load(ctx, clockRecordName)
	if err != nil {
		return time.Time{}, 0, err
	}
	if !r.Exists() {
		return time.Time{}, r.Seq, nil
	}
	floor, err := parseFloor(r.Data)
	if err != nil {
		return time.Time{}, 0, &CorruptError{Name: clockRecordName, Reason: err.Error()}
	}
	return floor, r.Seq, nil
}

// catchUp raises the floor to the signing time of the stored timestamp
// document when the floor is behind it: the record was lost (lost is the
// error of loading it; a missing record has a zero floor), or a crash
// came between storing the timestamp and Observe. A lost floor that
// cannot be re-derived is an error.
func (c *TrustedClock) catchUp(ctx context.Context, lost error) error {
	at, err := storedSigningTime(ctx, c.store)
	if err != nil {
		if lost != nil {
			return &CorruptError{Name: clockRecordName, Reason: fmt.Sprintf("%v; cannot re-derive the floor: %v", lost, err)}
		}
		return nil // nothing proven yet (a device before its first refresh) or nothing to add
	}
	if lost == nil && !at.After(c.floor) {
		return nil
	}
	// A missing record next to a stored timestamp is a lost floor (or a
	// crash right before the first Observe: the two look alike).
	missing := lost == nil && c.floor.IsZero()
	seq, err := c.store.CompareAndSwap(ctx, clockRecordName, c.seq, []byte(at.Format(time.RFC3339Nano)))
	if err != nil {
		return fmt.Errorf("rollback: persist clock floor: %w", err)
	}
	c.floor, c.seq, c.floorAt = at, seq, c.opts.Now()
	if (lost != nil || missing) && c.opts.Logger != nil {
		why := "clock record missing"
		if lost != nil {
			why = lost.Error()
		}
		c.opts.Logger.Warn("state recovered", "record", clockRecordName, "from", "signing time of the stored timestamp",
			"floor", at.Format(time.RFC3339), "lost", why)
	}
	return nil
}

// storedSigningTime returns the signing time of the timestamp document in
// store, the newest time the device has proven.
func storedSigningTime(ctx context.Context, store Store) (time.Time, error) {
	r, err := store.Load(ctx, metadataPrefix+manifest.RoleTimestamp)
	if err != nil {
		return time.Time{}, err
	}
	if !r.Exists() {
		return time.Time{}, errors.New("no stored timestamp")
	}
	md, err := manifest.ParseUnverified[manifest.Timestamp](manifest.RoleTimestamp, r.Data, manifest.Limits{})
	if err != nil {
		return time.Time{}, err
	}
	at, ok, err := manifest.SignedAt(&md.Signed)
	if err != nil {
		return time.Time{}, err
	}
	if !ok {
		return time.Time{}, errors.New("stored timestamp carries no signing time")
	}
	return at.UTC(), nil
}

func parseFloor(b []byte) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, string(b))
	if err != nil || t.Location() != time.UTC || t.Format(time.RFC3339Nano) != string(b) {
		return time.Time{}, errors.New("clock floor is not RFC 3339 UTC")
	}
	return t, nil
}

// Now returns the trusted current time. It never goes below the floor,
// whatever the system clock says.
func (c *TrustedClock) Now() time.Time {
	sys := c.opts.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now(sys)
}

func (c *TrustedClock) now(sys time.Time) time.Time {
	if c.floor.IsZero() {
		return sys
	}
	// Sub uses the monotonic readings when both times carry one, so this
	// is real elapsed time even after the wall clock jumped back.
	elapsed := max(sys.Sub(c.floorAt), 0)
	return latest(sys, c.floor.Add(elapsed))
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// ProvenNow returns the latest time proven to have passed: the floor plus
// the real time elapsed since it was read or raised, measured on the
// monotonic clock (when TrustedClockOptions.Now gives readings that carry
// one, as time.Now does). Unlike Now it never reads the wall clock's time, so a
// device clock set ahead cannot move it forward: it is the time staged
// rollouts are judged by (a wave must not start early), as Now is the
// time expiry is judged by (a document must not expire late). Zero when
// nothing was ever proven.
func (c *TrustedClock) ProvenNow() time.Time {
	sys := c.opts.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.floor.IsZero() {
		return time.Time{}
	}
	return c.floor.Add(max(sys.Sub(c.floorAt), 0))
}

// Floor returns the newest proven time, zero if none.
func (c *TrustedClock) Floor() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.floor
}

// Observe raises the floor to t and persists it, if t is later. Call it
// only with a time proven by verified data: the signing time of a timestamp
// document whose signatures verified (manifest.SignedAt), or a TimeSource
// reading. An earlier t changes nothing: the floor never moves back.
func (c *TrustedClock) Observe(ctx context.Context, t time.Time) error {
	t = t.UTC().Round(0)
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if !t.After(c.floor) {
			return nil
		}
		_, err := c.store.CompareAndSwap(ctx, clockRecordName, c.seq, []byte(t.Format(time.RFC3339Nano)))
		if errors.Is(err, ErrConflict) {
			// Another Clock on the store moved it; take its value and
			// decide again.
			if err := c.reload(ctx); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("rollback: persist clock floor: %w", err)
		}
		c.floor, c.seq, c.floorAt = t, c.seq+1, c.opts.Now()
		return nil
	}
}

// Fresh reports a *StaleError when the newest proof of time is older than
// the maximum staleness, or when there is none: the device cannot tell a
// frozen repository from a quiet one and should Sync with a time source or
// fetch a timestamp before trusting its clock.
//
// An update agent need not call it for its updates to be safe: package
// verify checks every expiry against Now, which never falls below the floor,
// and each verified timestamp raises the floor. Call it where the device
// acts on the time in other ways (its own certificates, schedules), or to
// warn that a device offline for longer than MaxStaleness may be looking at
// a frozen repository.
func (c *TrustedClock) Fresh() error {
	if c.opts.AllowStale {
		return nil
	}
	sys := c.opts.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now(sys)
	if c.floor.IsZero() {
		return &StaleError{MaxStaleness: c.opts.MaxStaleness}
	}
	if age := now.Sub(c.floor); age > c.opts.MaxStaleness {
		return &StaleError{Floor: c.floor, Age: age, MaxStaleness: c.opts.MaxStaleness}
	}
	return nil
}

// Sync asks the secure time source for the time and raises the floor to
// it.
func (c *TrustedClock) Sync(ctx context.Context) error {
	if c.opts.Source == nil {
		return ErrNoTimeSource
	}
	t, err := c.opts.Source.Now(ctx)
	if err != nil {
		return fmt.Errorf("rollback: secure time source: %w", err)
	}
	return c.Observe(ctx, t)
}
