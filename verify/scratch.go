package verify

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// scratchPrefix starts the name of every scratch file; os.CreateTemp adds
// digits. RemoveStaleScratch removes nothing else.
const scratchPrefix = ".otaseal-patch-"

// RemoveStaleScratch removes from dir ("" means os.TempDir()) the scratch
// files of BSDIFF40 installs that were interrupted by a kill or a power cut:
// regular files named ".otaseal-patch-" followed by digits, and nothing
// else. Install calls it before each such install; call it when the device
// agent starts as well, so the space is freed even when no update follows.
//
// It is safe while another Install uses dir: on Unix that install's file
// has no name left to remove (see applyBSDIFF40), and where an open file
// cannot be removed the removal fails, is reported, and the file is kept.
// A directory that does not exist holds nothing stale.
func RemoveStaleScratch(dir string) error {
	if dir == "" {
		dir = os.TempDir()
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("verify: scratch directory: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if !e.Type().IsRegular() || !isScratchName(e.Name()) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("verify: removing stale scratch file: %w", err))
		}
	}
	return errors.Join(errs...)
}

func isScratchName(name string) bool {
	digits, ok := strings.CutPrefix(name, scratchPrefix)
	if !ok || digits == "" {
		return false
	}
	for _, r := range digits {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// createScratch creates this install's scratch file in dir. Unlinked while
// open, the file is freed when the process ends, however it ends: a kill
// leaves nothing behind. Where an open file cannot be removed (Windows),
// release removes it, or RemoveStaleScratch does after a kill.
func createScratch(dir string) (f *os.File, release func(), err error) {
	f, err = os.CreateTemp(dir, scratchPrefix+"*")
	if err != nil {
		return nil, nil, fmt.Errorf("verify: scratch file: %w", err)
	}
	unlinked := os.Remove(f.Name()) == nil
	return f, func() {
		f.Close()
		if !unlinked {
			os.Remove(f.Name())
		}
	}, nil
}
