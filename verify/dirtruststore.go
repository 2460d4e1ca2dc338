package verify

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"

	"github.com/otaseal/otaseal/internal/atomicfile"
	"github.com/otaseal/otaseal/manifest"
)

// DirTrustStore keeps trusted metadata as plain files ROLE.json in a directory,
// each written atomically (temporary file, fsync, rename, directory fsync),
// byte for byte as accepted. It suits tools and devices with a normal file
// system; devices that need checksummed copies use StateTrustStore.
//
// Role names are escaped with url.PathEscape, so a delegated role named
// "../../etc/passwd" becomes one file inside Dir, never a path outside it.
type DirTrustStore struct {
	Dir string
	// MaxSize bounds a stored file read back; 0 means
	// manifest.DefaultTargetsLimit. A larger file is an error, not data.
	MaxSize int64
}

// FileName returns the file name DirTrustStore uses for role.
func (d DirTrustStore) FileName(role string) string { return url.PathEscape(role) + ".json" }

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
