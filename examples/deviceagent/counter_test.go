package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/rollback"
)

// Issue 22: the agent ran with AllowNoCounter, so it never showed the
// hardware counter the docs make the default. It keeps one now (a file in
// its state directory), and Confirm advances it with the floor.
func TestAgentKeepsHardwareCounter(t *testing.T) {
	s := newServer(t, 64<<10)
	d := newDevice(t, s)
	code, log := agentRun(t, d.args(s))
	require.Equal(t, exitOK, code, log)
	counter, err := rollback.OpenFileCounter(filepath.Join(d.stateDir, "counter"))
	require.NoError(t, err)
	got, err := counter.Value(context.Background())
	require.NoError(t, err)
	assert.Equal(t, uint64(2), got, "the counter holds the floor of the confirmed 1.1.0")
	assert.Equal(t, got, d.status(t).Floors[hw])
}
