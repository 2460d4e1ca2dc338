package verify

import (
	"context"
	"errors"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/rollback"
)

// rootLost reports whether loading the stored root failed because the
// root is gone or damaged, rather than because the store could not be
// read: only then may the shipped root take its place.
func rootLost(err error) bool {
	var re *RoleError
	return errors.Is(err, ErrNoTrustedRoot) || errors.Is(err, rollback.ErrCorrupt) || errors.As(err, &re)
}

// installShippedRoot puts Config.ShippedRoot in the store in place of a
// root that is missing or lost (lost is why). Refresh then accepts only
// roots each signed by the threshold of the one before, as on a first
// start. The cost, and why it is logged as a security event: until the
// chain is walked again the device trusts the shipped root's keys, so
// whoever holds a threshold of them (a key leaked and rotated away since
// the factory) and controls the network can fork the chain there. An
// attacker who damaged the store on purpose gains nothing else: one who
// can write the store could have written that root too.
func (c *Client) installShippedRoot(ctx context.Context, lost error) error {
	if _, err := checkRoot(c.cfg.ShippedRoot, c.cfg.Limits); err != nil {
		return err
	}
	if err := c.cfg.Store.StoreMetadata(ctx, manifest.RoleRoot, c.cfg.ShippedRoot); err != nil {
		return err
	}
	if !errors.Is(lost, ErrNoTrustedRoot) {
		c.log.Warn("state recovered", "record", manifest.RoleRoot, "from", "shipped root", "lost", lost.Error())
		return nil
	}
	// A device that never trusted a root has nothing to recover; one that
	// holds a timestamp lost its root.
	if ts, err := c.cfg.Store.LoadMetadata(ctx, manifest.RoleTimestamp); err == nil && ts != nil {
		c.log.Warn("state recovered", "record", manifest.RoleRoot, "from", "shipped root", "lost", "root missing")
		return nil
	}
	c.log.Info("trusted root installed", "from", "shipped root")
	return nil
}
