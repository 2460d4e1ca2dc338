// Command bsdiff writes a patch that turns OLD into NEW, with the argument
// order of bsdiff 4.3:
//
//	bsdiff [-format bsdiff40|otaseal-zstd] OLD NEW PATCH
//
// The default format, bsdiff40, is what bsdiff 4.3 writes and bspatch
// reads; otaseal-zstd is otaseal's streaming format, which a device can
// apply while the patch downloads. The names are the ones a delta target's
// "format" field carries. It is a reference integration of package delta.
//
// Exit status: 0 on success, 1 when the patch could not be made, 2 on bad
// usage.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"

	"github.com/otaseal/otaseal/delta"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	fs := flag.NewFlagSet("bsdiff", flag.ContinueOnError)
	format := fs.String("format", "bsdiff40", "patch format: bsdiff40 (bsdiff 4.3 compatible) or otaseal-zstd (streaming)")
	verbose := fs.Bool("v", false, "log progress and sizes")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: bsdiff [flags] OLD NEW PATCH

Compute a binary delta from file OLD to file NEW and write it to PATCH.
Both images are read into memory; peak memory is about
size(OLD)*5 + size(NEW). Images above %d bytes are refused.

flags:
`, delta.MaxInputSize)
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if fs.NArg() != 3 {
		fs.Usage()
		os.Exit(2)
	}
	f, err := delta.ParseFormat(*format)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := run(log, *verbose, f, fs.Arg(0), fs.Arg(1), fs.Arg(2)); err != nil {
		fmt.Fprintln(os.Stderr, "bsdiff:", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger, verbose bool, f delta.Format, oldPath, newPath, patchPath string) error {
	old, err := readImage(oldPath)
	if err != nil {
		return err
	}
	new, err := readImage(newPath)
	if err != nil {
		return err
	}
	if verbose {
		log.Info("diffing", "old", len(old), "new", len(new))
	}
	d, err := delta.Diff(old, new)
	if err != nil {
		return err
	}
	// Diff's suffix array (4 bytes per byte of old) is garbage now.
	// Collect it and hand its pages back before the encoder allocates, so
	// peak memory stays that of the scan.
	debug.FreeOSMemory()
	if verbose {
		log.Info("encoding", "format", f, "controls", d.Controls())
	}
	// Write to a temporary name and rename, so a failed run never leaves
	// a truncated patch under the final name.
	tmp, err := os.CreateTemp(filepath.Dir(patchPath), ".bsdiff-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	bw := bufio.NewWriter(tmp)
	if err := d.Encode(bw, f); err != nil {
		tmp.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), patchPath); err != nil {
		return err
	}
	if verbose {
		if st, err := os.Stat(patchPath); err == nil {
			log.Info("done", "patch", patchPath, "bytes", st.Size())
		}
	}
	return nil
}

// readImage reads a whole file, refusing sizes Diff cannot take before
// allocating for them.
func readImage(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > delta.MaxInputSize {
		return nil, fmt.Errorf("%s: %w: %d bytes", path, delta.ErrInputTooLarge, st.Size())
	}
	b := make([]byte, st.Size())
	if _, err := fh.ReadAt(b, 0); err != nil && st.Size() > 0 {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}
