package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var agentBin struct {
	once sync.Once
	dir  string // removed by TestMain
	path string
	err  error
	out  []byte
}

func TestMain(m *testing.M) {
	code := m.Run()
	if agentBin.dir != "" {
		os.RemoveAll(agentBin.dir)
	}
	os.Exit(code)
}

// agentBinary builds the agent once per test process, for the tests that
// check what an operator sees: exit statuses and messages of the program.
func agentBinary(t testing.TB) string {
	agentBin.once.Do(func() {
		agentBin.dir, agentBin.err = os.MkdirTemp("", "deviceagent-test-")
		if agentBin.err != nil {
			return
		}
		agentBin.path = filepath.Join(agentBin.dir, "deviceagent")
		agentBin.out, agentBin.err = exec.Command("go", "build", "-o", agentBin.path, ".").CombinedOutput()
	})
	require.NoError(t, agentBin.err, string(agentBin.out))
	return agentBin.path
}

// runBinary runs the built agent with args and returns its exit status
// and output. A run still going after 20 s is killed and fails the test:
// the agent must never hang.
func runBinary(t testing.TB, args ...string) (int, string) {
	bin := agentBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("the agent was still running after 20 s and was killed; its output:\n%s", out)
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), string(out)
	}
	require.NoError(t, err, string(out))
	return 0, string(out)
}
