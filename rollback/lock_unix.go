//go:build unix

package rollback

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// dirLock is an exclusive advisory lock on the state directory, held from
// OpenFileStore to Close. Two agents on one state directory undo each
// other's installs (one reverts the other's pending image, then writes the
// slot the other just confirmed), so the second one must not start at
// all. The kernel drops the lock when the holder dies, so a crash never
// leaves the directory locked.
type dirLock struct{ f *os.File }

// openDirLock locks dir without waiting: a held lock is a *LockedError
// naming the holder's process ID when the lock file says it.
func openDirLock(dir string) (*dirLock, error) {
	p := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("rollback: lock state directory: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err != syscall.EINTR {
			break
		}
	}
	if errors.Is(err, syscall.EWOULDBLOCK) {
		pid := readPID(f)
		_ = f.Close()
		return nil, &LockedError{Dir: dir, PID: pid}
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("rollback: lock state directory: %w", err)
	}
	// The process ID is for the error message of the next opener only;
	// the lock itself is the flock. An opener that comes between the flock
	// and this write reads no number (or, after a crash, the dead
	// holder's): the message may be vague for a moment, the lock never.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dirLock{f: f}, nil
}

// readPID returns the process ID in the lock file, 0 if it says none.
func readPID(f *os.File) int {
	b := make([]byte, 24)
	n, _ := f.ReadAt(b, 0)
	pid, err := strconv.Atoi(string(trimNewline(b[:n])))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == 0) {
		b = b[:len(b)-1]
	}
	return b
}

// release drops the lock; closing the descriptor releases the flock. The
// process ID goes first, so that no later opener reads it.
func (l *dirLock) release() error {
	_ = l.f.Truncate(0)
	return l.f.Close()
}
