package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/otaseal/otaseal/delta"
	"github.com/otaseal/otaseal/encrypt"
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
	fs := newFlags(e, "add", "--repo DIR --hardware-id ID[,ID] [--new-hardware-id] --version V --security-version N [flags] (--key K... | --stage) IMAGE", `
Adds the firmware image IMAGE as target HWID/VERSION/firmware.bin (HWID is
the first --hardware-id) and, from each of the --deltas newest earlier
releases for the same hardware IDs, a delta in every --delta-formats as
HWID/deltas/FROM-TO.bsdiff or .otz. A delta that would not be smaller than
the image is skipped. On a terminal, progress is drawn on stderr while
the image is hashed and each delta is made; scripts see only the results.

A hardware ID that no release in the repository names yet is refused
unless --new-hardware-id says that a new product line is meant: a typo
would otherwise publish a release no device ever asks for. Adding the
same image with the same facts again changes nothing ("already
published"); another image or other facts under a published version are
refused, since a published version never changes.

With --rollout, the release is signed with a staged rollout schedule that
devices enforce by their trusted clock: wave "10%@24h" reaches a tenth of
the devices 24 hours after --rollout-start. Each device's place in the
order is a hash of the release and its rollout ID, so every release starts
on other devices.

With --encrypt-to, the image and its deltas are encrypted: a new content
key per release, wrapped with HPKE (ML-KEM-768 + X25519 by default) for
each public key file given ("release keygen --recipient" makes them).
A fleet that wraps per device puts its keys in --envelope targets instead
(one per group, DIR/keys/NAME.json beside the image, each recipient about
1.7 KB): the targets entry holds at most 38 hybrid recipients. TUF
clients still verify the download; only devices holding a matching private
key can read the image. The content key is kept in DIR.content-keys (mode
0600, beside the repository, never served): the next release's deltas
need it. Keep it as safe as the images.

With --key, the release is published at once: the keys must meet the
targets threshold, plus snapshot and timestamp. With --stage nothing is
published; the release is kept in DIR.staged for a k-of-n ceremony
(release export, sign, merge). Earlier staged changes are published or
kept together with this one.`)
	repoDir := fs.String("repo", "", "repository directory")
	passEnv := fs.String("passphrase-env", "", "environment variable holding the passphrase of encrypted PEM keys")
	var hwids, keys, formats, encryptTo listFlag
	var advisories, envelopes repeatFlag
	fs.Var(&hwids, "hardware-id", "hardware ID(s) the image is built for (comma-separated or repeated)")
	version := fs.String("version", "", "semantic version of the image, e.g. 2.4.1")
	secVersion := fs.Uint64("security-version", 0, "security version (required): must never drop across releases of a hardware ID")
	newHW := fs.Bool("new-hardware-id", false, "the hardware ID is new to the repository: start a new product line")
	expiry := expiryFlags(fs, manifest.RoleTargets)
	severity := fs.String("severity", "", "feature, bugfix, security or critical")
	fs.Var(&advisories, "advisory", "advisory fixed by the release, e.g. CVE-2026-0001 (repeatable)")
	notes := fs.String("notes", "", "release notes")
	deltas := fs.Int("deltas", 2, "make deltas from this many newest earlier releases (0: none)")
	fs.Var(&formats, "delta-formats", "delta formats: bsdiff40, otaseal-zstd (default both)")
	fs.Var(&keys, "key", "signing key: "+keyHelp+" (repeatable)")
	stage := fs.Bool("stage", false, "stage for an offline ceremony instead of publishing")
	fs.Var(&encryptTo, "encrypt-to", "public key file of a recipient device group or device (repeatable): encrypt the release")
	fs.Var(&envelopes, "envelope", "NAME=PATH: encrypt for the public key file PATH, or every *.pub in directory PATH, in the key envelope target NAME (repeatable)")
	index := fs.Bool("release-index", false, "also write the hardware IDs' release indexes (HWID/releases.json), which let devices search a hash-binned catalogue; kept up to date by every later add once they exist")
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
	if err := requireFlags(fs, "hardware-id", "version", "security-version"); err != nil {
		return err
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
	recipients, err := readRecipients(encryptTo)
	if err != nil {
		return err
	}
	groups, err := readEnvelopes(envelopes)
	if err != nil {
		return err
	}

	opts := sign.RepositoryOptions{}
	applyExpiry(&opts, expiry)
	s, signers, err := openSigningOpts(ctx, *repoDir, *passEnv, keys, opts)
	if err != nil {
		return err
	}
	defer s.close()
	if err := checkAdd(e, s, keys, signers); err != nil {
		return err
	}
	// A re-run of the same add is a no-op, --new-hardware-id or not.
	target := fmt.Sprintf("%s/%s/firmware.bin", hwids[0], v)
	if done, err := alreadyAdded(e, s, target, image, fw); done || err != nil {
		return err
	}
	if err := checkRelease(s, fw, *newHW); err != nil {
		return err
	}

	if len(recipients) > 0 || len(groups) > 0 {
		err = addEncrypted(ctx, e, s, target, image, fw, recipients, groups)
	} else {
		var f *os.File
		if f, err = os.Open(image); err == nil {
			var info os.FileInfo
			if info, err = f.Stat(); err == nil {
				p := startProgress(e, "hashing "+filepath.Base(image), info.Size())
				err = s.repo.AddFirmware(ctx, target, p.reader(f), fw)
				p.end()
			}
			f.Close()
		}
	}
	if err != nil {
		return err
	}
	// Success is reported once it is true: after the publish (or save).
	report := &reportLines{}
	report.add("added %s (security version %d)", target, fw.SecurityVersion)
	if fw.Rollout != nil {
		report.add("rollout from %s: %s", fw.Rollout.Start.Format(time.RFC3339), formatSchedule(fw.Rollout))
	}
	if *deltas > 0 {
		if err := addDeltas(ctx, e, s, target, fw, image, *deltas, fmts, report, len(recipients) > 0 || len(groups) > 0); err != nil {
			return err
		}
	}
	if err := updateIndexes(ctx, e, s, hwids, *index); err != nil {
		return err
	}
	// What was added, then where it went; all of it only once true.
	var finished bytes.Buffer
	quiet := *e
	quiet.stdout = &finished
	if err := s.finish(ctx, &quiet, *stage, signers); err != nil {
		return err
	}
	report.print(e)
	e.stdout.Write(finished.Bytes())
	if rule != nil {
		if err := saveHealthRule(s.dir, target, *rule); err != nil {
			return fmt.Errorf("saving the health rule: %w", err)
		}
		e.printf("health rule of %s: %s\n", target, rule)
	}
	warnExpiries(e, s, nil)
	return nil
}

// checkSecurityVersion refuses a release whose security version is below
// that of an earlier version for one of its hardware IDs: devices would
// refuse it anyway once they installed the later one. The error names the
// newest such release, the one the operator is most likely following.
func checkSecurityVersion(repo *sign.Repository, fw manifest.Firmware) error {
	for _, hw := range fw.HardwareIDs {
		rels, err := releasesFor(repo, hw)
		if err != nil {
			return err
		}
		var newest *manifest.Firmware
		for _, r := range rels {
			if r.Firmware.Version.Compare(fw.Version) < 0 && r.Firmware.SecurityVersion > fw.SecurityVersion &&
				(newest == nil || r.Firmware.Version.Compare(newest.Version) > 0) {
				newest = r.Firmware
			}
		}
		if newest != nil {
			return fmt.Errorf("security version %d of %s is below %d of the earlier release %s for %s",
				fw.SecurityVersion, fw.Version, newest.SecurityVersion, newest.Version, hw)
		}
	}
	return nil
}

// previousReleases returns up to n releases older than fw for any of its
// hardware IDs, newest first.
func previousReleases(repo *sign.Repository, fw manifest.Firmware, n int) ([]manifest.Release, error) {
	var out []manifest.Release
	for _, hw := range fw.HardwareIDs {
		rels, err := releasesFor(repo, hw)
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
func addDeltas(ctx context.Context, e *env, s *session, target string, fw manifest.Firmware, imagePath string, n int, fmts []deltaFormat, report *reportLines, encrypted bool) error {
	prev, err := previousReleases(s.repo, fw, n)
	if err != nil {
		return err
	}
	if len(prev) == 0 {
		report.add("no earlier release to make a delta from")
		return nil
	}
	newImage, err := os.ReadFile(imagePath)
	if err != nil {
		return err
	}
	toSum := sha256.Sum256(newImage)
	to := manifest.DeltaEnd{Path: target, Length: int64(len(newImage)), SHA256: toSum[:]}
	var toKey *encrypt.ContentKey
	if encrypted {
		if toKey, err = loadContentKey(s.dir, target); err != nil {
			return err
		}
	}
	for i, r := range prev {
		if (r.Firmware.Encryption != nil) && toKey == nil {
			fmt.Fprintf(e.stderr, "[%d/%d] no delta from the encrypted %s to the unencrypted %s\n", i+1, len(prev), r.Firmware.Version, fw.Version)
			continue
		}
		old, err := readPlaintext(ctx, s, r)
		if err != nil {
			return err
		}
		fromSum := sha256.Sum256(old)
		wantLen, wantSum := manifest.ImageOf(r.File, r.Firmware)
		if !bytes.Equal(fromSum[:], wantSum) || int64(len(old)) != wantLen {
			return fmt.Errorf("stored %s does not match its signed length and hash", r.Path)
		}
		var d *delta.Script
		err = withProgress(e, fmt.Sprintf("[%d/%d] diffing %s (%s) -> %s (%s)", i+1, len(prev), r.Firmware.Version, size(int64(len(old))), fw.Version, size(int64(len(newImage)))), func() (err error) {
			d, err = delta.Diff(old, newImage)
			return err
		})
		if err != nil {
			return fmt.Errorf("diff %s: %w", r.Path, err)
		}
		for _, f := range fmts {
			start := time.Now()
			var patch bytes.Buffer
			if err := withProgress(e, fmt.Sprintf("[%d/%d] encoding %s", i+1, len(prev), f.manifest), func() error { return d.Encode(&patch, f.codec) }); err != nil {
				return fmt.Errorf("encode %s: %w", f.manifest, err)
			}
			path := fmt.Sprintf("%s/deltas/%s-%s.%s", fw.HardwareIDs[0], r.Firmware.Version, fw.Version, f.ext)
			if patch.Len() >= len(newImage) {
				fmt.Fprintf(e.stderr, "      %-12s %s: skipped, %s is not smaller than the image\n", f.manifest, path, size(int64(patch.Len())))
				continue
			}
			if toKey != nil {
				var fromKey *encrypt.ContentKey
				if r.Firmware.Encryption != nil {
					if fromKey, err = loadContentKey(s.dir, r.Path); err != nil {
						return err
					}
				}
				err = s.repo.AddEncryptedDelta(ctx, path, r.Path, to.Path, bytes.NewReader(patch.Bytes()), sign.DeltaKeys{From: fromKey, To: toKey})
			} else {
				err = s.repo.AddDelta(ctx, path, r.Path, to.Path, bytes.NewReader(patch.Bytes()))
			}
			if err != nil {
				return err
			}
			report.add("added %s (%s, %s, %.1f%% of the image, saves %s, made in %s)", path, f.manifest, size(int64(patch.Len())),
				100*float64(patch.Len())/float64(len(newImage)), size(int64(len(newImage)-patch.Len())), time.Since(start).Round(time.Millisecond))
		}
	}
	return nil
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
