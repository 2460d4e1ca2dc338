package verify

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/rollback"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// staged is how a test release is published: its rollout opens at
// opens (zero: no rollout) and it may be withdrawn.
type staged struct {
	opens     time.Time
	withdrawn bool
}

// stagedRepo publishes 1.0.0, 1.1.0 and 1.2.0 for acme-gw-r2 as plan
// says, and returns the images.
func stagedRepo(t *testing.T, plan map[string]staged) (*repo, map[string][]byte) {
	r := newRepo(t)
	img := map[string][]byte{}
	for i, v := range []string{"1.0.0", "1.1.0", "1.2.0"} {
		img[v] = bytes.Repeat([]byte(v), 500)
		p := plan[v]
		r.AddTarget("targets", "acme-gw-r2/"+v+"/fw.bin", img[v], func(tf *metadata.TargetFiles) {
			fw := manifest.Firmware{Version: manifest.MustParseVersion(v), SecurityVersion: uint64(1 + i), HardwareIDs: []string{"acme-gw-r2"}}
			if !p.opens.IsZero() {
				fw.Rollout = &manifest.Rollout{Start: p.opens, Waves: []manifest.Wave{{Offset: 0, Share: manifest.FullShare}}}
			}
			if p.withdrawn {
				fw.Withdrawn = &manifest.Withdrawal{Reason: v + " bricks rev B", Advisories: []string{"OTS-" + v}}
			}
			require.NoError(t, manifest.SetFirmware(tf, fw))
		})
	}
	return r, img
}

func TestSelectRolloutAndWithdrawal(t *testing.T) {
	past, future := testNow.Add(-48*time.Hour), testNow.Add(48*time.Hour)
	tests := []struct {
		name      string
		plan      map[string]staged
		installed string
		want      string   // the release chosen, or "" for an error
		notices   []string // the paths in Update.Notices, or in the error
		errIs     []error
		until     time.Time // of the leading *NotEligibleError
	}{
		{"open rollout", map[string]staged{"1.2.0": {opens: past}}, "1.0.0", "1.2.0", nil, nil, time.Time{}},
		{"newest withdrawn", map[string]staged{"1.2.0": {withdrawn: true}}, "1.0.0", "1.1.0", []string{"1.2.0"}, nil, time.Time{}},
		{"newest not yet open", map[string]staged{"1.2.0": {opens: future}}, "1.0.0", "1.1.0", []string{"1.2.0"}, nil, future},
		{"both newer withdrawn", map[string]staged{"1.1.0": {withdrawn: true}, "1.2.0": {withdrawn: true}}, "1.0.0", "",
			[]string{"1.2.0", "1.1.0"}, []error{ErrWithdrawn}, time.Time{}},
		{"closed and withdrawn", map[string]staged{"1.1.0": {withdrawn: true}, "1.2.0": {opens: future}}, "1.0.0", "",
			[]string{"1.2.0", "1.1.0"}, []error{ErrNotEligible, ErrWithdrawn}, future},
		{"earliest opening leads", map[string]staged{"1.1.0": {opens: testNow.Add(time.Hour)}, "1.2.0": {opens: future}}, "1.0.0", "",
			[]string{"1.1.0", "1.2.0"}, []error{ErrNotEligible}, testNow.Add(time.Hour)},
		{"installed withdrawn moves on", map[string]staged{"1.0.0": {withdrawn: true}}, "1.0.0", "1.2.0", []string{"1.0.0"}, nil, time.Time{}},
		{"installed withdrawn, newer closed", map[string]staged{"1.0.0": {withdrawn: true}, "1.1.0": {opens: future}, "1.2.0": {opens: future}}, "1.0.0", "",
			[]string{"1.1.0", "1.2.0", "1.0.0"}, []error{ErrNotEligible, ErrWithdrawn}, future},
		{"installed newest withdrawn", map[string]staged{"1.2.0": {withdrawn: true}}, "1.2.0", "",
			[]string{"1.2.0"}, []error{ErrNoUpdate, ErrWithdrawn}, time.Time{}},
		{"older withdrawn is no news", map[string]staged{"1.1.0": {withdrawn: true}}, "1.0.0", "1.2.0", nil, nil, time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			r, img := stagedRepo(t, tc.plan)
			c := refreshed(t, r)
			sv := map[string]uint64{"1.0.0": 1, "1.1.0": 2, "1.2.0": 3}[tc.installed]
			dev := gateway(t, installedImage(tc.installed, sv, img[tc.installed]))
			before, err := dev.Status(ctx)
			require.NoError(t, err)

			u, err := c.Select(ctx, dev)
			var notices []error
			if tc.want != "" {
				require.NoError(t, err)
				assert.Equal(t, "acme-gw-r2/"+tc.want+"/fw.bin", u.Release.Path)
				notices = u.Notices
			} else {
				require.Error(t, err)
				require.Nil(t, u)
				for _, want := range tc.errIs {
					assert.ErrorIs(t, err, want)
				}
				if len(tc.errIs) > 0 && tc.errIs[0] != ErrNoUpdate {
					assert.NotErrorIs(t, err, ErrNoUpdate, "held back is not up to date")
				}
				notices = flatten(err)
			}
			var paths []string
			for _, n := range notices {
				var ne *NotEligibleError
				var we *WithdrawnError
				switch {
				case errors.As(n, &ne):
					paths = append(paths, ne.Version.String())
				case errors.As(n, &we):
					paths = append(paths, we.Version.String())
					assert.Equal(t, "acme-gw-r2/"+tc.installed+"/fw.bin" == we.Path, we.Installed, "%v", we)
					assert.Contains(t, we.Error(), "bricks rev B")
					assert.Contains(t, we.Error(), "OTS-")
				}
			}
			assert.Equal(t, tc.notices, paths)
			var ne *NotEligibleError
			if !tc.until.IsZero() {
				joined := err
				if joined == nil {
					joined = errors.Join(notices...)
				}
				require.ErrorAs(t, joined, &ne)
				assert.True(t, tc.until.Equal(ne.Until), "until %v, want %v", ne.Until, tc.until)
			}

			after, err := dev.Status(ctx)
			require.NoError(t, err)
			assert.Equal(t, before, after, "selection changes no state; floors never go down")
		})
	}
}

// A device whose clock runs ahead of the proven time does not join a
// wave early: rollouts are judged by the trusted clock's ProvenNow.
func TestSelectRolloutClockAhead(t *testing.T) {
	ctx := context.Background()
	opens := testNow.Add(time.Hour) // the repository's timestamp proves testNow
	r, img := stagedRepo(t, map[string]staged{"1.1.0": {opens: opens}, "1.2.0": {opens: opens}})
	r.Publish()
	ahead := testNow.Add(12 * time.Hour) // still inside every document's expiry
	clock, err := rollback.OpenTrustedClock(ctx, rollback.NewMemStore(), rollback.TrustedClockOptions{Now: func() time.Time { return ahead }})
	require.NoError(t, err)
	c, _ := newClient(t, r, clock)
	require.NoError(t, c.Refresh(ctx))
	require.True(t, clock.Floor().Equal(testNow), "the timestamp proved its signing time")

	_, err = c.Select(ctx, gateway(t, installedImage("1.0.0", 1, img["1.0.0"])))
	var ne *NotEligibleError
	require.ErrorAs(t, err, &ne, "the device's own clock says %v, past the opening", ahead)
	assert.True(t, opens.Equal(ne.Until))
	assert.ErrorIs(t, err, ErrNotEligible)

	// A clock without ProvenNow is trusted as it is: the same device with
	// a real-time clock it trusts is eligible.
	c2, _ := newClient(t, r, &fixedClock{ahead})
	require.NoError(t, c2.Refresh(ctx))
	u, err := c2.Select(ctx, gateway(t, installedImage("1.0.0", 1, img["1.0.0"])))
	require.NoError(t, err)
	assert.Equal(t, "acme-gw-r2/1.2.0/fw.bin", u.Release.Path)
}

// flatten lists the errors joined in err, depth first.
func flatten(err error) []error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, flatten(e)...)
	}
	return out
}

// A replayed timestamp proves no new time: the device refuses it, its
// proven time stays where the newest verified timestamp put it, and the
// wave stays closed however far its own clock runs ahead.
func TestSelectRolloutReplayedTimestamp(t *testing.T) {
	ctx := context.Background()
	opens := testNow.Add(time.Hour)
	r, img := stagedRepo(t, map[string]staged{"1.1.0": {opens: opens}, "1.2.0": {opens: opens}})
	r.Publish()
	old := r.GetFile("metadata/timestamp.json") // version 1
	r.PublishTimestamp()
	current := r.GetFile("metadata/timestamp.json") // version 2
	ahead := testNow.Add(12 * time.Hour)
	clock, err := rollback.OpenTrustedClock(ctx, rollback.NewMemStore(), rollback.TrustedClockOptions{Now: func() time.Time { return ahead }})
	require.NoError(t, err)
	c, _ := newClient(t, r, clock)
	require.NoError(t, c.Refresh(ctx))
	device := gateway(t, installedImage("1.0.0", 1, img["1.0.0"]))
	notEligible := func() {
		t.Helper()
		_, err := c.Select(ctx, device)
		var ne *NotEligibleError
		require.ErrorAs(t, err, &ne)
		assert.True(t, opens.Equal(ne.Until))
	}
	notEligible()

	r.SetMeta("timestamp", 1, old)
	assert.ErrorIs(t, c.Refresh(ctx), manifest.ErrMetadataVersionLower, "the replay is refused")
	assert.True(t, clock.Floor().Equal(testNow), "the replay raised nothing")

	r.SetMeta("timestamp", 2, current)
	require.NoError(t, c.Refresh(ctx))
	notEligible()
}
