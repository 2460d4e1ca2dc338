package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/otaseal/otaseal/fleet"
	"github.com/otaseal/otaseal/manifest"
)

// healthFlags are add's health rule options.
type healthFlags struct {
	share       string
	minAttempts int64
}

func (h *healthFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&h.share, "pause-failures", "", "health rule: the update server pauses the release once this share of its attempts reverted or failed, e.g. 5% (needs the server's rollout control key)")
	fs.Int64Var(&h.minAttempts, "pause-min-attempts", 20, "health rule: judge only once at least this many devices attempted the release")
}

// rule returns the rule the flags set, nil when none.
func (h *healthFlags) rule() (*fleet.HealthRule, error) {
	if h.share == "" {
		return nil, nil
	}
	bp, err := parseShare(h.share)
	if err != nil {
		return nil, usageErr("--pause-failures: %v", err)
	}
	r := fleet.HealthRule{FailureShare: bp, MinAttempts: h.minAttempts}
	if err := r.Validate(); err != nil {
		return nil, usageErr("--pause-failures/--pause-min-attempts: %v", err)
	}
	return &r, nil
}

// saveHealthRule stores target's rule in the repository directory's
// health rules file, which the update server reads (and never serves).
func saveHealthRule(dir, target string, rule fleet.HealthRule) error {
	path := filepath.Join(dir, fleet.HealthRulesFile)
	rules := &fleet.HealthRules{Releases: map[string]fleet.HealthRule{}}
	if b, err := os.ReadFile(path); err == nil {
		if rules, err = fleet.ParseHealthRules(b); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	rules.Releases[target] = rule
	b, err := rules.Marshal()
	if err != nil {
		return err
	}
	return writeFile(path, b)
}

func cmdDevices(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "devices", "enroll --devices FILE --device-id ID --hardware-id HWID --rollout-id RID --public-key PEM [--replace] | list --devices FILE", `
Keeps the enrolment file of the update server (updateserver --devices):
the devices that may send install reports, each with the ed25519 public
key it signs them with (the device agent writes its key pair with
-report-key; a "PUBLIC KEY" PEM or the device's PKCS #8 private key PEM
is read, and only the public half is kept). The rollout ID must be the
one the device uses for staged rollouts: the server refuses reports that
claim another. A key belongs to one device only. The server re-reads the
file when it changes.

  enroll  add a device (or, with --replace, change its key or IDs)
  list    print the enrolled devices`)
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (strings.Trim(args[0], "-") == "help" || strings.Trim(args[0], "-") == "h") {
			return parse(e, fs, args[:1])
		}
		return usageErr("want an action first: enroll or list")
	}
	action := args[0]
	file := fs.String("devices", "", "enrolment file (created by the first enroll)")
	id := fs.String("device-id", "", "the device's ID, as in its reports (deviceagent -device-id)")
	hw := fs.String("hardware-id", "", "the device's hardware ID")
	rid := fs.String("rollout-id", "", "the device's rollout ID (deviceagent -rollout-id)")
	pubFile := fs.String("public-key", "", "the device's report key, PEM")
	replace := fs.Bool("replace", false, "replace an enrolled device of the same ID")
	if err := parse(e, fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected arguments %q", fs.Args())
	}
	if *file == "" {
		return usageErr("--devices is required")
	}
	enrolment := fleet.NewEnrolment()
	b, err := os.ReadFile(*file)
	switch {
	case err == nil:
		if enrolment, err = fleet.ParseEnrolment(b); err != nil {
			return fmt.Errorf("%s: %w", *file, err)
		}
	case errors.Is(err, os.ErrNotExist) && action == "enroll":
	default:
		return err
	}
	switch action {
	case "list":
		e.printf("%-24s %-16s %-24s %s\n", "DEVICE", "HARDWARE", "ROLLOUT ID", "KEY (base64)")
		for _, d := range enrolment.Devices() {
			e.printf("%-24s %-16s %-24s %s\n", d.ID, d.HardwareID, d.RolloutID, base64.StdEncoding.EncodeToString(d.PublicKey))
		}
		return nil
	case "enroll":
	default:
		return usageErr("unknown action %q: want enroll or list", action)
	}
	if *id == "" || *hw == "" || *rid == "" || *pubFile == "" {
		return usageErr("enroll needs --device-id, --hardware-id, --rollout-id and --public-key")
	}
	pem, err := os.ReadFile(*pubFile)
	if err != nil {
		return err
	}
	pub, err := fleet.ParsePublicKeyPEM(pem)
	if err != nil {
		return fmt.Errorf("%s: %w", *pubFile, err)
	}
	if *replace {
		enrolment.Remove(*id)
	}
	if err := enrolment.Add(fleet.Device{ID: *id, HardwareID: *hw, RolloutID: *rid, PublicKey: pub}); err != nil {
		if errors.Is(err, fleet.ErrEnrolled) && !*replace {
			return fmt.Errorf("%w (give --replace to change an enrolled device)", err)
		}
		return err
	}
	out, err := enrolment.Marshal()
	if err != nil {
		return err
	}
	if err := writeFile(*file, out); err != nil {
		return err
	}
	e.printf("enrolled %s (%s, rollout ID %s) in %s: %d device(s)\n", *id, *hw, *rid, *file, enrolment.Len())
	return nil
}

// printFleetStatus prints what the update server at base (its --health
// listener) counted for target, per wave.
func printFleetStatus(ctx context.Context, e *env, base, target string) error {
	u := strings.TrimSuffix(base, "/") + fleet.StatusPath + "?release=" + url.QueryEscape(target)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return usageErr("--server %q: %v", base, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("fleet status: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("fleet status: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fleet status from %s: %s: %s", base, resp.Status, strings.TrimSpace(string(body)))
	}
	var st fleet.ReleaseStatus
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("fleet status from %s: %w", base, err)
	}
	if st.Rule != nil {
		e.printf("health:   %s\n", st.Rule)
	} else {
		e.printf("health:   no rule (add --pause-failures)\n")
	}
	if p := st.LastPause; p != nil {
		how := "paused"
		if !p.Published {
			how = "tripped; NOT paused: the server has no control key"
		}
		e.printf("          %s by the health rule at %s: %d of %d attempts reverted or failed\n", how, formatTime(p.At), p.Failures, p.Attempts)
	}
	e.printf("%-5s %-7s %-22s %8s %8s %9s %9s %8s %6s\n", "WAVE", "SHARE", "OPENS", "DEVICES", "ELIGIBLE", "ATTEMPTED", "CONFIRMED", "REVERTED", "FAILED")
	for _, w := range st.Waves {
		opens := formatTime(w.Opens)
		if w.Opens.IsZero() {
			opens = "-"
		}
		e.printf("%-5d %-7s %-22s %8d %8d %9d %9d %8d %6d\n", w.Wave, manifest.FormatShare(w.Share), opens, w.Devices, w.Eligible, w.Attempted, w.Confirmed, w.Reverted, w.Failed)
	}
	return nil
}
