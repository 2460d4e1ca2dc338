//go:build !unix

package rollback

// dirLock is a no-op where flock is missing: there, the caller must make
// sure that only one process opens a state directory, and FileStore's
// mutex serialises its own callers.
type dirLock struct{}

func openDirLock(string) (*dirLock, error) { return &dirLock{}, nil }
func (*dirLock) release() error            { return nil }
