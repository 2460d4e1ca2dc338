package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// The program is built once per test binary for every test that runs it
// as a child process (three replicas need one build, not three).
var (
	buildMu  sync.Mutex
	builtBin string
	builtDir string
)

func buildServer(t *testing.T) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if builtBin != "" {
		return builtBin
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	dir, err := os.MkdirTemp("", "updateserver-test-")
	require.NoError(t, err)
	bin := filepath.Join(dir, "updateserver")
	buildArgs := []string{"build", "-o", bin}
	if raceEnabled {
		// The server under load is where a race would be.
		buildArgs = append(buildArgs, "-race")
	}
	out, err := exec.Command(goTool, append(buildArgs, ".")...).CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
	}
	require.NoError(t, err, "go build: %s", out)
	builtBin, builtDir = bin, dir
	return bin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtDir != "" {
		os.RemoveAll(builtDir)
	}
	os.Exit(code)
}
