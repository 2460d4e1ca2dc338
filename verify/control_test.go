package verify

import (
	"context"
	"errors"
	"testing"

	"github.com/otaseal/otaseal/manifest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

const ctlRole = manifest.RoleRolloutControl

// controlRepo is stagedRepo with plan and a rollout control role
// delegated as sign.AddRolloutControl does: no paths, its own key.
func controlRepo(t *testing.T, plan map[string]staged) (*repo, map[string][]byte) {
	r, img := stagedRepo(t, plan)
	r.Delegate(manifest.RoleTargets, metadata.DelegatedRole{Name: ctlRole, Paths: []string{}})
	return r, img
}

func setControl(t *testing.T, r *repo, releases map[string]manifest.ReleaseControl) {
	t.Helper()
	require.NoError(t, manifest.SetControl(&r.Targets[ctlRole].Signed, manifest.Control{Releases: releases}))
	r.Publish()
}

func rel(v string) string { return "acme-gw-r2/" + v + "/fw.bin" }

// TestControlTakesEffectAtNextRefresh: pause, cap and stop hold a release
// back from the next refresh on, and lifting them restores the schedule.
func TestControlTakesEffectAtNextRefresh(t *testing.T) {
	ctx := context.Background()
	r, img := controlRepo(t, nil)
	c := refreshed(t, r)
	dev := gateway(t, installedImage("1.0.0", 1, img["1.0.0"]))
	selectPath := func() (string, error) {
		t.Helper()
		require.NoError(t, c.Refresh(ctx))
		u, err := c.Select(ctx, dev)
		if err != nil {
			return "", err
		}
		return u.Release.Path, nil
	}
	got, err := selectPath()
	require.NoError(t, err)
	assert.Equal(t, rel("1.2.0"), got, "an empty control changes nothing")

	for _, rc := range []manifest.ReleaseControl{
		{State: manifest.ControlPaused, Reason: "error rate 3%"},
		{State: manifest.ControlStopped},
		{State: manifest.ControlCapped, CapShare: 0},
	} {
		setControl(t, r, map[string]manifest.ReleaseControl{rel("1.2.0"): rc})
		require.NoError(t, c.Refresh(ctx))
		u, err := c.Select(ctx, dev)
		require.NoError(t, err, "%s", rc.State)
		assert.Equal(t, rel("1.1.0"), u.Release.Path, "%s holds 1.2.0 back", rc.State)
		var pe *PausedError
		require.ErrorAs(t, errors.Join(u.Notices...), &pe)
		assert.Equal(t, rc.State, pe.State)
		assert.Equal(t, rc.Reason, pe.Reason)
		assert.ErrorIs(t, pe, ErrPaused)
	}

	setControl(t, r, map[string]manifest.ReleaseControl{
		rel("1.1.0"): {State: manifest.ControlPaused},
		rel("1.2.0"): {State: manifest.ControlStopped},
	})
	_, err = selectPath()
	assert.ErrorIs(t, err, ErrPaused)
	assert.NotErrorIs(t, err, ErrNoUpdate, "held back is not up to date")

	setControl(t, r, nil)
	got, err = selectPath()
	require.NoError(t, err)
	assert.Equal(t, rel("1.2.0"), got, "resume: the schedule is in force again")
}

// TestControlCannotWiden: whatever the control key signs, a release whose
// schedule has not opened stays closed (the schedule in force) or the
// control document is refused (Select fails, nothing is installed).
func TestControlCannotWiden(t *testing.T) {
	future := testNow.Add(48 * 3600e9)
	paused := map[string]any{"state": "paused"}
	tests := []struct {
		name    string
		edit    func(r *repo)
		refused error // nil: the schedule stays in force
	}{
		{"cap at 100%", func(r *repo) {
			setControl(t, r, map[string]manifest.ReleaseControl{rel("1.2.0"): {State: manifest.ControlCapped, CapShare: manifest.FullShare}})
		}, nil},
		{"control for a path that is no release", func(r *repo) {
			setControl(t, r, map[string]manifest.ReleaseControl{"acme-gw-r2/9.9.9/fw.bin": {State: manifest.ControlCapped, CapShare: manifest.FullShare}})
		}, nil},
		{"cap above 100%", func(r *repo) {
			r.Targets[ctlRole].Signed.UnrecognizedFields = map[string]any{"custom": map[string]any{"otaseal-control": map[string]any{
				rel("1.2.0"): map[string]any{"state": "capped", "cap_basis_points": 20000}}}}
		}, manifest.ErrSchema},
		{"start smuggled in", func(r *repo) {
			r.Targets[ctlRole].Signed.UnrecognizedFields = map[string]any{"custom": map[string]any{"otaseal-control": map[string]any{
				rel("1.2.0"): map[string]any{"state": "capped", "cap_basis_points": 10000, "start": "2000-01-01T00:00:00Z"}}}}
		}, manifest.ErrSchema},
		{"offset smuggled in", func(r *repo) {
			r.Targets[ctlRole].Signed.UnrecognizedFields = map[string]any{"custom": map[string]any{"otaseal-control": map[string]any{
				rel("1.2.0"): map[string]any{"state": "paused", "offset_seconds": 0}}}}
		}, manifest.ErrSchema},
		{"rollout smuggled beside the control", func(r *repo) {
			r.Targets[ctlRole].Signed.UnrecognizedFields = map[string]any{"rollout": map[string]any{"start": "2000-01-01T00:00:00Z"}}
		}, manifest.ErrSchema},
		{"lists the firmware target", func(r *repo) {
			r.AddTarget(ctlRole, rel("1.2.0"), []byte("evil"), nil)
		}, manifest.ErrSchema},
		{"delegates", func(r *repo) {
			r.Delegate(ctlRole, metadata.DelegatedRole{Name: "more", Paths: []string{"acme-gw-r2/*/*"}})
		}, manifest.ErrSchema},
		{"control role trusted for paths", func(r *repo) {
			d := r.Targets[manifest.RoleTargets].Signed.Delegations
			for i := range d.Roles {
				if d.Roles[i].Name == ctlRole {
					d.Roles[i].Paths = []string{"acme-gw-r2/*/*"}
				}
			}
			r.Targets[ctlRole].Signed.UnrecognizedFields = map[string]any{"custom": map[string]any{"otaseal-control": map[string]any{rel("1.1.0"): paused}}}
		}, manifest.ErrRepository},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			r, img := controlRepo(t, map[string]staged{"1.2.0": {opens: future}})
			tc.edit(r)
			c := refreshed(t, r)
			u, err := c.Select(ctx, gateway(t, installedImage("1.1.0", 2, img["1.1.0"])))
			require.Error(t, err)
			assert.Nil(t, u)
			if tc.refused != nil {
				assert.ErrorIs(t, err, tc.refused)
				return
			}
			var ne *NotEligibleError
			require.ErrorAs(t, err, &ne, "the schedule stays in force")
			assert.True(t, future.Equal(ne.Until))
		})
	}
}

// TestControlReplayRefused: after a device saw a halt, an older "resume"
// control document is refused, served by a mirror or listed in a snapshot
// signed with the stolen snapshot key.
func TestControlReplayRefused(t *testing.T) {
	ctx := context.Background()
	r, img := controlRepo(t, nil)
	r.Publish() // control version 1: nothing held back
	resume := r.GetFile("metadata/" + ctlRole + ".json")
	setControl(t, r, map[string]manifest.ReleaseControl{rel("1.2.0"): {State: manifest.ControlStopped}})
	dev := gateway(t, installedImage("1.1.0", 2, img["1.1.0"]))

	c, _ := newClient(t, r, nil)
	require.NoError(t, c.Refresh(ctx))
	_, err := c.Select(ctx, dev)
	require.ErrorIs(t, err, ErrPaused)

	// A mirror serves the old document under the current name: a fresh
	// device refuses it (the snapshot names version 2).
	r.SetOverride(func(path string) ([]byte, bool) {
		if path == "metadata/"+ctlRole+".json" {
			return resume, true
		}
		return nil, false
	})
	fresh, _ := newClient(t, r, nil)
	require.NoError(t, fresh.Refresh(ctx))
	_, err = fresh.Select(ctx, dev)
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrPaused)
	r.SetOverride(nil)

	// The snapshot key lists an older control version: the snapshot is
	// refused as a rollback, and nothing is offered.
	r.Targets[ctlRole].Signed.Version = 0
	r.Targets[ctlRole].Signed.UnrecognizedFields = nil
	r.Publish()
	assert.ErrorIs(t, c.Refresh(ctx), manifest.ErrMetadataVersionLower)
	u, err := c.Select(ctx, dev)
	assert.Error(t, err)
	assert.Nil(t, u)
}
