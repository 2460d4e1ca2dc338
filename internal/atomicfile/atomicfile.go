// Package atomicfile writes files so that after a crash or power cut at any
// instruction a reader sees either the old content or the new, never a torn
// mix: the data goes to a temporary file in the same directory, is fsynced,
// renamed over the destination, and then the directory is fsynced so the
// rename itself is durable.
//
// Entry points: WriteFile and SyncDir. RemoveTemps cleans up the temporary
// files a crash can leave behind.
//
// It does not lock: two processes writing the same path race, and the last
// rename wins. Callers that need compare-and-swap serialise writers
// themselves. It does not protect against an attacker with write access to
// the directory.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// TempPrefix starts the name of every temporary file WriteFile creates, so
// RemoveTemps can recognise leftovers without touching anything else.
const TempPrefix = ".atomicfile-"

// WriteFile atomically replaces path with data and permission perm. When it
// returns nil the new content is durable (on file systems that honour
// fsync). When it returns an error, path holds its old content or, if the
// error came after the rename, possibly the new content not yet durable.
func WriteFile(path string, data []byte, perm os.FileMode) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, TempPrefix+base+"-*")
	if err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("atomicfile: write %s: %w", tmp, err)
	}
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	// Without this fsync a crash after the rename can leave a file of the
	// right name whose blocks were never written (zero-filled or empty on
	// ext4 with delayed allocation).
	if err = f.Sync(); err != nil {
		return fmt.Errorf("atomicfile: fsync %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	// The rename is a change to the directory; until the directory is
	// fsynced a power cut can undo it.
	if err = SyncDir(dir); err != nil {
		return err
	}
	return nil
}

// SyncDir fsyncs a directory so that renames, creations and removals in it
// are durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("atomicfile: fsync dir %s: %w", dir, err)
	}
	return nil
}

// RemoveTemps removes the temporary files a crashed WriteFile left in dir.
// Call it only when no WriteFile into dir can be running.
func RemoveTemps(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasPrefix(e.Name(), TempPrefix) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !os.IsNotExist(err) {
				return fmt.Errorf("atomicfile: %w", err)
			}
		}
	}
	return nil
}
