package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"

	"github.com/otaseal/otaseal/manifest"
)

// releasesFromIndex finds hardwareID's releases through its release index
// (manifest.ReleaseIndex), for a hash-binned catalogue that path
// delegations cannot search: the index target is resolved through its
// bin, downloaded against its signed length and hashes, and parsed. Its
// entries are candidates only; Select resolves the one it chooses through
// that target's own bin (checkIndexed). No index is no releases.
func (c *Client) releasesFromIndex(ctx context.Context, hardwareID string) ([]found, error) {
	p := manifest.ReleaseIndexPath(hardwareID)
	tf, _, err := c.FindTarget(ctx, p)
	if errors.Is(err, ErrTargetNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if tf.Length > manifest.MaxReleaseIndexSize {
		return nil, &TargetError{Path: p, Err: fmt.Errorf("%w: release index of %d bytes (limit %d)", manifest.ErrTooLarge, tf.Length, manifest.MaxReleaseIndexSize)}
	}
	var buf bytes.Buffer
	if err := c.Download(ctx, p, tf, &buf); err != nil {
		return nil, err
	}
	ix, err := manifest.ParseReleaseIndex(buf.Bytes(), hardwareID)
	if err != nil {
		return nil, &TargetError{Path: p, Err: err}
	}
	doc := &manifest.Targets{Targets: ix.Targets}
	rels, err := manifest.FirmwareFor(doc, hardwareID)
	if err != nil {
		return nil, &TargetError{Path: p, Err: err}
	}
	out := make([]found, len(rels))
	for i, r := range rels {
		out[i] = found{rel: r, doc: doc, indexed: true}
	}
	return out, nil
}

// checkIndexed resolves an entry taken from a release index through the
// role the delegations assign to its path and requires that role to sign
// the very same entry (length, hashes and otaseal object): an index can
// leave releases out, never add or change one. It returns the role.
func (c *Client) checkIndexed(ctx context.Context, path string, indexed *manifest.TargetFile) (string, error) {
	tf, role, err := c.FindTarget(ctx, path)
	if err != nil {
		return "", err
	}
	want, errWant := manifest.ReadEntry(indexed)
	got, errGot := manifest.ReadEntry(tf)
	if tf.Length != indexed.Length || !tf.Hashes.Equal(indexed.Hashes) || errWant != nil || errGot != nil || !reflect.DeepEqual(want, got) {
		return "", &RoleError{Role: role, Err: fmt.Errorf("%w: the release index lists %s other than %s signs it", manifest.ErrRepository, path, role)}
	}
	return role, nil
}
