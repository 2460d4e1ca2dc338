package verify_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/rollback"
	"github.com/otaseal/otaseal/verify"
)

// hookFetcher fetches over HTTP and first calls on with each URL; a
// non-nil error from on fails that fetch.
func hookFetcher(on func(url string) error) verify.Fetcher {
	f := &verify.HTTPFetcher{Retries: -1}
	return verify.FetcherFunc(func(ctx context.Context, url string, max int64) (io.ReadCloser, error) {
		if err := on(url); err != nil {
			return nil, err
		}
		return f.Fetch(ctx, url, max)
	})
}

// Cycle.Install counted its bytes by swapping the Client's Fetcher for the
// length of the call, so a download another goroutine ran on the same
// Client meanwhile was counted in the report (and the swap raced with it).
// Each count is now its own call's: here a full-image install runs on the
// same Client while the Cycle's patch download is held open.
func TestInstallCountsOnlyItsOwnBytes(t *testing.T) {
	ctx := context.Background()
	f := newTestFleet(t, "acme-gw-r2")
	d := newTestDevice(t, f, "acme-gw-r2")
	patchAsked, resume := make(chan struct{}), make(chan struct{})
	d.fetcher = hookFetcher(func(url string) error {
		if strings.Contains(url, "/deltas/") {
			close(patchAsked)
			<-resume
		}
		return nil
	})
	c := d.cycle()
	u, err := c.Check(ctx)
	require.NoError(t, err)
	require.NotNil(t, u.Patch)
	tf, _, err := c.Client.FindTarget(ctx, f.imagePath("1.0.0"))
	require.NoError(t, err)
	_, err = c.Begin(ctx, u, "b")
	require.NoError(t, err)

	type result struct {
		rep verify.InstallReport
		err error
	}
	done := make(chan result)
	go func() {
		rep, err := c.Install(ctx, u)
		done <- result{rep, err}
	}()
	<-patchAsked
	var other int64
	old := &verify.Update{Release: manifest.Release{Path: f.imagePath("1.0.0"), File: tf}}
	err = c.Client.Install(ctx, old, io.Discard, verify.InstallOptions{Downloaded: &other})
	close(resume)
	require.NoError(t, err)
	got := <-done
	require.NoError(t, got.err)
	assert.Equal(t, u.Patch.Path, got.rep.Patch)
	assert.Equal(t, u.Patch.File.Length, got.rep.Downloaded, "the cycle's count holds its patch alone")
	assert.Equal(t, int64(len(f.images["1.0.0"])), other, "the other install's count holds its image alone")
}

// Fault 2 of issue 13, owned by the Cycle so that every agent has it: while
// the patch downloads, another agent on the same state finishes the same
// install and confirms slot b. The patch fails, and the full-image
// fallback must not reopen slot b, now the running slot, for writing: it
// used to truncate it and write a (here tampered) image there.
func TestCycleInstallNeverWritesInstalledSlot(t *testing.T) {
	ctx := context.Background()
	f := newTestFleet(t, "acme-gw-r2")
	d := newTestDevice(t, f, "acme-gw-r2")
	f.setTamper(func(p string, b []byte) []byte {
		if strings.HasSuffix(p, "firmware.bin") {
			b = bytes.Clone(b)
			b[len(b)/2] ^= 1
		}
		return b
	})
	defer f.setTamper(nil)
	failFetches(d, "/deltas/", func() error {
		d.writeSlot("b", f.images["1.1.0"]) // the other agent's install
		_, err := d.state().Confirm(ctx)
		return err
	})
	c, u := begun(t, d)
	rep, err := c.Install(ctx, u)
	assert.ErrorIs(t, err, verify.ErrStateChanged)
	assert.ErrorIs(t, err, rollback.ErrActiveSlot)
	assert.Contains(t, err.Error(), `slot "b" runs the installed image; refusing to write it`)
	assert.Empty(t, rep.Patch)
	ok, err := c.SlotHolds(*d.status().Installed)
	require.NoError(t, err)
	assert.True(t, ok, "slot b still holds the installed 1.1.0")
}

// An install whose pending record was reverted under it stops before it
// writes the slot again, and leaves the state to whoever changed it.
func TestCycleInstallStopsWhenNoLongerPending(t *testing.T) {
	ctx := context.Background()
	f := newTestFleet(t, "acme-gw-r2")
	d := newTestDevice(t, f, "acme-gw-r2")
	fetched := 0
	failFetches(d, "/targets/", func() error {
		fetched++
		_, err := d.state().Revert(ctx)
		return err
	})
	c, u := begun(t, d)
	_, err := c.Install(ctx, u)
	assert.ErrorIs(t, err, verify.ErrStateChanged)
	assert.Contains(t, err.Error(), "no longer pending")
	assert.Equal(t, 1, fetched, "no full image fetched for a slot no longer ours")
	st := d.status()
	assert.Nil(t, st.Pending)
	assert.Equal(t, "a", st.Installed.Slot)
}

// begun opens a Cycle on d and begins the update Check offers into slot b.
func begun(t *testing.T, d *testDevice) (*verify.Cycle, *verify.Update) {
	ctx := context.Background()
	c := d.cycle()
	u, err := c.Check(ctx)
	require.NoError(t, err)
	_, err = c.Begin(ctx, u, "b")
	require.NoError(t, err)
	return c, u
}

// failFetches makes d's fetches of URLs containing match run change (what
// another agent on the same state does meanwhile), then fail.
func failFetches(d *testDevice, match string, change func() error) {
	d.fetcher = hookFetcher(func(url string) error {
		if !strings.Contains(url, match) {
			return nil
		}
		require.NoError(d.t, change())
		return errors.New("connection reset")
	})
}
