package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"time"

	"github.com/otaseal/otaseal/manifest"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"
)

// fetchMeta downloads one metadata document with the role's size limit and
// checks its shape before go-tuf sees it.
func (c *Client) fetchMeta(ctx context.Context, role, name string, signedLength int64) ([]byte, error) {
	max := c.cfg.Limits.For(role)
	if signedLength > 0 {
		if signedLength > max {
			return nil, &RoleError{Role: role, Err: fmt.Errorf("%w: snapshot says %d bytes, device limit %d", manifest.ErrTooLarge, signedLength, max)}
		}
		max = signedLength
	}
	rc, err := c.fetchFrom(ctx, metadataBase, name, max)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc) // bounded by the fetcher's max
	if err != nil {
		return nil, &RoleError{Role: role, Err: err}
	}
	return data, nil
}

// parseAs checks size and shape of a document of role type T.
func parseAs[T metadata.Roles](c *Client, role string, data []byte) error {
	_, err := manifest.ParseUnverified[T](role, data, c.cfg.Limits)
	return err
}

// Refresh brings the trusted metadata up to date: the root chain, then
// timestamp, snapshot and top-level targets, each verified against the
// threshold of its delegator, its expiry (by the Clock) and the version the
// device trusts, and each stored before the next step. A refresh that finds
// nothing new downloads only the timestamp (after the probe for the next
// root). It may be called any number of times.
//
// With Config.Mirrors it refreshes from the preferred mirror and, if that
// fails for any reason (its metadata refused as well as unreachable), from
// each other mirror in turn before giving up with the first mirror's
// error. A mirror serving stale,
// rolled-back or forged metadata is refused as ever; it cannot keep a
// device from the update a good mirror serves. Nothing a refused mirror
// sent is stored.
func (c *Client) Refresh(ctx context.Context) error {
	err := c.refresh(ctx)
	if err == nil || len(c.mirrors.all) == 1 {
		return err
	}
	first := err
	order := c.mirrors.order()
	for _, i := range order[1:] {
		if ctx.Err() != nil {
			return first
		}
		c.log.Warn("refresh failed, trying the next mirror", "failed", c.mirrors.all[order[0]].MetadataURL, "next", c.mirrors.all[i].MetadataURL, "err", err)
		c.mirrors.pref.Store(int32(i))
		if err = c.refresh(ctx); err == nil {
			return nil
		}
	}
	c.mirrors.pref.Store(int32(order[0]))
	return first
}

// refresh is one Refresh from the preferred mirror.
func (c *Client) refresh(ctx context.Context) error {
	c.trusted = nil
	c.signedBytes = map[*metadata.Metadata[metadata.TargetsType]][]byte{}
	tm, err := c.loadRoot(ctx)
	if err != nil {
		return err
	}
	tm.RefTime = c.cfg.Clock.Now()
	startRoot := tm.Root

	// 5.3: the root chain, one version at a time.
	max := c.cfg.MaxRootRotations
	if max <= 0 {
		max = DefaultMaxRootRotations
	}
	for i := 0; i < max; i++ {
		next := tm.Root.Signed.Version + 1
		data, err := c.fetchMeta(ctx, manifest.RoleRoot, fmt.Sprintf("%d.root.json", next), 0)
		if errors.Is(err, ErrNotFound) {
			break
		}
		if err != nil {
			return err
		}
		if err := parseAs[manifest.Root](c, manifest.RoleRoot, data); err != nil {
			return &RoleError{Role: manifest.RoleRoot, Err: err}
		}
		trustedRoot := tm.Root
		if _, err := tm.UpdateRoot(data); err != nil {
			return refused[metadata.RootType](manifest.RoleRoot, err, trustedRoot, data)
		}
		if err := c.cfg.Store.StoreMetadata(ctx, manifest.RoleRoot, data); err != nil {
			return err
		}
		c.log.Debug("root rotated", "version", next)
	}
	// 5.3.10: the final root must not be expired (checked by go-tuf when
	// the timestamp loads). 5.3.11: after a rotation of the timestamp or
	// snapshot keys, forget the documents those keys vouched for, so that
	// versions inflated by a stolen key (fast-forward) stop blocking
	// updates.
	if rotated(startRoot, tm.Root, manifest.RoleTimestamp) || rotated(startRoot, tm.Root, manifest.RoleSnapshot) {
		if err := c.cfg.Store.StoreMetadata(ctx, manifest.RoleTimestamp, nil); err != nil {
			return err
		}
	}
	if rotated(startRoot, tm.Root, manifest.RoleSnapshot) {
		if err := c.cfg.Store.StoreMetadata(ctx, manifest.RoleSnapshot, nil); err != nil {
			return err
		}
	}
	if tm.Root.Signed.IsExpired(tm.RefTime) {
		return &RoleError{Role: manifest.RoleRoot, Err: fmt.Errorf("%w: final root expired %s", manifest.ErrExpired, tm.Root.Signed.Expires.Format(time.RFC3339))}
	}

	if err := c.updateTimestamp(ctx, tm); err != nil {
		return err
	}
	if err := c.updateSnapshot(ctx, tm); err != nil {
		return err
	}
	if err := c.updateTargets(ctx, tm); err != nil {
		return err
	}
	c.trusted = tm
	return nil
}

// rotated reports whether role's keys or threshold differ between roots.
func rotated(a, b *metadata.Metadata[metadata.RootType], role string) bool {
	ra, rb := a.Signed.Roles[role], b.Signed.Roles[role]
	if ra.Threshold != rb.Threshold || len(ra.KeyIDs) != len(rb.KeyIDs) {
		return true
	}
	for _, id := range ra.KeyIDs {
		if !slices.Contains(rb.KeyIDs, id) {
			return true
		}
	}
	return false
}

func (c *Client) updateTimestamp(ctx context.Context, tm *trustedmetadata.TrustedMetadata) error {
	role := manifest.RoleTimestamp
	// The stored timestamp may have expired: it still guards the versions
	// (go-tuf keeps it loaded and reports the expiry, which we ignore here).
	if old, err := c.cfg.Store.LoadMetadata(ctx, role); err != nil {
		return err
	} else if old != nil && parseAs[manifest.Timestamp](c, role, old) == nil {
		_, _ = tm.UpdateTimestamp(old)
	}
	data, err := c.fetchMeta(ctx, role, "timestamp.json", 0)
	if err != nil {
		return err
	}
	if err := parseAs[manifest.Timestamp](c, role, data); err != nil {
		return &RoleError{Role: role, Err: err}
	}
	_, err = tm.UpdateTimestamp(data)
	var equal *metadata.ErrEqualVersionNumber
	switch {
	case errors.As(err, &equal):
		// Nothing new; the stored one stays, and must still be fresh.
		if tm.Timestamp.Signed.IsExpired(tm.RefTime) {
			return &RoleError{Role: role, Err: fmt.Errorf("%w: timestamp expired %s", manifest.ErrExpired, tm.Timestamp.Signed.Expires.Format(time.RFC3339))}
		}
		return nil
	case err != nil:
		return refused[metadata.TimestampType](role, err, tm.Root, data)
	}
	if err := c.cfg.Store.StoreMetadata(ctx, role, data); err != nil {
		return err
	}
	// Only now, with the signature checked, does the signing time count.
	if obs, ok := c.cfg.Clock.(TimeObserver); ok {
		if at, present, err := manifest.SignedAt(&tm.Timestamp.Signed); err != nil {
			return &RoleError{Role: role, Err: err}
		} else if present {
			if err := obs.Observe(ctx, at); err != nil {
				return err
			}
			tm.RefTime = c.cfg.Clock.Now()
		}
	}
	return nil
}

func (c *Client) updateSnapshot(ctx context.Context, tm *trustedmetadata.TrustedMetadata) error {
	role := manifest.RoleSnapshot
	meta := tm.Timestamp.Signed.Meta["snapshot.json"]
	if old, err := c.cfg.Store.LoadMetadata(ctx, role); err != nil {
		return err
	} else if old != nil && parseAs[manifest.Snapshot](c, role, old) == nil {
		// Trusted copy: good as the final snapshot when it is the version
		// the timestamp names and not expired; otherwise it still guards
		// against rollback of the new one.
		if _, err := tm.UpdateSnapshot(old, true); err == nil {
			return nil
		}
	}
	name := "snapshot.json"
	if tm.Root.Signed.ConsistentSnapshot {
		name = fmt.Sprintf("%d.snapshot.json", meta.Version)
	}
	data, err := c.fetchMeta(ctx, role, name, meta.Length)
	if err != nil {
		return err
	}
	if err := parseAs[manifest.Snapshot](c, role, data); err != nil {
		return &RoleError{Role: role, Err: err}
	}
	if _, err := tm.UpdateSnapshot(data, false); err != nil {
		return refused[metadata.SnapshotType](role, err, tm.Root, data)
	}
	return c.cfg.Store.StoreMetadata(ctx, role, data)
}

func (c *Client) updateTargets(ctx context.Context, tm *trustedmetadata.TrustedMetadata) error {
	_, err := c.loadDelegated(ctx, tm, manifest.RoleTargets, manifest.RoleRoot)
	return err
}

// loadDelegated makes role (delegated by delegator) trusted, from the store
// when the stored copy is the version the snapshot names, else from the
// repository.
func (c *Client) loadDelegated(ctx context.Context, tm *trustedmetadata.TrustedMetadata, role, delegator string) (*metadata.Metadata[metadata.TargetsType], error) {
	if old, err := c.cfg.Store.LoadMetadata(ctx, role); err != nil {
		return nil, err
	} else if old != nil {
		if p, err := acceptTargets(tm, role, delegator, old, c.cfg.Limits); err == nil {
			c.signedBytes[p.Metadata] = p.Canonical
			return p.Metadata, nil
		}
	}
	meta := tm.Snapshot.Signed.Meta[role+".json"]
	if meta == nil {
		return nil, &RoleError{Role: role, Err: fmt.Errorf("%w: snapshot does not list %s.json", manifest.ErrRepository, role)}
	}
	name := url.PathEscape(role) + ".json"
	if tm.Root.Signed.ConsistentSnapshot {
		name = fmt.Sprintf("%d.%s", meta.Version, name)
	}
	data, err := c.fetchMeta(ctx, role, name, meta.Length)
	if err != nil {
		return nil, err
	}
	// Targets documents take the one-pass path (fastverify.go): a
	// catalogue of 100,000 images must not cost a device seconds and a
	// gigabyte of garbage.
	p, err := acceptTargets(tm, role, delegator, data, c.cfg.Limits)
	if err != nil {
		return nil, &RoleError{Role: role, Err: err}
	}
	md := p.Metadata
	c.signedBytes[md] = p.Canonical
	if err := c.cfg.Store.StoreMetadata(ctx, role, data); err != nil {
		return nil, err
	}
	return md, nil
}
