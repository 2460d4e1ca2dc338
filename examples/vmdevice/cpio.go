package main

import (
	"bufio"
	"fmt"
	"io"
)

// cpioEntry is one file of an initramfs: a directory, a regular file, a
// symlink (data is the target) or a character device (dev is major<<8|minor).
type cpioEntry struct {
	name string
	mode uint32 // type and permission bits, as in stat(2)
	data []byte
	dev  uint32
}

const (
	modeDir  = 0o040000
	modeFile = 0o100000
	modeLink = 0o120000
	modeChar = 0o020000
)

// writeCPIO writes entries, in their order, as a "newc" cpio archive, the
// format the kernel unpacks as initramfs (a directory must come before
// its files). Writing it here rather than with cpio(1) lets an
// unprivileged build include /dev/console (mknod needs root) and keeps the
// archive byte-for-byte reproducible: every time stamp is zero, so that
// two releases differ only where their files do.
func writeCPIO(w io.Writer, entries []cpioEntry) error {
	sorted := entries
	bw := bufio.NewWriter(w)
	ino := uint32(1)
	for _, e := range append(sorted, cpioEntry{name: "TRAILER!!!"}) {
		nlink := uint32(1)
		if e.mode&0o170000 == modeDir {
			nlink = 2
		}
		if e.name == "TRAILER!!!" {
			nlink = 0
		}
		_, err := fmt.Fprintf(bw, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			ino, e.mode, 0, 0, nlink, 0, len(e.data), 0, 0, e.dev>>8, e.dev&0xff, len(e.name)+1, 0)
		if err != nil {
			return err
		}
		ino++
		bw.WriteString(e.name)
		bw.WriteByte(0)
		pad(bw, 110+len(e.name)+1)
		bw.Write(e.data)
		pad(bw, len(e.data))
	}
	return bw.Flush()
}

// pad writes the zeros that align the next header or data to 4 bytes.
func pad(w *bufio.Writer, n int) {
	for ; n%4 != 0; n++ {
		w.WriteByte(0)
	}
}
