package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/otaseal/otaseal/delta"
	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

// deltaFormat is one patch encoding a release can be offered in.
type deltaFormat struct {
	manifest manifest.DeltaFormat
	codec    delta.Format
	ext      string
}

// deltaExt is the file name extension of each format's patches.
var deltaExt = map[delta.Format]string{delta.FormatBSDIFF40: "bsdiff", delta.FormatStream: "otz"}

// parseDeltaFormats reads wire names, which manifest and delta share.
func parseDeltaFormats(names []string) ([]deltaFormat, error) {
	var out []deltaFormat
	for _, n := range names {
		codec, err := delta.ParseFormat(n)
		if err != nil {
			return nil, usageErr("unknown delta format %q (want bsdiff40 or otaseal-zstd)", n)
		}
		if !slices.ContainsFunc(out, func(f deltaFormat) bool { return f.codec == codec }) {
			out = append(out, deltaFormat{manifest.DeltaFormat(n), codec, deltaExt[codec]})
		}
	}
	return out, nil
}

func cmdAdd(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "add", "--repo DIR --hardware-id ID[,ID] --version V --security-version N [flags] (--key K... | --stage) IMAGE", `
Adds the firmware image IMAGE as target HWID/VERSION/firmware.bin (HWID is
the first --hardware-id) and, from each of the --deltas newest earlier
releases for the same hardware IDs, a delta in every --delta-formats as
HWID/deltas/FROM-TO.bsdiff or .otz. A delta that would not be smaller than
the image is skipped. Progress goes to stderr, one line per delta.

With --rollout, the release is signed with a staged rollout schedule that
devices enforce by their trusted clock: wave "10%@24h" reaches a tenth of
the devices 24 hours after --rollout-start. Each device's place in the
order is a hash of the release and its rollout ID, so every release starts
on other devices.

With --key, the release is published at once: the keys must meet the
targets threshold, plus snapshot and timestamp. With --stage nothing is
published; the release is kept in DIR.staged for a k-of-n ceremony
(release export, sign, merge). Earlier staged changes are published or
kept together with this one.`)
	repoDir := fs.String("repo", "", "repository directory")
	passEnv := fs.String("passphrase-env", "", "environment variable holding the passphrase of encrypted PEM keys")
	var hwids, keys, formats listFlag
	var advisories repeatFlag
	fs.Var(&hwids, "hardware-id", "hardware ID(s) the image is built for (comma-separated or repeated)")
	version := fs.String("version", "", "semantic version of the image, e.g. 2.4.1")
	secVersion := fs.Uint64("security-version", 0, "security version: must never drop across releases of a hardware ID")
	severity := fs.String("severity", "", "feature, bugfix, security or critical")
	fs.Var(&advisories, "advisory", "advisory fixed by the release, e.g. CVE-2026-0001 (repeatable)")
	notes := fs.String("notes", "", "release notes")
	deltas := fs.Int("deltas", 2, "make deltas from this many newest earlier releases (0: none)")
	fs.Var(&formats, "delta-formats", "delta formats: bsdiff40, otaseal-zstd (default both)")
	fs.Var(&keys, "key", "signing key: "+keyHelp+" (repeatable)")
	stage := fs.Bool("stage", false, "stage for an offline ceremony instead of publishing")
	rolloutSpec := fs.String("rollout", "", rolloutHelp())
	rolloutStart := fs.String("rollout-start", "", "start of the --rollout schedule, RFC 3339 (default: now, in UTC)")
	var health healthFlags
	health.register(fs)
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErr("want exactly one IMAGE argument, got %d", fs.NArg())
	}
	if *stage == (len(keys) > 0) {
		return usageErr("give either --key (publish now) or --stage (k-of-n ceremony)")
	}
	if len(hwids) == 0 || *version == "" {
		return usageErr("--hardware-id and --version are required")
	}
	if *deltas < 0 {
		return usageErr("--deltas must not be negative")
	}
	if len(formats) == 0 {
		formats = listFlag{string(manifest.FormatBSDIFF40), string(manifest.FormatZstdStream)}
	}
	fmts, err := parseDeltaFormats(formats)
	if err != nil {
		return err
	}
	v, err := manifest.ParseVersion(*version)
	if err != nil {
		return usageErr("%v", err)
	}
	fw := manifest.Firmware{Version: v, SecurityVersion: *secVersion, HardwareIDs: hwids,
		Severity: manifest.Severity(*severity), Advisories: advisories, Notes: *notes}
	if *rolloutSpec == "" && *rolloutStart != "" {
		return usageErr("--rollout-start needs --rollout")
	}
	if *rolloutSpec != "" {
		start, err := parseRolloutStart(*rolloutStart)
		if err != nil {
			return err
		}
		if fw.Rollout, err = parseRollout(*rolloutSpec, start); err != nil {
			return err
		}
	}
	if err := fw.Validate(); err != nil {
		return usageErr("%v", err)
	}
	rule, err := health.rule()
	if err != nil {
		return err
	}
	image := fs.Arg(0)

	s, signers, err := openSigning(ctx, *repoDir, *passEnv, keys)
	if err != nil {
		return err
	}
	defer s.close()
	if err := checkSecurityVersion(s.repo, fw); err != nil {
		return err
	}

	target := fmt.Sprintf("%s/%s/firmware.bin", hwids[0], v)
	f, err := os.Open(image)
	if err != nil {
		return err
	}
	err = s.repo.AddFirmware(ctx, target, f, fw)
	f.Close()
	if err != nil {
		return err
	}
	e.printf("added %s (security version %d)\n", target, fw.SecurityVersion)
	if fw.Rollout != nil {
		e.printf("rollout from %s: %s\n", fw.Rollout.Start.Format(time.RFC3339), formatSchedule(fw.Rollout))
	}
	if *deltas > 0 {
		if err := addDeltas(ctx, e, s, target, fw, image, *deltas, fmts); err != nil {
			return err
		}
	}
	if err := s.finish(ctx, e, *stage, signers); err != nil {
		return err
	}
	if rule != nil {
		if err := saveHealthRule(s.dir, target, *rule); err != nil {
			return fmt.Errorf("saving the health rule: %w", err)
		}
		e.printf("health rule of %s: %s\n", target, rule)
	}
	return nil
}

// checkSecurityVersion refuses a release whose security version is below
// that of an earlier version for one of its hardware IDs: devices would
// refuse it anyway once they installed the later one.
func checkSecurityVersion(repo *sign.Repository, fw manifest.Firmware) error {
	targets, ok := repo.Targets(manifest.RoleTargets)
	if !ok {
		return nil
	}
	for _, hw := range fw.HardwareIDs {
		rels, err := manifest.FirmwareFor(&targets.Signed, hw)
		if err != nil {
			return err
		}
		for _, r := range rels {
			if r.Firmware.Version.Compare(fw.Version) < 0 && r.Firmware.SecurityVersion > fw.SecurityVersion {
				return fmt.Errorf("security version %d of %s is below %d of the earlier release %s for %s",
					fw.SecurityVersion, fw.Version, r.Firmware.SecurityVersion, r.Firmware.Version, hw)
			}
		}
	}
	return nil
}

// previousReleases returns up to n releases older than fw for any of its
// hardware IDs, newest first.
func previousReleases(repo *sign.Repository, fw manifest.Firmware, n int) ([]manifest.Release, error) {
	targets, ok := repo.Targets(manifest.RoleTargets)
	if !ok {
		return nil, nil
	}
	var out []manifest.Release
	for _, hw := range fw.HardwareIDs {
		rels, err := manifest.FirmwareFor(&targets.Signed, hw)
		if err != nil {
			return nil, err
		}
		for _, r := range rels {
			if r.Firmware.Version.Compare(fw.Version) < 0 && !slices.ContainsFunc(out, func(o manifest.Release) bool { return o.Path == r.Path }) {
				out = append(out, r)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b manifest.Release) int { return b.Firmware.Version.Compare(a.Firmware.Version) })
	if len(out) > n {
		out = out[:n]
	}
	return out, nil
}

// addDeltas diffs each earlier release against the new image once and
// encodes the edit script in every format.
func addDeltas(ctx context.Context, e *env, s *session, target string, fw manifest.Firmware, imagePath string, n int, fmts []deltaFormat) error {
	prev, err := previousReleases(s.repo, fw, n)
	if err != nil {
		return err
	}
	if len(prev) == 0 {
		e.printf("no earlier release to make a delta from\n")
		return nil
	}
	newImage, err := os.ReadFile(imagePath)
	if err != nil {
		return err
	}
	toSum := sha256.Sum256(newImage)
	to := manifest.DeltaEnd{Path: target, Length: int64(len(newImage)), SHA256: toSum[:]}
	for i, r := range prev {
		old, err := readTarget(ctx, s.repo, r.Path)
		if err != nil {
			return err
		}
		fromSum := sha256.Sum256(old)
		if !bytes.Equal(fromSum[:], r.File.Hashes["sha256"]) || int64(len(old)) != r.File.Length {
			return fmt.Errorf("stored %s does not match its signed length and hash", r.Path)
		}
		fmt.Fprintf(e.stderr, "[%d/%d] diffing %s (%s) -> %s (%s) ...\n", i+1, len(prev), r.Firmware.Version, size(int64(len(old))), fw.Version, size(int64(len(newImage))))
		start := time.Now()
		var d *delta.Script
		err = withProgress(e, "diffing", func() (err error) {
			d, err = delta.Diff(old, newImage)
			return err
		})
		if err != nil {
			return fmt.Errorf("diff %s: %w", r.Path, err)
		}
		fmt.Fprintf(e.stderr, "      diffed in %s\n", time.Since(start).Round(time.Millisecond))
		for _, f := range fmts {
			start := time.Now()
			var patch bytes.Buffer
			if err := withProgress(e, "encoding "+string(f.manifest), func() error { return d.Encode(&patch, f.codec) }); err != nil {
				return fmt.Errorf("encode %s: %w", f.manifest, err)
			}
			path := fmt.Sprintf("%s/deltas/%s-%s.%s", fw.HardwareIDs[0], r.Firmware.Version, fw.Version, f.ext)
			if patch.Len() >= len(newImage) {
				fmt.Fprintf(e.stderr, "      %-12s %s: skipped, %s is not smaller than the image\n", f.manifest, path, size(int64(patch.Len())))
				continue
			}
			if err := s.repo.AddDelta(ctx, path, r.Path, to.Path, bytes.NewReader(patch.Bytes())); err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "      %-12s %s: %s (%.1f%% of the image) in %s\n", f.manifest, path, size(int64(patch.Len())),
				100*float64(patch.Len())/float64(len(newImage)), time.Since(start).Round(time.Millisecond))
			e.printf("added %s (%s, saves %s)\n", path, f.manifest, size(int64(len(newImage)-patch.Len())))
		}
	}
	return nil
}

// progressEvery is how often long work reports that it is still going.
var progressEvery = 5 * time.Second

// withProgress runs fn, printing a line every progressEvery while it
// runs: diffing a large image takes a while and gives no other sign of
// life.
func withProgress(e *env, what string, fn func() error) error {
	done := make(chan struct{})
	stopped := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(stopped)
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(e.stderr, "      still %s after %s\n", what, time.Since(start).Round(time.Second))
			}
		}
	}()
	err := fn()
	close(done)
	<-stopped
	return err
}

// readTarget reads a published or staged target whole: the delta
// algorithm needs both images in memory.
func readTarget(ctx context.Context, repo *sign.Repository, path string) ([]byte, error) {
	rc, err := repo.ReadTarget(ctx, path)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, delta.MaxInputSize+1))
	if err == nil && len(data) > delta.MaxInputSize {
		err = fmt.Errorf("%s is larger than the delta limit of %s", path, size(delta.MaxInputSize))
	}
	return data, err
}

// size formats a byte count for people.
func size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
