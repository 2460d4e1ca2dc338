package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/otaseal/otaseal/manifest"
)

func cmdWithdraw(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "withdraw", "--repo DIR --reason TEXT [--advisory ID]... (--key K... | --stage) TARGET", `
Withdraws the published release TARGET (e.g. acme-gw-r2/1.2.1/firmware.bin):
its entry is signed again by the targets role with "withdrawn" set, the
reason and the advisories. Devices then never install it; a device running
it logs the reason as a security notice and moves to the next newer release
it may take. Security floors do not go down: a release that raised one
stays a floor.

The image stays published and unchanged, so that a device in the middle of
installing it finishes or reverts cleanly. Signing is as for add: --key to
publish now, --stage for a k-of-n ceremony.`)
	repoDir := fs.String("repo", "", "repository directory")
	passEnv := fs.String("passphrase-env", "", "environment variable holding the passphrase of encrypted PEM keys")
	reason := fs.String("reason", "", "why the release is withdrawn: one line, shown on every device that runs it")
	var keys listFlag
	var advisories repeatFlag
	fs.Var(&advisories, "advisory", "advisory about the withdrawn release, e.g. CVE-2026-0042 (repeatable)")
	fs.Var(&keys, "key", "signing key: "+keyHelp+" (repeatable)")
	stage := fs.Bool("stage", false, "stage for an offline ceremony instead of publishing")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErr("want exactly one TARGET argument (e.g. acme-gw-r2/1.2.1/firmware.bin), got %d", fs.NArg())
	}
	if *stage == (len(keys) > 0) {
		return usageErr("give either --key (publish now) or --stage (k-of-n ceremony)")
	}
	w := manifest.Withdrawal{Reason: strings.TrimSpace(*reason), Advisories: advisories}
	if w.Reason == "" {
		return usageErr("--reason is required: devices log it")
	}
	if err := w.Validate(); err != nil {
		return usageErr("%v", err)
	}
	target := fs.Arg(0)

	s, signers, err := openSigning(ctx, *repoDir, *passEnv, keys)
	if err != nil {
		return err
	}
	defer s.close()
	fw, err := withdraw(ctx, s, target, w)
	if err != nil {
		return err
	}
	e.printf("withdrew %s (version %s): %s\n", target, fw.Version, w.Reason)
	// A release index holding the old entry would now disagree with it.
	if err := updateIndexes(ctx, e, s, fw.HardwareIDs, false); err != nil {
		return err
	}
	return s.finish(ctx, e, *stage, signers)
}

// withdraw stages target again with fw.Withdrawn set. The entry is
// re-added from the stored image, whose length and hashes must come out
// as signed: the image a device may be downloading never changes.
func withdraw(ctx context.Context, s *session, target string, w manifest.Withdrawal) (*manifest.Firmware, error) {
	old, ok := allTargets(s)[target]
	if !ok {
		return nil, noTarget(target)
	}
	for _, p := range s.repo.StagedChanges().Targets {
		if p == target {
			return nil, fmt.Errorf("%s is staged, not published: publish it first, or drop %s", target, stagingFile(s.dir))
		}
	}
	fw, err := manifest.FirmwareOf(old)
	if err != nil {
		return nil, fmt.Errorf("%s is not a firmware release: %w", target, err)
	}
	if fw.Withdrawn != nil {
		return nil, fmt.Errorf("%s is already withdrawn: %s", target, fw.Withdrawn.Reason)
	}
	fw.Withdrawn = &w
	rc, err := s.repo.ReadTarget(ctx, target)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	// The entry, not the file, is removed: the stored image stays.
	if err := s.repo.RemoveTarget(target); err != nil {
		return nil, err
	}
	if err := s.repo.AddFirmware(ctx, target, rc, *fw); err != nil {
		return nil, err
	}
	now := allTargets(s)[target]
	if now == nil || now.Length != old.Length || !now.Hashes.Equal(old.Hashes) {
		return nil, fmt.Errorf("stored %s does not match its signed length and hashes: not withdrawn", target)
	}
	return fw, nil
}
