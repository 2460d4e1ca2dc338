// Command release is otaseal's offline release tool for release engineers:
// it creates a signed TUF repository with separate role keys, adds firmware
// releases with deltas from earlier releases and staged rollouts, runs
// k-of-n signing ceremonies (export, sign on another machine, merge),
// rotates and revokes keys, withdraws releases, pauses or caps rollouts
// with the online control key, and prints a repository as a table.
//
// Usage:
//
//	release keygen  --out FILE [--type ed25519|ecdsa-p256|ecdsa-p384|rsa] [--bits N]
//	release keygen  --pkcs11 "pkcs11:module=LIB;token=T;key=LABEL;pin-env=VAR" [--type ecdsa-p256|ecdsa-p384|rsa] [--pub FILE]
//	release init    --repo DIR --root-key K[,K...] [--root-threshold N] --targets-key K ... --snapshot-key K ... --timestamp-key K ...
//	                [--ROLE-expiry D] [--allow-shared-keys]
//	release add     --repo DIR --hardware-id ID[,ID] [--new-hardware-id] --version V --security-version N [--severity S]
//	                [--advisory ID]... [--notes TEXT] [--deltas N] [--delta-formats F[,F]]
//	                [--rollout WAVES|PRESET [--rollout-start TIME]] [--pause-failures S% [--pause-min-attempts N]]
//	                (--key K... | --stage) IMAGE
//	release withdraw --repo DIR --reason TEXT [--advisory ID]... (--key K... | --stage) TARGET
//	release control-init --repo DIR --control-key K[,K...] [--control-threshold N] (--key K... | --stage)
//	release rollout pause|resume|cap|stop|status --repo DIR [--reason TEXT] [--share S%] [--key K...] [--server URL] TARGET
//	release devices enroll|list --devices FILE [--device-id ID --hardware-id H --rollout-id R --public-key PEM]
//	release export  --repo DIR --role ROLE --out FILE
//	release sign    --in FILE --role ROLE --key K --out SIG
//	release merge   --repo DIR --role ROLE --in FILE [--key K...] SIG...
//	release publish --repo DIR [--renew ROLE]... --key K...
//	release rotate  --repo DIR --role ROLE [--add-key K]... [--remove-key KEYID]... [--threshold N] [--root-expiry D] [--export FILE] [--key K...]
//	release rotate  --repo DIR --root-expiry D --key K...   (renew the root)
//	release revoke  --repo DIR --key-id KEYID [--role ROLE] [--threshold N] [--export FILE] [--key K...]
//	release inspect --repo DIR
//	release status  --repo DIR [--warn-ROLE D]
//
// A key K is a PEM file (private key; a "PUBLIC KEY" PEM is enough where
// only the public half is needed, e.g. the keys of offline holders at init)
// or a PKCS#11 reference
// "pkcs11:module=/usr/lib/softhsm/libsofthsm2.so;token=T;key=LABEL;pin-env=VAR".
// Passphrases of encrypted PEM files and PINs come from environment
// variables (--passphrase-env, pin-env), never from the command line.
//
// Every role has its own key: a root or targets key that is also a
// snapshot or timestamp key is refused (sign.CheckRoleSeparation) unless
// --allow-shared-keys marks a test repository. Nothing is published under
// an expired root or targets document, and every publish warns about a
// role inside its warning window; status reports expiries for monitoring.
//
// The repository directory is what an update server serves. Changes staged
// for an offline ceremony (add --stage) live beside it in DIR.staged, never
// inside it, so that unpublished images are not served.
//
// Exit status: 0 on success, 1 when the operation failed, 2 on a usage
// error; status exits 3 when a role is inside its warning window and 4
// when one has expired.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"time"
)

// errUsage marks errors in the command line: exit status 2.
var errUsage = errors.New("usage error")

type command struct {
	summary string
	run     func(ctx context.Context, env *env, args []string) error
}

// env is what a subcommand writes to and reads the clock from.
type env struct {
	stdout, stderr io.Writer
	// tty: stderr is a terminal, so progress is drawn there. Scripts and
	// logs get no progress output.
	tty bool
	now func() time.Time
}

// newEnv is the environment of one run; progress goes to a terminal only.
func newEnv(stdout, stderr io.Writer) *env {
	return &env{stdout: stdout, stderr: stderr, tty: isTerminal(stderr), now: time.Now}
}

// exitError is a failure with its own exit status (status: a role inside
// its warning window is 3, expired is 4).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func (e *env) printf(format string, a ...any) { fmt.Fprintf(e.stdout, format, a...) }

var commands = map[string]command{
	"keygen":       {"make a signing key (a PEM file, 0600, or inside a PKCS#11 token), or with --recipient a recipient key pair for encrypted releases", cmdKeygen},
	"status":       {"print every role's expiry; exit 3 when one is inside its warning window, 4 when expired", cmdStatus},
	"init":         {"create a repository with its role keys and thresholds", cmdInit},
	"add":          {"add a firmware release and deltas from earlier releases", cmdAdd},
	"export":       {"write the staged, unsigned document of a role for offline signing", cmdExport},
	"sign":         {"sign an exported document with one key (on the key holder's machine)", cmdSign},
	"merge":        {"merge detached signatures, report who signed, publish once the threshold is met", cmdMerge},
	"publish":      {"publish staged changes, or re-sign snapshot and timestamp", cmdPublish},
	"rotate":       {"add or remove keys of a role or change its threshold (new root version)", cmdRotate},
	"revoke":       {"remove a compromised key from every role that lists it (new root version)", cmdRevoke},
	"withdraw":     {"mark a published release withdrawn, with a reason devices log (image kept)", cmdWithdraw},
	"bins":         {"delegate the targets role to hash bins (TAP 15) for a catalogue of many thousands of images", cmdBins},
	"control-init": {"create the rollout control role with the update server's online key(s)", cmdControlInit},
	"rollout":      {"pause, cap, stop or resume a release's rollout with the control key, or print its status", cmdRollout},
	"devices":      {"enrol devices' report keys for the update server, or list them", cmdDevices},
	"inspect":      {"print roles, keys, thresholds, expiries, releases and deltas as tables", cmdInspect},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: release COMMAND [flags] [args]

release is the offline side of an otaseal update repository: keys,
releases, deltas, k-of-n signing ceremonies, key rotation.

commands:
`)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprint(w, `
Run "release COMMAND --help" for a command's flags.
Start with "release keygen" (one key per role), then "release init".
Exit status: 0 success, 1 the operation failed, 2 usage error
(status: 3 a role expires soon, 4 a role has expired).
`)
}

// run is the whole program; tests call it in-process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		if p := recover(); p != nil {
			fmt.Fprintf(stderr, "release: internal error: %v\n", p)
			code = 1
		}
	}()
	if len(args) == 0 {
		fmt.Fprintf(stderr, "release: no command given\nRun \"release --help\" for the commands.\n")
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "release: unknown command %q\nRun \"release --help\" for the commands.\n", args[0])
		return 2
	}
	err := cmd.run(ctx, newEnv(stdout, stderr), args[1:])
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "release %s: %v\nRun \"release %s --help\" for usage.\n", args[0], err, args[0])
		return 2
	case errors.As(err, new(*exitError)):
		fmt.Fprintf(stderr, "release %s: %v\n", args[0], err)
		return err.(*exitError).code
	default:
		fmt.Fprintf(stderr, "release %s: %v\n", args[0], err)
		return 1
	}
}
