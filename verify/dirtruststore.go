package verify

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/otaseal/otaseal/internal/atomicfile"
	"github.com/otaseal/otaseal/internal/fsname"
	"github.com/otaseal/otaseal/manifest"
)

// DirTrustStore keeps trusted metadata as plain files in a directory, one
// per role, each written atomically (temporary file, fsync, rename,
// directory fsync), byte for byte as accepted. It suits tools and devices
// with a normal file system; devices that need checksummed copies use
// StateTrustStore.
//
// A role's file is its name escaped as the rollback state's records are,
// plus ".json" (see FileName): "root.json", "timestamp.json",
// "snapshot.json" and "targets.json" for the top-level roles, as they
// always were, and for a delegated role a name of lower-case ASCII in which
// every byte outside [a-z0-9_-] is "=XX" ("Root" is "=52oot.json", "a/b"
// is "a=2fb.json", "../x" is "=2e=2e=2fx.json"). So distinct role names
// get distinct files inside Dir on every file system: a delegated role
// named "Root" or "ｒｏｏｔ" cannot land on root.json where the file system
// folds case or normalises Unicode, and "../../etc/passwd" cannot leave
// Dir.
//
// Directories written before this mapping used url.PathEscape: the
// top-level files keep their names, so the trusted root, the timestamp and
// the snapshot (which carries every role's version, and so the rollback
// protection) read as before. A delegated role whose name held upper case
// or "." was stored under another name and is fetched once more; its
// versions are still checked against the snapshot.
type DirTrustStore struct {
	Dir string
	// MaxSize bounds a stored file read back; 0 means
	// manifest.DefaultTargetsLimit. A larger file is an error, not data.
	MaxSize int64
}

// FileName returns the name of the file, inside Dir, that holds role.
func (d DirTrustStore) FileName(role string) string { return fsname.Escape(role) + ".json" }

func (d DirTrustStore) path(role string) (string, error) {
	if role == "" {
		return "", fmt.Errorf("%w: empty role name", ErrConfig)
	}
	return filepath.Join(d.Dir, d.FileName(role)), nil
}

// LoadMetadata implements TrustStore.
func (d DirTrustStore) LoadMetadata(_ context.Context, role string) ([]byte, error) {
	p, err := d.path(role)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	max := d.MaxSize
	if max <= 0 {
		max = manifest.DefaultTargetsLimit
	}
	data, err := manifest.ReadLimited(f, max)
	if err != nil {
		return nil, fmt.Errorf("verify: stored %s: %w", role, err)
	}
	return data, nil
}

// StoreMetadata implements TrustStore.
func (d DirTrustStore) StoreMetadata(_ context.Context, role string, data []byte) error {
	p, err := d.path(role)
	if err != nil {
		return err
	}
	if data == nil {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return atomicfile.SyncDir(d.Dir)
	}
	return atomicfile.WriteFile(p, data, 0o644)
}
