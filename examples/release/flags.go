package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// errHelp is returned after --help printed a command's usage: exit status 0.
var errHelp = errors.New("help shown")

// listFlag collects values given as a comma-separated list, repeatedly, or both.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// repeatFlag collects one value per use, commas included (advisory texts).
type repeatFlag []string

func (r *repeatFlag) String() string     { return strings.Join(*r, "; ") }
func (r *repeatFlag) Set(v string) error { *r = append(*r, v); return nil }

// newFlags returns the FlagSet of one subcommand. synopsis is the usage
// line, about explains what the command does.
func newFlags(e *env, name, synopsis, about string) *flag.FlagSet {
	fs := flag.NewFlagSet("release "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: release %s %s\n\n%s\n\nflags:\n", name, synopsis, strings.TrimSpace(about))
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args; --help prints to stdout and is not an error.
func parse(e *env, fs *flag.FlagSet, args []string) error {
	// flag would print the usage itself; print it once, to the right place.
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(e.stdout)
		fs.Usage()
		return errHelp
	}
	if err != nil {
		// The error and a pointer to --help (see run); not the whole
		// usage, which would bury the one line that matters.
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}

func usageErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

const keyHelp = "a PEM private key file, or pkcs11:module=LIB;token=T;key=LABEL;pin-env=VAR"
