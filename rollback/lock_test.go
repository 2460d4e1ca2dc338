//go:build unix

package rollback

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const lockChildEnv = "OTASEAL_LOCK_CHILD_DIR"

// TestFileStoreLockedInProcess: a second OpenFileStore on a held directory
// fails at once with a *LockedError naming the directory and this
// process; after Close the directory opens again.
func TestFileStoreLockedInProcess(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	first, err := OpenFileStore(dir, FileStoreOptions{})
	require.NoError(t, err)
	_, err = first.CompareAndSwap(ctx, "r", 0, []byte("held"))
	require.NoError(t, err)

	_, err = OpenFileStore(dir, FileStoreOptions{})
	require.ErrorIs(t, err, ErrLocked)
	var le *LockedError
	require.ErrorAs(t, err, &le)
	assert.Equal(t, LockedError{Dir: dir, PID: os.Getpid()}, *le)
	assert.Contains(t, err.Error(), dir)
	assert.Contains(t, err.Error(), "held by process "+strconv.Itoa(os.Getpid()))

	// The holder keeps working; after Close it is done.
	r, err := first.Load(ctx, "r")
	require.NoError(t, err)
	assert.Equal(t, "held", string(r.Data))
	require.NoError(t, first.Close())
	require.NoError(t, first.Close(), "Close twice")
	_, err = first.Load(ctx, "r")
	assert.ErrorIs(t, err, ErrClosed)
	_, err = first.CompareAndSwap(ctx, "r", 1, []byte("late"))
	assert.ErrorIs(t, err, ErrClosed)

	second, err := OpenFileStore(dir, FileStoreOptions{})
	require.NoError(t, err)
	defer second.Close()
	r, err = second.Load(ctx, "r")
	require.NoError(t, err)
	assert.Equal(t, Record{Seq: 1, Data: []byte("held")}, r)
}

// TestFileStoreLockedAcrossProcesses: another process holding the state
// directory makes OpenFileStore fail fast with its process ID; when that
// process dies, the kernel drops the lock.
func TestFileStoreLockedAcrossProcesses(t *testing.T) {
	if os.Getenv(lockChildEnv) != "" {
		t.Skip("in the child")
	}
	exe, err := os.Executable()
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "state")
	cmd := exec.Command(exe, "-test.run=^TestHelperLockChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), lockChildEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	buf := make([]byte, 6)
	_, err = io.ReadFull(out, buf)
	require.NoError(t, err)
	require.Equal(t, "ready\n", string(buf))

	_, err = OpenFileStore(dir, FileStoreOptions{})
	var le *LockedError
	require.ErrorAs(t, err, &le)
	assert.Equal(t, LockedError{Dir: dir, PID: cmd.Process.Pid}, *le)

	require.NoError(t, stdin.Close()) // the child exits without Close
	require.NoError(t, cmd.Wait())
	s, err := OpenFileStore(dir, FileStoreOptions{})
	require.NoError(t, err)
	require.NoError(t, s.Close())
}

// TestHelperLockChild holds a state directory until its stdin closes; it
// does nothing in a normal test run.
func TestHelperLockChild(t *testing.T) {
	dir := os.Getenv(lockChildEnv)
	if dir == "" {
		t.Skip("child of TestFileStoreLockedAcrossProcesses only")
	}
	_, err := OpenFileStore(dir, FileStoreOptions{})
	require.NoError(t, err)
	os.Stdout.WriteString("ready\n")
	_, _ = os.Stdin.Read(make([]byte, 1))
	os.Exit(0)
}
