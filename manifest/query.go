package manifest

import (
	"bytes"
	"cmp"
	"errors"
	"slices"
)

// Release is a firmware target with its facts.
type Release struct {
	Path     string
	File     *TargetFile
	Firmware *Firmware
}

// Patch is a delta target with its facts.
type Patch struct {
	Path  string
	File  *TargetFile
	Delta *Delta
}

// FirmwareFor returns the firmware targets built for hardwareID, oldest
// version first (ties by path). Targets without an otaseal object are plain
// TUF targets and are skipped; a target whose otaseal object is malformed
// fails the query with a *EntryError naming it, because a signed document
// that says something we cannot read must not quietly lose a release.
func FirmwareFor(t *Targets, hardwareID string) ([]Release, error) {
	var out []Release
	for path, tf := range t.Targets {
		e, err := ReadEntry(tf)
		if errors.Is(err, ErrNoOtaseal) {
			continue
		}
		if err != nil {
			return nil, &EntryError{Path: path, Err: err}
		}
		if e.Kind == KindFirmware && e.Firmware.Supports(hardwareID) {
			out = append(out, Release{Path: path, File: tf, Firmware: e.Firmware})
		}
	}
	slices.SortFunc(out, func(a, b Release) int {
		if c := a.Firmware.Version.Compare(b.Firmware.Version); c != 0 {
			return c
		}
		return cmp.Compare(a.Path, b.Path)
	})
	return out, nil
}

// DeltasTo returns the delta targets that turn an image whose sha256 is
// fromSHA256 into the target at toPath, smallest patch first (ties by path).
// Only deltas whose "to" end agrees with the signed entry of toPath (length
// and sha256) are returned: a delta that leads anywhere else is useless,
// since its output would fail the final check. It returns nothing when
// toPath is not a target of t.
func DeltasTo(t *Targets, toPath string, fromSHA256 []byte) ([]Patch, error) {
	to := t.Targets[toPath]
	if to == nil {
		return nil, nil
	}
	// An encrypted release is known to patches by its plaintext.
	toFW, _ := FirmwareOf(to)
	toLen, toSum := ImageOf(to, toFW)
	var out []Patch
	for path, tf := range t.Targets {
		e, err := ReadEntry(tf)
		if errors.Is(err, ErrNoOtaseal) {
			continue
		}
		if err != nil {
			return nil, &EntryError{Path: path, Err: err}
		}
		if e.Kind != KindDelta {
			continue
		}
		d := e.Delta
		if d.To.Path != toPath || d.To.Length != toLen || !bytes.Equal(d.To.SHA256, toSum) {
			continue
		}
		if !bytes.Equal(d.From.SHA256, fromSHA256) {
			continue
		}
		out = append(out, Patch{Path: path, File: tf, Delta: d})
	}
	slices.SortFunc(out, func(a, b Patch) int {
		if c := cmp.Compare(a.File.Length, b.File.Length); c != 0 {
			return c
		}
		return cmp.Compare(a.Path, b.Path)
	})
	return out, nil
}
