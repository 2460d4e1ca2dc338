package main

import (
	"bytes"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// deltabench on a small generated pair: every tool found reproduces the new
// file and the table names our two formats (and C bsdiff where installed).
func TestDeltabenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds three programs")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "deltabench")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, string(out))
	pairs := filepath.Join(dir, "pairs")
	require.NoError(t, os.MkdirAll(pairs, 0o755))
	rng := rand.New(rand.NewSource(5))
	old := make([]byte, 200<<10)
	rng.Read(old)
	new := bytes.Clone(old)
	for i := 0; i < 50; i++ {
		new[rng.Intn(len(new))]++
	}
	require.NoError(t, os.WriteFile(filepath.Join(pairs, "tiny-old.bin"), old, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(pairs, "tiny-new.bin"), new, 0o644))

	cmd := exec.Command(bin, "-skip", "zstd,xdelta3", pairs)
	cmd.Dir = "../.." // it builds ./examples/bsdiff and ./examples/bspatch from the module root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), stderr.String())
	table := stdout.String()
	assert.Contains(t, table, "tiny")
	assert.Contains(t, table, "ours bsdiff40")
	assert.Contains(t, table, "ours otaseal-zstd (range-coded)", "a 400 KB pair gets the range-coded layout")
	if _, err := exec.LookPath("bsdiff"); err == nil {
		assert.Contains(t, table, "C bsdiff")
	}
	assert.False(t, strings.Contains(table, "FAIL"), table)
	// Every row has a peak RSS for diff and apply (columns 6 and 8).
	for _, line := range strings.Split(table, "\n") {
		cols := strings.Split(line, "|")
		if len(cols) < 9 || !strings.Contains(line, "tiny") {
			continue
		}
		for _, c := range []int{6, 8} {
			v, err := strconv.ParseFloat(strings.TrimSpace(cols[c]), 64)
			require.NoError(t, err, line)
			assert.Greater(t, v, 0.0, "RSS column %d of %q", c, line)
		}
	}

	usage := exec.Command(bin)
	_ = usage.Run()
	assert.Equal(t, 2, usage.ProcessState.ExitCode())
}

func TestLayoutNote(t *testing.T) {
	for magic, want := range map[string]string{
		"OTADLT02": "",
		"OTADLR01": " (range-coded)",
		"OTADLZ01": " (LZ layout)",
		"OTADLZ02": " (LZ layout, range-coded)",
		"BSDIFF40": "",
		"":         "",
	} {
		assert.Equal(t, want, layoutNote(magic), magic)
	}
}
