package main

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The comparison program on a 1 MiB image: both installs run in child
// processes and the summary names both, with their difference.
func TestEncbench(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "encbench")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, string(out))
	out, err = exec.Command(bin, "-size-mib", "1", "-runs", "1", "-kem", "x25519", "-chunk", "4096").Output()
	require.NoError(t, err, string(out))
	assert.Regexp(t, `(?m)^plain +\d`, string(out))
	assert.Regexp(t, `(?m)^encrypted +\d`, string(out))
	assert.Contains(t, string(out), "encrypted vs plain: time ")
}
