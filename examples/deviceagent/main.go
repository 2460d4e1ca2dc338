// Command deviceagent is a reference device agent: it keeps a gateway's
// firmware up to date from an otaseal update server, with two slot files
// standing in for the A/B partitions of a real device.
//
// Each cycle refreshes the TUF metadata, selects the newest release the
// rollback policy allows for this hardware, records it as pending, writes it
// into the inactive slot (through a delta when the server has one from the
// running image), "reboots" into it, runs the health-check hook, and
// confirms it or reverts. Only a confirmed install raises the security
// floor. After a kill or power cut at any moment, the next start finishes
// or rolls back the interrupted install: the active slot always holds a
// verified image.
//
// First start (provisioning): slot A holds the factory image; pass its
// version and security version, and the repository's root.json:
//
//	deviceagent -server http://updates.example:8080 -hardware-id acme-gw-r2 \
//	    -state /data/ota -slot-a /dev/mmcblk0p2 -slot-b /dev/mmcblk0p3 \
//	    -root root.json -factory-version 1.0.0 -factory-security-version 1 -once
//
// With -boot grub the slots are partitions and GRUB decides which one
// boots: the agent arms a trial boot of the new slot in GRUB's environment
// block (-grubenv) and reboots; GRUB counts the tries down and falls back
// to the confirmed slot by itself when the new one never confirms; the
// agent confirms on the trial boot, or, after a fallback, reverts and
// does not install that release again. examples/vmdevice is a whole
// device built this way in QEMU.
//
// Staged rollouts and withdrawals come signed with the releases and are
// judged by the device's trusted clock: a release not yet rolled out to
// this device (-rollout-id is its place in the order) is logged with the
// time it opens, and the next check comes no later; a withdrawn release is
// skipped, and a withdrawn running release is logged as a security notice.
//
// With -reports, the agent reports each confirmed install, revert and
// refusal to the server's /reports, signed with its ed25519 report key
// (-report-key, created on first start; enrol its .pub with release
// devices enroll). Reports are queued in the state directory first and
// sent after the cycle, so that the update never waits on them; a server
// that cannot take them gets them at a later cycle.
//
// Exit status with -once: 0 when the device ends on the newest release it
// may take (updated, up to date, or the newer ones withdrawn or not yet
// rolled out to it); 1 when an update was refused or failed
// (the device keeps running its image); 2 for a usage or configuration
// error; 3 for a network failure that a later cycle may not meet (the
// server unreachable, too slow, or answering with an HTTP error); 4 when the
// repository has no release for the hardware ID. -help prints the table.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/otaseal/otaseal/fleet"
)

type config struct {
	server, hardwareID, stateDir, slotA, slotB, rootFile string
	mirrors                                              []string // further -server entries
	factoryVersion                                       string
	factorySecurityVersion                               uint64
	factoryLength                                        int64
	clientCert, clientKey, serverCA                      string
	healthCheck                                          string
	once                                                 bool
	interval                                             time.Duration
	allowDowngrade                                       bool
	retries                                              int
	timeout                                              time.Duration
	logLevel                                             string
	rolloutID                                            string
	decryptionKeys                                       keyFiles
	boot, grubEnv                                        string
	reports                                              bool
	reportKey, deviceID                                  string
	reportQueue                                          int
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr))
}

func parse(args []string, stderr io.Writer) (*config, error) {
	var c config
	fs := flag.NewFlagSet("deviceagent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.server, "server", "", "update server base URL (metadata under /metadata/, targets under /targets/); several, comma-separated, are mirrors of one repository: tried in order on a network error or 5xx, and each before giving up when one's metadata is refused")
	fs.StringVar(&c.hardwareID, "hardware-id", "", "this device's hardware ID, as in the releases' hardware_ids")
	fs.StringVar(&c.stateDir, "state", "", "directory of the device's trusted state (stands in for a flash partition)")
	fs.StringVar(&c.slotA, "slot-a", "", "slot A: a file, or with -boot grub its partition (e.g. /dev/mmcblk0p2)")
	fs.StringVar(&c.slotB, "slot-b", "", "slot B: a file or a partition")
	fs.StringVar(&c.rootFile, "root", "", "the repository's root.json, trusted on first start only")
	fs.StringVar(&c.factoryVersion, "factory-version", "", "version of the factory image in slot A (first start only)")
	fs.Uint64Var(&c.factorySecurityVersion, "factory-security-version", 0, "security version of the factory image (first start only)")
	fs.Int64Var(&c.factoryLength, "factory-length", 0, "length in bytes of the factory image at the start of slot A, when the slot is a partition larger than the image (first start only; default: all of -slot-a)")
	fs.StringVar(&c.clientCert, "client-cert", "", "PEM client certificate: the device identity for mTLS")
	fs.StringVar(&c.clientKey, "client-key", "", "PEM private key of the client certificate")
	fs.StringVar(&c.serverCA, "server-ca", "", "PEM CA bundle to verify an HTTPS server (default: the system pool)")
	fs.StringVar(&c.healthCheck, "health-check", "", "command run after switching slots; exit status 0 means healthy (default: re-verify the slot)")
	fs.BoolVar(&c.once, "once", false, "run one cycle and exit")
	fs.DurationVar(&c.interval, "interval", time.Hour, "time between cycles")
	fs.IntVar(&c.retries, "retries", 3, "retries of a failed download before the cycle gives up (0: none)")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "bound on connecting, the TLS handshake and the wait for response headers, per request")
	fs.BoolVar(&c.allowDowngrade, "allow-downgrade", false, "accept a lower version with the same security version (rollback.InstallPolicy.AllowDowngrade)")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.Var(&c.decryptionKeys, "decryption-key", decryptionKeyHelp)
	fs.StringVar(&c.rolloutID, "rollout-id", "", "this device's place in staged rollouts, e.g. its serial number (default: a random ID kept in the state)")
	fs.StringVar(&c.boot, "boot", "files", "slot backend: files (no bootloader: the agent switches slots itself) or grub (GRUB environment block with a try counter; slots are partitions)")
	fs.StringVar(&c.grubEnv, "grubenv", "", "with -boot grub: GRUB's environment block, e.g. /boot/grub/grubenv")
	fs.BoolVar(&c.reports, "reports", false, "send an install report to the server's /reports after each install, revert or refusal (queued in the state directory while the server is unreachable)")
	fs.StringVar(&c.reportKey, "report-key", "", "ed25519 key that signs the reports, PKCS #8 PEM; created with its public half in FILE.pub if missing (default STATE/report-key.pem); enrol it with release devices enroll")
	fs.StringVar(&c.deviceID, "device-id", "", "this device's ID in its reports, as enrolled (default: the rollout ID)")
	fs.IntVar(&c.reportQueue, "report-queue", fleet.DefaultQueueLen, "unsent reports kept in the state directory; the oldest go first")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: deviceagent -server URL -hardware-id ID -state DIR -slot-a FILE -slot-b FILE [flags]")
		fmt.Fprintln(stderr, "\nKeeps the device's firmware up to date with verified A/B installs. Flags:")
		fs.PrintDefaults()
		fmt.Fprint(stderr, exitCodes)
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for name, v := range map[string]string{"server": c.server, "hardware-id": c.hardwareID, "state": c.stateDir, "slot-a": c.slotA, "slot-b": c.slotB} {
		if v == "" {
			return nil, fmt.Errorf("-%s is required", name)
		}
	}
	if (c.clientCert == "") != (c.clientKey == "") {
		return nil, errors.New("-client-cert and -client-key go together")
	}
	if sameFile(c.slotA, c.slotB) {
		return nil, fmt.Errorf("-slot-a %s and -slot-b %s are the same file: writing one would overwrite the running image", c.slotA, c.slotB)
	}
	if c.timeout <= 0 {
		return nil, fmt.Errorf("-timeout %v: want a positive duration", c.timeout)
	}
	servers, err := serverURLs(c.server)
	if err != nil {
		return nil, err
	}
	c.server, c.mirrors = servers[0], servers[1:]
	return &c, nil
}

func sameFile(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	ia, errA := os.Stat(a)
	ib, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(ia, ib)
}

// serverURL checks -server at start, so that a URL the agent cannot use
// fails as a usage error now rather than as a fetch error mid-cycle. It
// returns the base without a trailing slash.
func serverURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("-server %q: want an http:// or https:// URL with a host, such as http://updates.example:8080", s)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("-server %q: want a base URL without query or fragment", s)
	}
	return strings.TrimSuffix(s, "/"), nil
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	c, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "deviceagent: %v\n", err)
		return exitUsage
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		fmt.Fprintf(stderr, "deviceagent: -log-level: %v\n", err)
		return exitUsage
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	a, err := openAgent(ctx, c, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return exitUsage
	}
	defer a.close()
	for {
		code := a.report(a.update(ctx))
		// After the cycle: a slow or absent server delays only the
		// reports, never the update.
		a.flushReports(ctx)
		if c.once {
			return code
		}
		select {
		case <-ctx.Done():
			log.Info("stopping")
			return 0
		case <-time.After(a.nextCheck(c.interval)):
		}
	}
}
