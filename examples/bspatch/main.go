// Command bspatch applies a patch to OLD and writes NEW, with the argument
// order of bspatch 4.3:
//
//	bspatch [-format bsdiff40|otaseal-zstd] [-max BYTES] [-sha256 HEX] [-fsync=false] OLD NEW PATCH
//
// It is a reference integration of package delta: the output is streamed to
// a temporary file next to NEW and renamed into place only when the patch
// applied cleanly (and, with -sha256, the output has the expected hash), so
// a hostile or corrupt patch never leaves a NEW behind. By default the file
// is synced to disk before the rename, so that a power cut leaves either
// the old NEW or the whole new one; -fsync=false skips that, as bspatch 4.3
// does (deltabench uses it to compare the same work). An OLD of at most
// 4 MiB is mapped into memory where the system allows it (bspatch 4.3 reads
// OLD whole into a buffer); a larger one, a device or a pipe is read with
// positioned reads, so memory stays flat in the image size.
//
// Exit status: 0 on success, 1 when the patch is rejected or cannot be
// applied, 2 on bad usage.
package main

import (
	"bufio"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/otaseal/otaseal/delta"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	fs := flag.NewFlagSet("bspatch", flag.ContinueOnError)
	format := fs.String("format", "bsdiff40", "patch format: bsdiff40 (bsdiff 4.3 compatible) or otaseal-zstd (streaming)")
	max := fs.Int64("max", delta.MaxInputSize, "largest NEW to accept, in bytes; pass the signed image length")
	sum := fs.String("sha256", "", "expected SHA-256 of NEW, in hex; a mismatch removes the output")
	sync := fs.Bool("fsync", true, "sync NEW to disk before renaming it into place (bspatch 4.3 never syncs)")
	verbose := fs.Bool("v", false, "log progress")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: bspatch [flags] OLD NEW PATCH

Apply PATCH to file OLD and write the result to NEW. The new image is
streamed to disk and never held in memory; otaseal-zstd patches are read
front to back, so PATCH may be a pipe (use /dev/stdin).
The patch is untrusted: lengths, old-file offsets and the output size are
checked before use, and NEW is only created if everything checks out.

flags:
`)
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
	opts := &delta.ApplyOptions{MaxOutput: *max}
	if *sum != "" {
		opts.SHA256, err = hex.DecodeString(*sum)
		if err != nil || len(opts.SHA256) != 32 {
			fmt.Fprintln(os.Stderr, "bspatch: -sha256 wants 64 hex digits")
			os.Exit(2)
		}
	}
	n, err := run(f, opts, *sync, fs.Arg(0), fs.Arg(1), fs.Arg(2))
	if err != nil {
		fmt.Fprintln(os.Stderr, "bspatch:", err)
		os.Exit(1)
	}
	if *verbose {
		log.Info("done", "new", fs.Arg(1), "bytes", n)
	}
}

func run(f delta.Format, opts *delta.ApplyOptions, sync bool, oldPath, newPath, patchPath string) (int64, error) {
	old, oldSize, err := openOld(oldPath)
	if err != nil {
		return 0, err
	}
	defer old.Close()
	patch, err := os.Open(patchPath)
	if err != nil {
		return 0, err
	}
	defer patch.Close()

	tmp, err := os.CreateTemp(filepath.Dir(newPath), ".bspatch-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	bw := bufio.NewWriterSize(tmp, 64<<10)
	var n int64
	switch f {
	case delta.FormatBSDIFF40:
		var pst os.FileInfo
		if pst, err = patch.Stat(); err == nil {
			n, err = delta.ApplyBSDIFF40(bw, old, oldSize, patch, pst.Size(), opts)
		}
	default:
		n, err = delta.ApplyStream(bw, old, oldSize, bufio.NewReaderSize(patch, 64<<10), opts)
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil && sync {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, err
	}
	return n, os.Rename(tmp.Name(), newPath)
}

// Interface checks: the applier reads old through io.ReaderAt.
var (
	_ oldImage = (*os.File)(nil)
	_ oldImage = (*mappedFile)(nil)
)
