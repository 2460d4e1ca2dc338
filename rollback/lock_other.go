//go:build !unix

package rollback

// dirLock is a no-op where flock is missing: there, one process may write
// a state directory, and FileStore's mutex serialises its own callers.
type dirLock struct{}

func openDirLock(string) (*dirLock, error) { return &dirLock{}, nil }
func (*dirLock) lock() (func(), error)     { return func() {}, nil }
