// Command updateserver is otaseal's online update server. It serves a
// repository written by the release tool over HTTP and HTTPS, optionally
// admitting only devices whose client certificate chains to a device CA
// (mTLS), and keeps the repository's freshness metadata alive: whenever the
// timestamp (or the snapshot) would expire within --resign-before, it
// re-signs them with the snapshot and timestamp keys. Given the rollout
// control key (--control-key), it re-signs the rollout control document
// the same way.
//
// Usage:
//
//	updateserver --repo DIR --snapshot-key PEM --timestamp-key PEM [--control-key PEM] \
//	    [--http ADDR] [--https ADDR --tls-cert PEM --tls-key PEM [--client-ca PEM]] \
//	    [--health ADDR] [--resign-before D] [--check-every D] [--log-level L] \
//	    [--stall-timeout D] [--max-conns-per-addr N] [--header-timeout D] [--idle-timeout D] \
//	    [--dashboard ADDR [--dashboard-cert PEM --dashboard-key PEM [--operator-ca PEM]]]
//
// It serves, read-only:
//
//   - /metadata/... and /targets/...: the files of the repository's
//     "metadata" and "targets" directories. No directory listings, no dot
//     files (a publish in progress writes ".tmp-*" files), no path that
//     leaves those directories. Unversioned metadata (timestamp.json,
//     root.json) is sent with "Cache-Control: no-store" so that no cache
//     between the server and the devices hides a re-signed timestamp.
//   - /healthz: 200 and a JSON summary (timestamp version and expiry,
//     snapshot version, every top-level role's expiry) while devices can
//     refresh; 503 once the timestamp, snapshot, targets or root metadata
//     has expired, the last re-sign check failed, or checks have stalled
//     (none for three --check-every periods). The reason is given; the
//     error itself stays in the log.
//
// Keys: PEM files (--snapshot-key, --timestamp-key, optionally
// --control-key; --passphrase-env for encrypted ones) or key pairs in a
// PKCS#11 token (--pkcs11-module, --pkcs11-token, --pkcs11-pin-env,
// --snapshot-key-label, --timestamp-key-label, optionally
// --control-key-label), whose private keys never leave the HSM. The
// server holds only the online keys. It never needs a root or
// targets key (package sign's Publish with the snapshot and timestamp keys
// re-signs freshness and cannot change targets), and it refuses to start
// when the key given as --snapshot-key or --timestamp-key is also listed
// for the root or targets role, since a stolen server must not be able to
// forge firmware. It also refuses to start on a root in which any root or
// targets key is also a snapshot or timestamp key (package sign's
// CheckRoleSeparation, the rule the release tool applies at init and
// rotate), unless --allow-shared-keys says it is a test repository. It
// never publishes under an expired root or targets document (package
// sign refuses): it logs an error saying which expired and who must act,
// and /healthz answers 503. The rollout control key is online too: its document can
// only pause, cap or stop a release (package manifest's Control), and a
// device fails closed when a delegated control document has expired, so a
// repository that delegates "rollout-control" stops every update once
// that document expires. Without --control-key the server says so at
// start and again, at every check, once the document expires within
// controlWarnBefore. New firmware comes from the release tool, which publishes
// into the same directory; the server opens the repository afresh at every
// check and so picks it up, and a publish racing with a re-sign is
// detected by package sign (the loser retries at the next check).
//
// With --client-ca, TLS clients must present a certificate that chains to
// one of the CAs in that file and is valid for client authentication; the
// handshake fails otherwise. Plain --http would let devices around that,
// so the two cannot be combined; --health serves only /healthz over plain
// HTTP, for load balancers that hold no device certificate.
//
// Faults are loud, and no client can hold the server: a response that
// makes no write progress for --stall-timeout is dropped with its open
// file; a client address may hold --max-conns-per-addr connections;
// --header-timeout and --idle-timeout bound the waits for a request. Only
// a file that does not exist is answered 404; one that cannot be opened
// gets 503 with Retry-After when descriptors or memory ran out and 500
// otherwise, so that a device never mistakes the server's trouble for
// "no newer root".
//
// The fleet page (--dashboard ADDR, off by default) is served only on its
// own address, never on the devices': the releases per hardware ID
// (newest first, with security version, severity, advisories, size,
// deltas and withdrawals), each staged rollout with its signed schedule,
// current wave, control state, fleet report counts per wave as a chart
// drawn on the server (inline SVG, no script, nothing from another host),
// every role's keys, threshold and expiry (coloured inside the warning
// window), and the server's health. It is read-only unless the page runs
// over TLS (--dashboard-cert, --dashboard-key) with --operator-ca: an
// operator whose client certificate chains to that CA may pause and resume
// a rollout, the two things the online control key may do (the server
// needs --control-key), and every action is logged with the certificate's
// subject. POSTs without such a certificate are refused with 403.
//
// Device reports: devices POST a signed report of each update cycle to
// /reports (package fleet). The server authenticates it by the device's
// TLS client certificate or by the ed25519 key the enrolment file
// (--devices) lists, refuses replayed or older sequence numbers, and
// answers only after the report is committed to --db: a SQLite file
// (default REPO.reports.db beside the repository, WAL mode) or a postgres:// URL for servers that
// run as several replicas. A release's health rule (release add
// --pause-failures) makes the server publish a pause through the rollout
// control role once too many devices revert or fail it. GET /fleet/status
// on the --health listener counts devices and results per wave.
//
// SIGHUP reloads --tls-cert, --tls-key and --client-ca (a renewed server
// certificate, a new device CA) for new connections; if the files are
// refused, the server keeps the material it has and logs why.
//
// SIGINT or SIGTERM shut the server down gracefully: listeners close, and
// requests in flight (a firmware download included) get --shutdown-timeout
// to finish.
//
// Exit status: 0 after a graceful shutdown, 1 when serving failed or the
// shutdown timed out, 2 for a usage error, 3 when the repository, a key or
// the TLS material was refused at start.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"gocloud.dev/blob"

	"github.com/otaseal/otaseal/sign"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
	exitSetup  = 3
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal starts the graceful shutdown, a second
		// one kills the process at once, as operators expect.
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// flags is the parsed command line.
type flags struct {
	repo                      string
	httpAddr, httpsAddr       string
	healthAddr                string
	tlsCert, tlsKey, clientCA string
	snapshotKey, timestampKey string
	controlKey                string // optional
	passphraseEnv             string
	// PKCS#11: keys by label in one token instead of PEM files.
	pkcs11Module, pkcs11Token, pkcs11PINEnv string
	snapshotLabel, timestampLabel           string
	controlLabel                            string // optional
	allowSharedKeys                         bool
	timestampExpiry                         time.Duration
	snapshotExpiry                          time.Duration
	resignBefore, checkEvery                time.Duration
	shutdownTimeout                         time.Duration
	limits                                  ConnLimits
	logLevel, logFormat                     string
	dash                                    dashFlags
	// Bucket mode (bucket.go): --repo is a URL.
	cdnBase  string
	cacheTTL time.Duration
	// renewOnly: the "renew" subcommand, which serves nothing.
	renewOnly bool
	reports   reportFlags
}

const usageText = `updateserver serves an otaseal repository and keeps its timestamp fresh.

Usage:
  updateserver --repo DIR|URL --snapshot-key PEM --timestamp-key PEM [options]
  updateserver renew --repo DIR|URL --snapshot-key PEM --timestamp-key PEM [options]
  updateserver --repo DIR --pkcs11-module LIB --pkcs11-token LABEL --pkcs11-pin-env VAR \
      --snapshot-key-label LABEL --timestamp-key-label LABEL [options]

At least one of --http and --https is required, except for "renew", which
checks the repository once, re-signs what is due, prints the outcome and
exits (0 fresh or renewed, 1 failed): for a cron job beside, or instead of,
serving replicas.

--repo may be a bucket URL (s3://BUCKET?endpoint=HOST&use_path_style=true
for an S3-compatible server; AWS credentials from the environment): then
any number of replicas serve one bucket, each with a small metadata cache
(--cache-ttl), streaming targets or redirecting them to --cdn-base.
Replicas renewing at once publish exactly one new timestamp: the commit is
a conditional write, and the losers find the new timestamp fresh. The server holds only the
snapshot and timestamp keys, and optionally the rollout control key: it
re-signs snapshot.json and timestamp.json (and rollout-control.json) before
they expire and can never change which firmware the repository offers. It
refuses a key that is also a root or targets key, and a root in which any
root or targets key is also a snapshot or timestamp key (--allow-shared-keys
serves such a test repository anyway). It never re-signs under an expired
root or targets document: it logs which expired and /healthz answers 503.

Rollout control: when the repository delegates the "rollout-control" role,
devices refuse every update once its document has expired (fail closed).
Give the control key (--control-key or --control-key-label) so the server
keeps it fresh; without it the server warns at start and as expiry nears.

Paths served: /metadata/..., /targets/... (the repository's files, read-only)
and /healthz (200 while fresh, 503 once expired or the last re-sign failed).
The fleet page (--dashboard) is served on its own address only; operators with
a certificate from --operator-ca may pause and resume rollouts there.

With --client-ca, HTTPS clients must present a certificate chaining to that
CA (mutual TLS); --http is then refused, use --health for health checks.

Clients that stall: a response that cannot hand 16 KiB to the network
within --stall-timeout is dropped (a slow device that keeps reading is
never cut off), and one client address (one /64 for IPv6) may hold at most
--max-conns-per-addr connections; further ones are closed at once. Raise
it when many devices reach the server from one address (a NAT, a TCP
proxy). A file that exists but cannot be opened is answered 500, or 503
with Retry-After when the server is out of descriptors; only a missing
file is 404, since 404 on N.root.json means "no newer root" to a device.

Signals: SIGINT or SIGTERM shut down gracefully (--shutdown-timeout);
SIGHUP reloads --tls-cert, --tls-key and --client-ca.

Exit status: 0 graceful shutdown, 1 serving failed, 2 usage, 3 setup refused.

Example (devices with certificates from the factory's device CA):
  updateserver --repo /srv/ota --https :8443 --tls-cert server.pem \
      --tls-key server-key.pem --client-ca device-ca.pem --health 127.0.0.1:8081 \
      --snapshot-key snapshot.pem --timestamp-key timestamp.pem

Options:
`

func parseFlags(args []string, stderr io.Writer) (*flags, error) {
	var f flags
	if len(args) > 0 && args[0] == "renew" {
		f.renewOnly, args = true, args[1:]
	}
	fs := flag.NewFlagSet("updateserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fs.PrintDefaults()
		fmt.Fprint(stderr, reportsUsage)
	}
	fs.StringVar(&f.repo, "repo", "", "repository written by the release tool: a `directory` (holds metadata/ and targets/) or a bucket URL (s3://BUCKET?endpoint=...&use_path_style=true, file:///DIR)")
	fs.StringVar(&f.cdnBase, "cdn-base", "", "with a bucket --repo: redirect target downloads to `URL`/targets/... (a CDN in front of the bucket) instead of streaming them")
	fs.DurationVar(&f.cacheTTL, "cache-ttl", defaultCacheTTL, "with a bucket --repo: how long timestamp.json, root.json and misses are served from memory, and the max-age of timestamp.json")
	fs.StringVar(&f.httpAddr, "http", "", "serve plain HTTP on `addr` (host:port)")
	fs.StringVar(&f.httpsAddr, "https", "", "serve HTTPS on `addr` (host:port); needs --tls-cert and --tls-key")
	fs.StringVar(&f.healthAddr, "health", "", "serve only /healthz and /fleet/status (report counts) over plain HTTP on `addr`")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "server certificate chain, PEM `file`")
	fs.StringVar(&f.tlsKey, "tls-key", "", "server private key, PEM `file`")
	fs.StringVar(&f.clientCA, "client-ca", "", "device CA certificates, PEM `file`: enables mutual TLS, admitting only devices whose certificate chains to one of them")
	fs.StringVar(&f.snapshotKey, "snapshot-key", "", "snapshot role private key, PEM `file`")
	fs.StringVar(&f.timestampKey, "timestamp-key", "", "timestamp role private key, PEM `file`")
	fs.StringVar(&f.controlKey, "control-key", "", "rollout control role private key, PEM `file` (optional): keeps the rollout control document fresh")
	fs.StringVar(&f.passphraseEnv, "passphrase-env", "", "environment `variable` holding the passphrase of encrypted key files")
	fs.StringVar(&f.pkcs11Module, "pkcs11-module", "", "PKCS#11 `library` of the HSM holding the keys (instead of PEM files)")
	fs.StringVar(&f.pkcs11Token, "pkcs11-token", "", "PKCS#11 token `label`")
	fs.StringVar(&f.pkcs11PINEnv, "pkcs11-pin-env", "", "environment `variable` holding the token's user PIN")
	fs.StringVar(&f.snapshotLabel, "snapshot-key-label", "", "`label` of the snapshot key pair in the PKCS#11 token")
	fs.StringVar(&f.timestampLabel, "timestamp-key-label", "", "`label` of the timestamp key pair in the PKCS#11 token")
	fs.StringVar(&f.controlLabel, "control-key-label", "", "`label` of the rollout control key pair in the PKCS#11 token (optional)")
	fs.BoolVar(&f.allowSharedKeys, "allow-shared-keys", false, "serve a repository whose root gives a root or targets key to snapshot or timestamp too (test repositories only; refused otherwise)")
	fs.DurationVar(&f.timestampExpiry, "timestamp-expiry", sign.DefaultTimestampExpiry, "validity of each re-signed timestamp")
	fs.DurationVar(&f.snapshotExpiry, "snapshot-expiry", sign.DefaultSnapshotExpiry, "validity of each re-signed snapshot")
	fs.DurationVar(&f.resignBefore, "resign-before", 0, "re-sign when the timestamp or snapshot expires within this `duration`; 0 means half of --timestamp-expiry")
	fs.DurationVar(&f.checkEvery, "check-every", time.Minute, "how often to look at the repository's expiry")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long requests in flight may take to finish at shutdown")
	fs.DurationVar(&f.limits.StallTimeout, "stall-timeout", defaultStallTimeout, "drop a response that sends no 16 KiB within this `duration` (a client that stopped reading)")
	fs.DurationVar(&f.limits.ReadHeaderTimeout, "header-timeout", defaultReadHeaderTimeout, "how long a client may take to send a request's headers (and its TLS handshake)")
	fs.DurationVar(&f.limits.IdleTimeout, "idle-timeout", defaultIdleTimeout, "how long a kept-alive connection may wait for its next request")
	fs.IntVar(&f.limits.MaxConnsPerAddr, "max-conns-per-addr", defaultMaxConnsPerAddr, "open connections allowed from one client address (IPv6: one /64); further ones are closed")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug (one line per request), info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	f.dash.register(fs)
	f.reports.register(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case f.repo == "":
		return nil, errors.New("--repo is required")
	case f.renewOnly && (f.httpAddr != "" || f.httpsAddr != "" || f.healthAddr != ""):
		return nil, errors.New("renew serves nothing: no --http, --https or --health")
	case !f.renewOnly && f.httpAddr == "" && f.httpsAddr == "":
		return nil, errors.New("at least one of --http and --https is required")
	case f.httpsAddr != "" && (f.tlsCert == "" || f.tlsKey == ""):
		return nil, errors.New("--https needs --tls-cert and --tls-key")
	case f.httpsAddr == "" && (f.tlsCert != "" || f.tlsKey != "" || f.clientCA != ""):
		return nil, errors.New("--tls-cert, --tls-key and --client-ca need --https")
	case f.clientCA != "" && f.httpAddr != "":
		return nil, errors.New("--client-ca with --http would let devices without a certificate in over plain HTTP; use --health for health checks")
	case f.pkcs11Module == "" && (f.snapshotKey == "" || f.timestampKey == ""):
		return nil, errors.New("--snapshot-key and --timestamp-key are required")
	case f.pkcs11Module == "" && (f.snapshotLabel != "" || f.timestampLabel != "" || f.controlLabel != ""):
		return nil, errors.New("--snapshot-key-label, --timestamp-key-label and --control-key-label need --pkcs11-module")
	case f.pkcs11Module != "" && (f.snapshotKey != "" || f.timestampKey != "" || f.controlKey != ""):
		return nil, errors.New("with --pkcs11-module, name the keys with --snapshot-key-label, --timestamp-key-label and --control-key-label")
	case f.pkcs11Module != "" && (f.pkcs11Token == "" || f.pkcs11PINEnv == "" || f.snapshotLabel == "" || f.timestampLabel == ""):
		return nil, errors.New("--pkcs11-module needs --pkcs11-token, --pkcs11-pin-env, --snapshot-key-label and --timestamp-key-label")
	case f.timestampExpiry <= 0 || f.snapshotExpiry <= 0:
		return nil, errors.New("expiry durations must be positive")
	case f.limits.StallTimeout <= 0 || f.limits.ReadHeaderTimeout <= 0 || f.limits.IdleTimeout <= 0:
		// Zero would mean "forever" to net/http: the fault these bound.
		return nil, errors.New("--stall-timeout, --header-timeout and --idle-timeout must be positive")
	case f.cacheTTL <= 0:
		return nil, errors.New("--cache-ttl must be positive")
	case f.cdnBase != "" && !isBucketURL(f.repo):
		return nil, errors.New("--cdn-base needs a bucket URL as --repo")
	case f.limits.MaxConnsPerAddr < 1:
		return nil, errors.New("--max-conns-per-addr must be at least 1")
	}
	if err := f.dash.validate(&f); err != nil {
		return nil, err
	}
	if f.resignBefore == 0 {
		f.resignBefore = f.timestampExpiry / 2
	}
	if err := checkTiming(f.timestampExpiry, f.snapshotExpiry, f.resignBefore, f.checkEvery); err != nil {
		return nil, err
	}
	if isBucketURL(f.repo) && 2*f.cacheTTL > f.resignBefore {
		// A replica's cached timestamp must never outlive the margin
		// the re-sign leaves before expiry.
		return nil, fmt.Errorf("--cache-ttl %v must be at most half of --resign-before %v", f.cacheTTL, f.resignBefore)
	}
	return &f, nil
}

// checkTiming refuses settings under which the repository could expire
// between two checks or be re-signed at every check.
func checkTiming(tsExpiry, snapExpiry, resignBefore, checkEvery time.Duration) error {
	switch {
	case resignBefore <= 0 || resignBefore >= tsExpiry:
		return fmt.Errorf("--resign-before %v must be positive and below --timestamp-expiry %v (else every check re-signs)", resignBefore, tsExpiry)
	case resignBefore > snapExpiry/2:
		// sign's Publish renews the snapshot only within half its expiry.
		return fmt.Errorf("--resign-before %v must be at most half of --snapshot-expiry %v", resignBefore, snapExpiry)
	case checkEvery <= 0 || checkEvery >= resignBefore:
		return fmt.Errorf("--check-every %v must be positive and below --resign-before %v (else the timestamp can expire between checks)", checkEvery, resignBefore)
	}
	return nil
}

func newLogger(level, format string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// run is the whole program; it returns the exit status. Logs go to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "updateserver: %v\nRun updateserver --help for usage.\n", err)
		return exitUsage
	}
	log, err := newLogger(f.logLevel, f.logFormat, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "updateserver: %v\n", err)
		return exitUsage
	}

	var tlsConf *tls.Config
	if f.httpsAddr != "" {
		m, err := newTLSMaterial(f.tlsCert, f.tlsKey, f.clientCA)
		if err != nil {
			log.Error("TLS material refused", "err", err)
			return exitSetup
		}
		tlsConf = m.config()
		stopReload := reloadOnHangup(m, log)
		defer stopReload()
	}
	signers, closeKeys, err := loadKeys(ctx, f)
	if err != nil {
		log.Error("loading keys refused", "err", err)
		return exitSetup
	}
	defer closeKeys()
	var bucket *blob.Bucket
	if isBucketURL(f.repo) {
		if bucket, err = blob.OpenBucket(ctx, f.repo); err != nil {
			log.Error("opening the bucket refused", "repo", redactURL(f.repo), "err", err)
			return exitSetup
		}
		defer bucket.Close()
	}
	var store reportStore
	if !f.renewOnly { // a one-shot renewal takes no reports
		if store, err = f.reports.open(ctx, f.repo); err != nil {
			log.Error("report database refused", "err", err)
			return exitSetup
		}
	}
	if store != nil {
		defer store.close()
		log.Info("taking device reports", "db", dbKind(f.reports.db), "devices", f.reports.enrolment)
	} else if !f.reports.noReports && !f.renewOnly {
		log.Info("taking no device reports: a bucket repository needs --db (a postgres:// URL for replicas)")
	}
	srv, err := newServer(ctx, config{
		Bucket:          bucket,
		BucketURL:       f.repo,
		CDNBase:         f.cdnBase,
		CacheTTL:        f.cacheTTL,
		Dir:             f.repo,
		SnapshotKey:     signers[0],
		TimestampKey:    signers[1],
		ControlKey:      signers[2],
		AllowSharedKeys: f.allowSharedKeys,
		TimestampExpiry: f.timestampExpiry,
		SnapshotExpiry:  f.snapshotExpiry,
		ResignBefore:    f.resignBefore,
		CheckEvery:      f.checkEvery,
		Log:             log,
		ConnLimits:      f.limits,
		Reports:         store,
		Enrolment:       f.reports.enrolment,
		ReportLimits:    f.reports.limits,
	})
	if err != nil {
		log.Error("repository refused", "repo", redactURL(f.repo), "err", err)
		return exitSetup
	}
	defer srv.close()
	if f.renewOnly {
		return renewed(srv, stdout, log)
	}

	var eps []endpoint
	listen := func(addr string, kind endpointKind, conf *tls.Config) error {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		eps = append(eps, endpoint{ln: ln, kind: kind, tls: conf})
		return nil
	}
	for _, l := range []struct {
		addr string
		kind endpointKind
		conf *tls.Config
	}{{f.httpAddr, serveAll, nil}, {f.httpsAddr, serveAll, tlsConf}, {f.healthAddr, serveHealth, nil}} {
		if l.addr == "" {
			continue
		}
		if err := listen(l.addr, l.kind, l.conf); err != nil {
			for _, ep := range eps {
				ep.ln.Close()
			}
			log.Error("listen failed", "addr", l.addr, "err", err)
			return exitFailed
		}
	}
	var stats fleetStats // the fleet page's counts, with a report database
	if store != nil {
		stats = newReportStats(srv, dbKind(f.reports.db))
	}
	dep, err := f.dash.listen(srv, stats)
	if err != nil {
		for _, ep := range eps {
			ep.ln.Close()
		}
		log.Error("fleet page refused", "addr", f.dash.addr, "err", err)
		return exitSetup
	}
	if dep != nil {
		eps = append(eps, *dep)
	}
	if err := srv.serve(ctx, eps, f.shutdownTimeout); err != nil {
		log.Error("server stopped with an error", "err", err)
		return exitFailed
	}
	log.Info("shut down")
	return exitOK
}

// loadKeys returns the snapshot, timestamp and control signers (the last
// nil when not given), from PEM files or a PKCS#11 token, and a function
// that ends the token sessions.
func loadKeys(ctx context.Context, f *flags) ([]*sign.Signer, func(), error) {
	if f.pkcs11Module != "" {
		var signers []*sign.Signer
		var opened []*sign.PKCS11Signer
		closeAll := func() {
			for _, p := range opened {
				p.Close()
			}
		}
		for _, k := range []struct{ role, label string }{{"snapshot", f.snapshotLabel}, {"timestamp", f.timestampLabel}, {"control", f.controlLabel}} {
			if k.label == "" {
				signers = append(signers, nil)
				continue
			}
			p, err := sign.OpenPKCS11(ctx, sign.PKCS11Config{ModulePath: f.pkcs11Module, TokenLabel: f.pkcs11Token, KeyLabel: k.label, PINEnv: f.pkcs11PINEnv})
			if err != nil {
				closeAll()
				return nil, nil, fmt.Errorf("%s key %q: %w", k.role, k.label, err)
			}
			opened = append(opened, p)
			signers = append(signers, p.Signer)
		}
		return signers, closeAll, nil
	}
	var pass sign.PassphraseFunc
	if f.passphraseEnv != "" {
		pass = sign.PassphraseFromEnv(f.passphraseEnv)
	}
	var signers []*sign.Signer
	for _, k := range []struct{ role, path string }{{"snapshot", f.snapshotKey}, {"timestamp", f.timestampKey}, {"control", f.controlKey}} {
		if k.path == "" {
			signers = append(signers, nil)
			continue
		}
		s, err := sign.LoadPEMSignerFile(ctx, k.path, pass)
		if err != nil {
			return nil, nil, fmt.Errorf("%s key %s: %w", k.role, k.path, err)
		}
		signers = append(signers, s)
	}
	return signers, func() {}, nil
}

// deviceOf names the device behind a mutual-TLS connection for the logs.
func deviceOf(cs *tls.ConnectionState) string {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return ""
	}
	c := cs.PeerCertificates[0]
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	return strings.ToLower(c.SerialNumber.Text(16))
}
