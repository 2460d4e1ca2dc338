package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

func cmdControlInit(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "control-init", "--repo DIR --control-key K[,K...] [--control-threshold N] (--key K... | --stage)", `
Creates the rollout control role: a role delegated by the targets role
with no paths and its own keys, the online keys the update server holds
beside the snapshot and timestamp keys. With them, "release rollout" can
pause, cap or stop a release without the offline targets key; the role
can never add a release, start a wave early or widen a share.

Setting it up re-signs the targets role once, so it needs the targets
key(s) (--key, or --stage for a k-of-n ceremony), and the control key(s)
to sign the role's first, empty document. A "PUBLIC KEY" PEM file in
--control-key lists a key without signing with it.`)
	repoDir := fs.String("repo", "", "repository directory")
	passEnv := fs.String("passphrase-env", "", "environment variable holding the passphrase of encrypted PEM keys")
	var controlKeys, keys listFlag
	fs.Var(&controlKeys, "control-key", "key(s) of the rollout control role: "+keyHelp)
	threshold := fs.Int("control-threshold", 1, "signatures the rollout control role needs")
	fs.Var(&keys, "key", "signing key: "+keyHelp+" (repeatable)")
	stage := fs.Bool("stage", false, "stage for an offline ceremony instead of publishing")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected arguments %q", fs.Args())
	}
	if len(controlKeys) == 0 {
		return usageErr("--control-key is required")
	}
	if *stage == (len(keys) > 0) {
		return usageErr("give either --key (publish now) or --stage (k-of-n ceremony)")
	}
	s, signers, err := openSigning(ctx, *repoDir, *passEnv, keys)
	if err != nil {
		return err
	}
	defer s.close()
	rk, signers, err := s.keys.roleKeys(ctx, controlKeys, *threshold, signers)
	if err != nil {
		return err
	}
	if err := s.repo.AddRolloutControl(rk); err != nil {
		if errors.Is(err, sign.ErrRoleExists) {
			return fmt.Errorf("%s already has a rollout control role (change its keys with rotate)", s.dir)
		}
		return err
	}
	e.printf("added role %s: %d of %d key(s)\n", manifest.RoleRolloutControl, rk.Threshold, len(rk.Keys))
	return s.finish(ctx, e, *stage, signers)
}

// rolloutActions are the actions of "release rollout", and what each
// stages.
var rolloutActions = map[string]manifest.ControlState{
	"pause": manifest.ControlPaused,
	"cap":   manifest.ControlCapped,
	"stop":  manifest.ControlStopped,
	// resume clears the control; status changes nothing.
	"resume": "",
	"status": "",
}

func cmdRollout(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "rollout", "pause|resume|cap|stop|status --repo DIR [--reason TEXT] [--share S%] [--key K...] TARGET", `
Controls the staged rollout of the published release TARGET (e.g.
acme-gw-r2/1.2.0/firmware.bin) through the rollout control role (see
control-init):

  pause   hold the release back from every device that does not run it
  cap     hold back the devices above --share of the fleet (e.g. 5%)
  stop    abandon the rollout; final: it cannot be resumed
  resume  lift a pause or a cap: the signed schedule is in force again
  status  print the schedule, the current wave and the control

A control only narrows the schedule the targets role signed: no cap can
widen a share or start a wave early. pause, cap, stop and resume publish
at once with the control key(s) and the snapshot and timestamp keys; the
offline targets key is not needed. Changes staged for a ceremony stay
staged: they are not published with the control, and the ceremony goes on.`)
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (strings.Trim(args[0], "-") == "help" || strings.Trim(args[0], "-") == "h") {
			return parse(e, fs, args[:1])
		}
		return usageErr("want an action first: pause, resume, cap, stop or status")
	}
	action := args[0]
	state, known := rolloutActions[action]
	if !known {
		return usageErr("unknown action %q: want pause, resume, cap, stop or status", action)
	}
	repoDir := fs.String("repo", "", "repository directory")
	passEnv := fs.String("passphrase-env", "", "environment variable holding the passphrase of encrypted PEM keys")
	reason := fs.String("reason", "", "why (pause, cap, stop): one line, devices log it")
	share := fs.String("share", "", "with cap: the most of the fleet the release may reach, e.g. 5% or 0.5%")
	server := fs.String("server", "", "with status: also print the install reports per wave that the update server at this URL counted (its --health listener, e.g. http://127.0.0.1:8081)")
	var keys listFlag
	fs.Var(&keys, "key", "signing key: the control key(s), snapshot and timestamp keys: "+keyHelp+" (repeatable)")
	if err := parse(e, fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErr("want exactly one TARGET argument (e.g. acme-gw-r2/1.2.0/firmware.bin), got %d", fs.NArg())
	}
	target := fs.Arg(0)
	if action == "status" {
		if len(keys) > 0 || *reason != "" || *share != "" {
			return usageErr("status takes no --key, --reason or --share")
		}
		s, err := openPublished(ctx, *repoDir)
		if err != nil {
			return err
		}
		defer s.close()
		if err := rolloutStatus(e, s, target, time.Now()); err != nil || *server == "" {
			return err
		}
		return printFleetStatus(ctx, e, *server, target)
	}
	if *server != "" {
		return usageErr("--server goes with status")
	}
	rc := manifest.ReleaseControl{State: state, Reason: strings.TrimSpace(*reason)}
	switch {
	case (*share != "") != (state == manifest.ControlCapped):
		return usageErr("--share goes with cap, and only with cap")
	case action == "resume" && rc.Reason != "":
		return usageErr("resume takes no --reason")
	case len(keys) == 0:
		return usageErr("--key is required: the control key(s), snapshot and timestamp keys")
	}
	if *share != "" {
		bp, err := parseShare(*share)
		if err != nil {
			return usageErr("--share: %v", err)
		}
		rc.CapShare = bp
	}
	if state != "" {
		if err := (&manifest.Control{Releases: map[string]manifest.ReleaseControl{target: rc}}).Validate(); err != nil {
			return usageErr("%v", err)
		}
	}

	// The published repository only: a ceremony in progress keeps its
	// staged changes, and the control is published without them.
	s, signers, err := openSigningWith(ctx, openPublished, *repoDir, *passEnv, keys)
	if err != nil {
		return err
	}
	defer s.close()
	if err := setControl(s, target, action, rc); err != nil {
		return err
	}
	e.printf("%s %s: %s\n", target, pastTense[action], formatControl(controlOf(s, target)))
	if err := s.publish(ctx, e, signers); err != nil {
		return err
	}
	return nil
}

var pastTense = map[string]string{"pause": "paused", "cap": "capped", "stop": "stopped", "resume": "resumed"}

// setControl stages the action on target's control, refusing what would
// contradict an earlier decision: nothing moves a stopped release.
func setControl(s *session, target, action string, rc manifest.ReleaseControl) error {
	ctl, err := s.repo.RolloutControl()
	if errors.Is(err, sign.ErrUnknownRole) {
		return fmt.Errorf("%s has no rollout control role: create it once with release control-init", s.dir)
	}
	if err != nil {
		return err
	}
	if _, ok := allTargets(s)[target]; !ok {
		return noTarget(target)
	}
	cur, controlled := ctl.Releases[target]
	if controlled && cur.State == manifest.ControlStopped {
		return fmt.Errorf("%s is stopped (%s): stop is final; publish a new release instead", target, formatControl(&cur))
	}
	if action == "resume" {
		if !controlled {
			return fmt.Errorf("%s is not paused or capped: it follows its signed schedule", target)
		}
		return s.repo.ClearRolloutControl(target)
	}
	return s.repo.SetRolloutControl(target, rc)
}

// controlOf returns the control of target, nil when there is none (or no
// control role).
func controlOf(s *session, target string) *manifest.ReleaseControl {
	ctl, err := s.repo.RolloutControl()
	if err != nil {
		return nil
	}
	rc, ok := ctl.Releases[target]
	if !ok {
		return nil
	}
	return &rc
}

// formatControl writes a control as status and inspect show it.
func formatControl(rc *manifest.ReleaseControl) string {
	if rc == nil {
		return "none: the signed schedule is in force"
	}
	what := string(rc.State)
	if rc.State == manifest.ControlCapped {
		what = "capped at " + manifest.FormatShare(rc.CapShare)
	}
	if rc.Reason != "" {
		what += ": " + oneLine(rc.Reason)
	}
	return what
}

// rolloutStatus prints target's schedule, how far it has got at now and
// its control.
func rolloutStatus(e *env, s *session, target string, now time.Time) error {
	tf, ok := allTargets(s)[target]
	if !ok {
		return noTarget(target)
	}
	fw, err := manifest.FirmwareOf(tf)
	if err != nil {
		return fmt.Errorf("%s is not a firmware release: %w", target, err)
	}
	e.printf("release:  %s (version %s)\n", target, fw.Version)
	start := ""
	if fw.Rollout != nil {
		start = " from " + formatTime(fw.Rollout.Start)
	}
	e.printf("schedule: %s%s\n", formatSchedule(fw.Rollout), start)
	e.printf("now:      %s\n", currentWave(fw.Rollout, now))
	if fw.Withdrawn != nil {
		e.printf("withdrawn: %s\n", oneLine(fw.Withdrawn.Reason))
	}
	if _, err := s.repo.RolloutControl(); err != nil {
		e.printf("control:  no rollout control role (release control-init)\n")
		return nil
	}
	e.printf("control:  %s\n", formatControl(controlOf(s, target)))
	return nil
}

func noTarget(target string) error {
	return fmt.Errorf("no target %q in the repository (give the path inspect's releases stand for, HWID/VERSION/firmware.bin)", target)
}
