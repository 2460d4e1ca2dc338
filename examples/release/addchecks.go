package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

// requireFlags is a usage error naming every flag of names not given:
// a flag the usage line calls required must not silently default.
func requireFlags(fs *flag.FlagSet, names ...string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var missing []string
	for _, n := range names {
		if !set[n] {
			missing = append(missing, "--"+n)
		}
	}
	switch len(missing) {
	case 0:
		return nil
	case 1:
		return usageErr("%s is required", missing[0])
	}
	return usageErr("%s are required", strings.Join(missing, ", "))
}

// checkAdd runs the checks of a new release that need the repository,
// before any image is read: a root that has expired and keys that count
// for nothing. checkRelease follows once the release is known to be new.
func checkAdd(e *env, s *session, refs []string, signers []*sign.Signer) error {
	if err := refuseExpiredRoot(e, s); err != nil {
		return err
	}
	if t, ok := s.repo.Targets(manifest.RoleTargets); ok && !t.Signed.Expires.After(e.now()) {
		// Not refused: the release signs a new targets version, which
		// is what renews an expired one.
		fmt.Fprintf(e.stderr, "note: targets version %d expired %s; this release's targets version renews it\n", t.Signed.Version, formatTime(t.Signed.Expires))
	}
	return checkSigners(s, refs, signers)
}

// checkRelease refuses an unknown hardware ID (without newHW) and a
// security version that drops.
func checkRelease(s *session, fw manifest.Firmware, newHW bool) error {
	if err := checkHardwareIDs(s, fw.HardwareIDs, newHW); err != nil {
		return err
	}
	return checkSecurityVersion(s.repo, fw)
}

// knownHardwareIDs lists, sorted, the hardware IDs that any firmware of
// the repository (published or staged, in any targets role) names.
func knownHardwareIDs(s *session) []string {
	seen := map[string]bool{}
	for _, tf := range allTargets(s) {
		if fw, err := manifest.FirmwareOf(tf); err == nil {
			for _, hw := range fw.HardwareIDs {
				seen[hw] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for hw := range seen {
		out = append(out, hw)
	}
	sort.Strings(out)
	return out
}

// checkHardwareIDs refuses a hardware ID the repository does not know
// unless newHW says a new product line is meant, and refuses newHW when
// every ID is known (a flag passed out of habit guards nothing).
func checkHardwareIDs(s *session, ids []string, newHW bool) error {
	known := knownHardwareIDs(s)
	var unknown []string
	for _, id := range ids {
		if !slices.Contains(known, id) {
			unknown = append(unknown, id)
		}
	}
	switch {
	case len(unknown) > 0 && !newHW:
		msg := fmt.Sprintf("hardware ID %q is not in the repository", unknown[0])
		if near := nearest(unknown[0], known); near != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", near)
		}
		if len(known) > 0 {
			msg += "; known: " + strings.Join(known, ", ")
		} else {
			msg += "; the repository has no releases yet"
		}
		return usageErr("%s\n  a release for a new hardware ID starts a new product line and cannot be taken back: pass --new-hardware-id if that is meant", msg)
	case len(unknown) == 0 && newHW:
		return usageErr("--new-hardware-id: %s already in the repository", strings.Join(ids, ", "))
	}
	return nil
}

// nearest returns the known ID within edit distance 2 of id, or "".
func nearest(id string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(id, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the Damerau-Levenshtein distance (adjacent swaps count
// once: "r2" typed "2r").
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// alreadyAdded reports (true) when target already holds this very image
// with these very facts: adding it again changes nothing, so nothing is
// re-signed and no delta recomputed. Another image, or the same image
// with other facts, is refused: a published version never changes.
func alreadyAdded(e *env, s *session, target, imagePath string, fw manifest.Firmware) (bool, error) {
	tf, ok := allTargets(s)[target]
	if !ok {
		return false, nil
	}
	f, err := os.Open(imagePath)
	if err != nil {
		return false, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return false, err
	}
	h := sha256.New()
	p := startProgress(e, "hashing "+filepath.Base(imagePath), info.Size())
	n, err := io.Copy(h, p.reader(f))
	p.end()
	if err != nil {
		return false, err
	}
	if n != tf.Length || !bytes.Equal(h.Sum(nil), tf.Hashes["sha256"]) {
		return false, fmt.Errorf("%s already holds another image (%s, sha256 %x): a published version never changes; give the new image a new --version", target, size(tf.Length), []byte(tf.Hashes["sha256"]))
	}
	old, err := manifest.FirmwareOf(tf)
	if err != nil {
		return false, err
	}
	want, have := factsJSON(fw), factsJSON(*old)
	if want != have {
		return false, fmt.Errorf("%s already holds this image with other release facts:\n  published: %s\n  given:     %s\n  a published version never changes; give a new --version (or withdraw this one)", target, have, want)
	}
	state := "published"
	if slices.Contains(s.repo.StagedChanges().Targets, target) {
		state = "staged"
	}
	e.printf("already %s: %s (same image, same facts); nothing changed\n", state, target)
	return true, nil
}

// factsJSON is the otaseal object fw signs as, for comparing and showing.
func factsJSON(fw manifest.Firmware) string {
	tf := &manifest.TargetFile{}
	if err := manifest.SetFirmware(tf, fw); err != nil {
		return err.Error()
	}
	b, err := json.Marshal(tf.Custom)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// reportLines holds what a command did, printed once it is true.
type reportLines struct{ lines []string }

func (r *reportLines) add(format string, a ...any) {
	r.lines = append(r.lines, fmt.Sprintf(format, a...))
}

func (r *reportLines) print(e *env) {
	for _, l := range r.lines {
		e.printf("%s\n", l)
	}
}
