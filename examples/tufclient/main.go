// Command tufclient is a TUF client for the standard TUF conformance test
// protocol, built on otaseal's verify package. It shows the device-side
// workflow without any otaseal-specific schema: any TUF repository works.
//
// Usage:
//
//	tufclient --metadata-dir D init ROOTFILE
//	tufclient --metadata-url U --metadata-dir D refresh
//	tufclient --metadata-url U --metadata-dir D --target-name N [--target-name N2 ...] \
//	          --target-dir T --target-base-url B download
//
// Flags come before the command, in any order; U and B end in "/". The
// metadata directory holds only root.json, timestamp.json, snapshot.json,
// targets.json and delegated roles' documents, byte for byte as accepted.
// The current time is read by running `date +%s`, so that tests can fake it
// with libfaketime (Go reads the clock without libc).
//
// Exit status: 0 on success, 1 on any failure.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

type options struct {
	metadataURL, metadataDir, targetDir, targetBaseURL string
	targetNames                                        multiFlag
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run never panics outward: whatever goes wrong is exit status 1.
func run(args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		if p := recover(); p != nil {
			fmt.Fprintf(stderr, "tufclient: internal error: %v\n", p)
			code = 1
		}
	}()
	var o options
	fs := flag.NewFlagSet("tufclient", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.metadataURL, "metadata-url", "", "base URL of the repository's metadata, ending in /")
	fs.StringVar(&o.metadataDir, "metadata-dir", "", "directory of the trusted metadata (created if missing)")
	fs.StringVar(&o.targetDir, "target-dir", "", "directory for downloaded targets (created if missing)")
	fs.StringVar(&o.targetBaseURL, "target-base-url", "", "base URL of the targets, ending in /")
	fs.Var(&o.targetNames, "target-name", "target to download (repeatable, in order)")
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage:
  tufclient --metadata-dir D init ROOTFILE
  tufclient --metadata-url U --metadata-dir D refresh
  tufclient --metadata-url U --metadata-dir D --target-name N [--target-name N2 ...] --target-dir T --target-base-url B download

init copies a trusted root into D; refresh updates the trusted metadata from
U; download refreshes, then fetches and verifies each target into T (a
verified copy already in T is kept). Exit status 0 on success, 1 on failure.

flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 1
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return 1
	}
	ctx := context.Background()
	var err error
	switch cmd := rest[0]; {
	case cmd == "init" && len(rest) == 2:
		err = initCmd(ctx, o, rest[1])
	case cmd == "refresh" && len(rest) == 1:
		_, err = refreshCmd(ctx, o)
	case cmd == "download" && len(rest) == 1:
		err = downloadCmd(ctx, o)
	default:
		fs.Usage()
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "tufclient: %v\n", err)
		return 1
	}
	return 0
}

// dateClock reads the time from `date +%s` once, at start.
type dateClock struct{ t time.Time }

func (c dateClock) Now() time.Time { return c.t }

func systemDate(ctx context.Context) (time.Time, error) {
	out, err := exec.CommandContext(ctx, "date", "+%s").Output()
	if err != nil {
		return time.Time{}, fmt.Errorf("running date +%%s: %w", err)
	}
	secs, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("date +%%s printed %q", strings.TrimSpace(string(out)))
	}
	return time.Unix(secs, 0), nil
}
