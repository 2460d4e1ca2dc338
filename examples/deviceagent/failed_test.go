package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A release that failed its health check is not installed again; the
// record survives the agent's restart, and a damaged record is an error
// at start rather than a silent retry.
func TestFailedReleaseNotRetried(t *testing.T) {
	s := newServer(t, 64<<10)
	d := newDevice(t, s)
	code, log := agentRun(t, d.args(s, "-health-check", "test \"$OTASEAL_VERSION\" != 1.1.0"))
	require.Equal(t, 1, code, log)
	require.Contains(t, log, "health check failed")

	code, log = agentRun(t, d.args(s))
	assert.Equal(t, 0, code, log)
	assert.Contains(t, log, `msg="not installing a release that failed on this device before" version=1.1.0`)
	assert.NotContains(t, log, "writing slot")
	st := d.status(t)
	assert.Equal(t, "1.0.0", st.Installed.Version.String())
	assert.Nil(t, st.Pending)
	assert.Equal(t, uint64(1), st.Floors[hw])

	require.NoError(t, os.WriteFile(filepath.Join(d.stateDir, failedFile), []byte("{"), 0o600))
	code, log = agentRun(t, d.args(s))
	assert.Equal(t, exitUsage, code, log)
	assert.Contains(t, log, failedFile)
}
