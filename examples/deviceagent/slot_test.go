package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/verify"
)

// Fault 2 of issue 13, the agent's side: no code path opens the installed
// slot for writing. Here the state changes under a running install as it
// did with two agents on one state directory: while this agent fetches the
// delta into slot b, "the other agent" finishes the same install and
// confirms slot b. The delta fails, so this agent takes its full-image
// fallback, which used to reopen slot b with truncation and write a
// (here tampered) image into the slot the device now runs from.
func TestFallbackNeverWritesActiveSlot(t *testing.T) {
	ctx := context.Background()
	s := newServer(t, 64<<10)
	d := newDevice(t, s)
	var logBuf bytes.Buffer
	c, err := parse(d.args(s, "-retries", "0"), io.Discard)
	require.NoError(t, err)
	a, err := openAgent(ctx, c, slog.New(slog.NewTextHandler(&logBuf, nil)))
	require.NoError(t, err)

	otherAgentDone := false
	s.setMITM(func(p string, b []byte) []byte {
		if !strings.HasPrefix(p, "/targets/") {
			return b
		}
		if strings.Contains(p, "/deltas/") {
			if !otherAgentDone {
				otherAgentDone = true
				assert.NoError(t, os.WriteFile(d.slotB, s.images["1.1.0"], 0o644))
				_, err := a.state.Confirm(ctx)
				assert.NoError(t, err)
			}
			return nil // the delta fails before a byte is written
		}
		b = bytes.Clone(b)
		b[len(b)/2] ^= 1
		return b
	})
	err = a.update(ctx)
	require.Error(t, err)
	require.True(t, otherAgentDone, "the delta was fetched")
	log := logBuf.String()
	assert.Contains(t, log, "delta refused; fetching the full image", "the fallback path ran")
	assert.ErrorIs(t, err, verify.ErrStateChanged)
	assert.Contains(t, err.Error(), `slot "b" runs the installed image; refusing to write it`)

	got, rerr := os.ReadFile(d.slotB)
	require.NoError(t, rerr)
	assert.True(t, bytes.Equal(s.images["1.1.0"], got), "slot b, now active, still holds the installed 1.1.0 (%d bytes, want %d)", len(got), len(s.images["1.1.0"]))
	st, serr := a.state.Status(ctx)
	require.NoError(t, serr)
	assert.Equal(t, "b", st.Installed.Slot)
	assert.Equal(t, "1.1.0", st.Installed.Version.String())
	assert.Nil(t, st.Pending)
	require.NoError(t, a.resume(ctx), "the next start runs slot b")
}

// An install whose pending record was reverted under it (by another agent
// resuming on the same state) stops before it writes, and leaves the state
// to whoever changed it.
func TestInstallStopsWhenNoLongerPending(t *testing.T) {
	ctx := context.Background()
	s := newServer(t, 64<<10)
	d := newDevice(t, s)
	c, err := parse(d.args(s, "-retries", "0"), io.Discard)
	require.NoError(t, err)
	a, err := openAgent(ctx, c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	reverted := false
	s.setMITM(func(p string, b []byte) []byte {
		if strings.HasPrefix(p, "/targets/") && !reverted {
			reverted = true
			_, err := a.state.Revert(ctx)
			assert.NoError(t, err)
			return nil
		}
		return b
	})
	err = a.update(ctx)
	assert.ErrorIs(t, err, verify.ErrStateChanged)
	assert.Contains(t, err.Error(), "no longer pending")
	got, _ := os.ReadFile(d.slotA)
	assert.Equal(t, s.images["1.0.0"], got, "the active slot is untouched")
	st, serr := a.state.Status(ctx)
	require.NoError(t, serr)
	assert.Equal(t, "a", st.Installed.Slot)
	assert.Nil(t, st.Pending)
}

// Two names for one file would make the "inactive" slot the active one.
func TestSlotsMustDiffer(t *testing.T) {
	s := newServer(t, 1024)
	d := newDevice(t, s)
	link := d.slotA + ".link"
	require.NoError(t, os.Symlink(d.slotA, link))
	for _, slotB := range []string{d.slotA, link} {
		code, out := agentRun(t, append(d.args(s), "-slot-b", slotB))
		assert.Equal(t, exitUsage, code, out)
		assert.Contains(t, out, "are the same file")
	}
}
