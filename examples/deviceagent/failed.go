package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/otaseal/otaseal/rollback"
)

// failedReleases is the list, kept in the state directory, of releases
// that failed on this device: their trial boot never confirmed within the
// bootloader's try limit, or their health check failed. The agent does
// not install them again; a newer release (or the same version rebuilt,
// with other bytes) is installed as usual. The floors never depend on
// this list: losing it costs at most one more failed trial.
type failedReleases struct {
	path string
	set  map[string]string // rollbackImageKey -> version
}

const (
	failedFile = "failed-releases.json"
	// maxFailedFile bounds what the agent reads back.
	maxFailedFile = 1 << 20
)

func openFailed(stateDir string) (*failedReleases, error) {
	f := &failedReleases{path: filepath.Join(stateDir, failedFile), set: map[string]string{}}
	r, err := os.Open(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	} else if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, maxFailedFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxFailedFile {
		return nil, fmt.Errorf("%s: longer than %d bytes", f.path, maxFailedFile)
	}
	if err := json.Unmarshal(b, &f.set); err != nil {
		return nil, fmt.Errorf("%s: %w", f.path, err)
	}
	return f, nil
}

func (f *failedReleases) has(img rollback.Image) bool {
	_, ok := f.set[rollbackImageKey(img)]
	return ok
}

// add records img and writes the list crash-safely: temp file, sync,
// rename, directory sync.
func (f *failedReleases) add(img rollback.Image) error {
	if f.has(img) {
		return nil
	}
	f.set[rollbackImageKey(img)] = img.Version.String()
	b, err := json.MarshalIndent(f.set, "", "  ")
	if err != nil {
		return err
	}
	tmp := f.path + ".tmp"
	w, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		w.Close()
		return err
	}
	if err := errors.Join(w.Sync(), w.Close()); err != nil {
		return err
	}
	if err := os.Rename(tmp, f.path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(f.path))
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
