//go:build unix

package main

import (
	"os"
	"syscall"
)

func mapFile(f *os.File, size int64) (*mappedFile, error) {
	if int64(int(size)) != size {
		return nil, errNoMmap // larger than this platform's address space
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	return &mappedFile{name: f.Name(), data: data, unmap: func() error { return syscall.Munmap(data) }}, nil
}
