//go:build unix

package main

import (
	"os"
	"syscall"
)

// mapFile maps f, of size bytes; openOld only maps files of at most
// mapMax bytes, which fit in an int everywhere.
func mapFile(f *os.File, size int64) (*mappedFile, error) {
	data, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	return &mappedFile{name: f.Name(), data: data, unmap: func() error { return syscall.Munmap(data) }}, nil
}
