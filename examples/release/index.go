package main

import (
	"context"

	"github.com/otaseal/otaseal/manifest"
)

// updateIndexes rewrites the release index of each of hwids that has one
// already, or of all of them when create is set, so that devices
// searching a hash-binned catalogue find the new release
// (sign.Repository.UpdateReleaseIndexes).
func updateIndexes(ctx context.Context, e *env, s *session, hwids []string, create bool) error {
	var ids []string
	for _, id := range hwids {
		if create || s.repo.HasReleaseIndex(id) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	if err := s.repo.UpdateReleaseIndexes(ctx, ids); err != nil {
		return err
	}
	for _, id := range ids {
		e.printf("release index %s updated\n", manifest.ReleaseIndexPath(id))
	}
	return nil
}
