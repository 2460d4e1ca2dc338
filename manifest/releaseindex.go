package manifest

import (
	"encoding/json"
	"fmt"
)

// A release index is a target listing one hardware ID's firmware and
// delta targets (their length, hashes and otaseal objects), so that a
// device can search a hash-binned catalogue, where a hardware ID's
// releases are spread over bins by path hash, without fetching every bin.
// It lives at ReleaseIndexPath(hardwareID), is signed through its bin like
// any target, and carries no otaseal object itself (readers that do not
// know it skip it). package sign writes it (Repository.UpdateReleaseIndexes);
// package verify's Select reads it and trusts none of its entries until
// the role the delegations assign to the entry's path signs the same
// entry.
//
// Wire form (JSON, one object):
//
//	{"hardware_id": "acme-gw-r2",
//	 "targets": {"acme-gw-r2/2.4.1/firmware.bin": {"length": ..., "hashes": {...}, "custom": {...}}, ...}}

// ReleaseIndexName is the file name of a release index, below the
// hardware ID.
const ReleaseIndexName = "releases.json"

// Limits of a release index.
const (
	// MaxReleaseIndexSize bounds a release index document.
	MaxReleaseIndexSize = 16 << 20
	// MaxReleaseIndexEntries bounds its targets.
	MaxReleaseIndexEntries = 100_000
)

// ReleaseIndexPath is the target path of hardwareID's release index.
func ReleaseIndexPath(hardwareID string) string { return hardwareID + "/" + ReleaseIndexName }

// ReleaseIndex is a parsed release index.
type ReleaseIndex struct {
	HardwareID string                 `json:"hardware_id"`
	Targets    map[string]*TargetFile `json:"targets"`
}

// ParseReleaseIndex parses a release index for hardwareID. It refuses
// another hardware ID's index, unknown or duplicate members, more than
// MaxReleaseIndexEntries targets, and a target entry without a length or
// a sha256 hash.
func ParseReleaseIndex(data []byte, hardwareID string) (*ReleaseIndex, error) {
	if len(data) > MaxReleaseIndexSize {
		return nil, fmt.Errorf("%w: release index of %d bytes (limit %d)", ErrTooLarge, len(data), MaxReleaseIndexSize)
	}
	top, err := readObject(data, "release index", 1)
	if err != nil {
		return nil, err
	}
	if err := onlyFields(top, "", "hardware_id", "targets"); err != nil {
		return nil, err
	}
	if err := requireFields(top, "", "hardware_id", "targets"); err != nil {
		return nil, err
	}
	id, err := readString("hardware_id", top["hardware_id"])
	if err != nil {
		return nil, err
	}
	if id != hardwareID {
		return nil, fmt.Errorf("%w: release index is for hardware ID %q, not %q", ErrRepository, clip(id), clip(hardwareID))
	}
	entries, err := readObject(top["targets"], "targets", 2)
	if err != nil {
		return nil, err
	}
	if len(entries) > MaxReleaseIndexEntries {
		return nil, fieldError("targets", RuleTooManyItems, "", fmt.Sprintf("%d (limit %d)", len(entries), MaxReleaseIndexEntries))
	}
	ix := &ReleaseIndex{HardwareID: id, Targets: make(map[string]*TargetFile, len(entries))}
	for p, raw := range entries {
		tf := &TargetFile{}
		if err := json.Unmarshal(raw, tf); err != nil {
			return nil, fmt.Errorf("%w: release index entry %q: %v", ErrMalformed, clip(p), err)
		}
		if tf.Length < 0 || len(tf.Hashes["sha256"]) != 32 {
			return nil, fmt.Errorf("%w: release index entry %q: want a length and a sha256", ErrMalformed, clip(p))
		}
		tf.Path = p
		ix.Targets[p] = tf
	}
	return ix, nil
}
