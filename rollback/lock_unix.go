//go:build unix

package rollback

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// dirLock is an advisory lock on the state directory, so that
// compare-and-swap holds across processes (an agent and a CLI tool) and
// across FileStores in one process. The kernel drops it when the holder
// dies, so a crash never leaves the directory locked. The lock file is
// opened per lock so a FileStore holds no descriptor between calls and
// needs no Close.
type dirLock struct{ path string }

const lockFileName = ".lock" // escaped record names never start with "."

func openDirLock(dir string) (*dirLock, error) {
	return &dirLock{path: filepath.Join(dir, lockFileName)}, nil
}

// lock blocks until the directory is locked and returns the unlock.
func (l *dirLock) lock() (func(), error) {
	f, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("rollback: lock state directory: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("rollback: lock state directory: %w", err)
	}
	// Closing the descriptor releases the lock.
	return func() { _ = f.Close() }, nil
}
