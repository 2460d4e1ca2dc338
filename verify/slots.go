package verify

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Slots gives a Cycle the device's A/B slots by the names its state
// records use (rollback.Image.Slot: "a", "b", "mmcblk0p3"). The Cycle
// opens the slot the pending record names, so an agent cannot write an
// update into any other.
type Slots interface {
	// Open opens slot for reading: the installed image, which a patch
	// reads at random, and a booted image, which Confirm checks.
	Open(slot string) (SlotReader, error)
	// Create opens slot for writing from its start, discarding what it
	// held: a file is truncated, a partition is written from offset 0.
	// Install calls it once per attempt, so the full image after a failed
	// patch, or an install resumed after a crash, never follows the bytes
	// of an earlier attempt. If the writer has a Sync() error method,
	// Install calls it before Close, and Close's error counts.
	Create(slot string) (io.WriteCloser, error)
}

// SlotReader reads a slot at random; *os.File is one.
type SlotReader interface {
	io.ReaderAt
	io.Closer
}

// DirSlots keeps each slot as a file of that name in a directory: for
// devices whose images are files (a container host, a test rig), and for
// trying the update cycle out. A slot name must be a plain file name.
type DirSlots string

func (d DirSlots) path(slot string) (string, error) {
	if slot == "" || filepath.Base(slot) != slot || !filepath.IsLocal(slot) {
		return "", fmt.Errorf("%w: slot name %q is not a plain file name", ErrConfig, slot)
	}
	return filepath.Join(string(d), slot), nil
}

// Open implements Slots.
func (d DirSlots) Open(slot string) (SlotReader, error) {
	p, err := d.path(slot)
	if err != nil {
		return nil, err
	}
	return os.Open(p)
}

// Create implements Slots: it truncates the slot's file, creating it if
// needed. The *os.File it returns is synced by Install before Close.
func (d DirSlots) Create(slot string) (io.WriteCloser, error) {
	p, err := d.path(slot)
	if err != nil {
		return nil, err
	}
	return os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
}
