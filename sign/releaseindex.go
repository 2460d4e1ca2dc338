package sign

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/otaseal/otaseal/manifest"
)

// A release index makes a hash-binned catalogue searchable by hardware
// ID (see manifest.ReleaseIndex): hash bins (TAP 15, AddHashBins) keep a
// device's downloads small in a repository of many thousand images, but
// spread one hardware ID's releases over the bins by path hash, so a
// device could not list them without fetching every bin. package verify's
// Select reads the index when path delegations find no release, then
// resolves what it chose through the chosen targets' own bins. A key that
// signs the index's bin can therefore hide releases from devices, as it
// could hide its own bin's targets, but never offer one that the bins do
// not sign.

// UpdateReleaseIndexes stages a new release index target for each of
// hardwareIDs whose releases changed since its index was made (nil means
// every hardware ID that has a release). Call it after the releases of a
// publish are added or removed; an index that would not change is left
// alone, so its bin is not re-signed. It reads every targets role once,
// however many hardware IDs are given.
func (r *Repository) UpdateReleaseIndexes(ctx context.Context, hardwareIDs []string) error {
	indexes, err := r.buildIndexes(hardwareIDs)
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(indexes))
	for id := range indexes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		data, err := json.Marshal(indexes[id])
		if err != nil {
			return fmt.Errorf("sign: release index of %s: %w", id, err)
		}
		p := manifest.ReleaseIndexPath(id)
		if old, _, ok := r.findTarget(p); ok {
			sum := sha256.Sum256(data)
			if old.Length == int64(len(data)) && bytes.Equal(old.Hashes["sha256"], sum[:]) {
				continue
			}
			if err := r.RemoveTarget(p); err != nil {
				return err
			}
		}
		if err := r.addTarget(ctx, p, bytes.NewReader(data), func(*spooled) error { return nil }); err != nil {
			return fmt.Errorf("sign: release index of %s: %w", id, err)
		}
	}
	return nil
}

// buildIndexes collects the index of every wanted hardware ID (all when
// wanted is nil) from all targets roles.
func (r *Repository) buildIndexes(wanted []string) (map[string]*manifest.ReleaseIndex, error) {
	want := map[string]bool{}
	for _, id := range wanted {
		if err := CheckName(manifest.ReleaseIndexPath(id)); err != nil || strings.Contains(id, "/") {
			return nil, fmt.Errorf("%w: hardware ID %q", ErrBadName, clipText(id))
		}
		want[id] = true
	}
	out := map[string]*manifest.ReleaseIndex{}
	index := func(id string) *manifest.ReleaseIndex {
		if ix, ok := out[id]; ok {
			return ix
		}
		ix := &manifest.ReleaseIndex{HardwareID: id, Targets: map[string]*manifest.TargetFile{}}
		out[id] = ix
		return ix
	}
	type delta struct {
		path string
		tf   *manifest.TargetFile
		to   string
	}
	var deltas []delta
	images := map[string][]string{} // firmware path -> hardware IDs
	for _, md := range r.targets {
		for p, tf := range md.Signed.Targets {
			e, err := manifest.ReadEntry(tf)
			if errors.Is(err, manifest.ErrNoOtaseal) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("sign: target %q: %w", clipText(p), err)
			}
			switch e.Kind {
			case manifest.KindFirmware:
				for _, id := range e.Firmware.HardwareIDs {
					if wanted == nil || want[id] {
						index(id).Targets[p] = tf
						images[p] = append(images[p], id)
					}
				}
			case manifest.KindDelta:
				deltas = append(deltas, delta{p, tf, e.Delta.To.Path})
			}
		}
	}
	for _, d := range deltas {
		for _, id := range images[d.to] {
			index(id).Targets[d.path] = d.tf
		}
	}
	// A wanted hardware ID whose last release was removed gets an empty
	// index, not a stale one.
	for id := range want {
		index(id)
	}
	return out, nil
}

// HasReleaseIndex reports whether the repository lists a release index
// for hardwareID, published or staged.
func (r *Repository) HasReleaseIndex(hardwareID string) bool {
	_, _, ok := r.findTarget(manifest.ReleaseIndexPath(hardwareID))
	return ok
}
