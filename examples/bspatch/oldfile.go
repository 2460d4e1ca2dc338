package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

// mappedFile reads a file that is mapped into memory. The applier reads
// old once per add run, hundreds of times for a small firmware image: from
// a mapping each read is a copy, where a pread is a system call, and the
// kernel maps the file's cached pages in batches instead of the process
// faulting in a private copy of them. Only files of at most mapMax bytes
// are mapped.
type mappedFile struct {
	name  string
	data  []byte
	unmap func() error
}

// ReadAt copies from the mapping. A file cut short after it was mapped
// makes the copy fault (SIGBUS); that fault is turned into an error, so a
// changed old image fails the patch instead of crashing the program.
func (m *mappedFile) ReadAt(p []byte, off int64) (n int, err error) {
	if off < 0 {
		return 0, fmt.Errorf("reading %s: negative offset %d", m.name, off)
	}
	if off >= int64(len(m.data)) {
		return 0, io.EOF
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			n, err = 0, fmt.Errorf("reading %s at %d: the file changed while it was being read: %v", m.name, off, r)
		}
	}()
	n = copy(p, m.data[off:])
	if n < len(p) {
		err = io.EOF
	}
	return n, err
}

func (m *mappedFile) Close() error { return m.unmap() }

// oldImage is how the program reads old: mapped where the system can map
// it, else through the file.
type oldImage interface {
	io.ReaderAt
	io.Closer
}

// openOld opens old for reading and returns its size.
func openOld(path string) (oldImage, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !st.Mode().IsRegular() || st.Size() == 0 || st.Size() > mapMax {
		return f, st.Size(), nil // a device or pipe, nothing to map, or too much
	}
	m, err := mapFile(f, st.Size())
	if errors.Is(err, errNoMmap) {
		return f, st.Size(), nil
	}
	// The mapping holds its own reference to the file.
	f.Close()
	if err != nil {
		return nil, 0, fmt.Errorf("mapping %s: %w", path, err)
	}
	return m, st.Size(), nil
}

var errNoMmap = errors.New("no mmap on this system")

// mapMax is the largest old file that is mapped. The pages of a mapping
// that have been read count in the process's resident memory, and the
// applier's promise is memory flat in the image size: a larger file is
// read with positioned reads into the applier's own buffers. Per read
// those cost a system call instead of a copy, which matters little on a
// large image, whose add runs are long.
const mapMax = 4 << 20
