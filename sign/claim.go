package sign

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/otaseal/otaseal/manifest"
)

// Publishing on a ConditionalStorage (a bucket) is a compare-and-swap
// that needs no lock: the commit point is the conditional creation of
// "metadata/V.timestamp.json", the claim for timestamp version V. Of two
// publishers (or two update servers renewing the timestamp) that start
// from version V-1 exactly one creates the claim; the other gets
// ErrConflict and nothing it wrote is named by any timestamp. Only then is
// the claim copied to timestamp.json, the name clients read, and a
// publisher that finds a claim newer than timestamp.json (its writer died
// between the two writes) finishes the copy. Versioned metadata files are
// created conditionally too, so a publisher never replaces a file that a
// published snapshot names; an uncommitted one is replaced only once it is
// older than the publish lease (RepositoryOptions.PublishLease).

// maxSkippedVersions bounds freeVersion's search.
const maxSkippedVersions = 1000

// freeVersion returns the first version from v on whose consistent-snapshot
// name holds no file in a ConditionalStorage: a publish that lost a race or
// died leaves versioned files no timestamp names, and the next publish
// steps over them instead of waiting for the lease. TUF clients need
// snapshot and targets versions to rise, not to be contiguous.
func (p *publisher) freeVersion(role string, v int64) (int64, error) {
	r := p.r
	cs, ok := r.store.(ConditionalStorage)
	if !ok || !r.root.Signed.ConsistentSnapshot {
		return v, nil
	}
	for i := 0; i < maxSkippedVersions; i++ {
		_, err := cs.ModTime(p.ctx, r.metaName(role, v+int64(i)))
		if errors.Is(err, ErrBlobNotFound) {
			return v + int64(i), nil
		}
		if err != nil {
			return 0, err
		}
	}
	return 0, fmt.Errorf("%w: versions %d to %d of %s are all taken", ErrConflict, v, v+maxSkippedVersions-1, role)
}

// claimName is the name of the claim for timestamp version v.
func claimName(v int64) string { return fmt.Sprintf("%s/%d.timestamp.json", MetadataDir, v) }

func (r *Repository) lease() time.Duration {
	return orDefault(r.opts.PublishLease, DefaultPublishLease)
}

// writeConditional is writeAll on a ConditionalStorage.
func (r *Repository) writeConditional(ctx context.Context, cs ConditionalStorage, writes []blob, next *publication) error {
	start := time.Now()
	for _, w := range writes {
		var err error
		switch {
		case w.name == timestampName:
			if time.Since(start) > r.lease() {
				return fmt.Errorf("%w: the publish took longer than its lease (%v); nothing was committed", ErrConflict, r.lease())
			}
			if err := r.claim(ctx, cs, next); err != nil {
				return err
			}
			r.commit(next)
			err = r.copyClaim(ctx, cs, w, next.timestamp.Signed.Version)
			if err == nil {
				r.pruneClaims(ctx, cs, next.timestamp.Signed.Version)
			}
		case versionedMeta.MatchString(w.name):
			err = r.createVersioned(ctx, cs, w)
		default:
			err = r.put(ctx, w)
		}
		if err != nil {
			return err
		}
	}
	r.rootPending, r.rootAdopted = false, false
	return nil
}

// claim creates the claim for next's timestamp version: the commit point.
func (r *Repository) claim(ctx context.Context, cs ConditionalStorage, next *publication) error {
	v := next.timestamp.Signed.Version
	err := cs.Create(ctx, claimName(v), bytes.NewReader(next.timestampBytes))
	if !errors.Is(err, ErrBlobExists) {
		return err
	}
	// Our own claim, from a retried Publish whose copy failed, is ours.
	if b, gerr := getBlob(ctx, cs, claimName(v), MaxDocumentSize); gerr == nil && bytes.Equal(b, next.timestampBytes) {
		return nil
	}
	return fmt.Errorf("%w: another publisher published timestamp version %d first", ErrConflict, v)
}

// createVersioned creates a versioned metadata file. A file of that name
// may already be there: the same bytes (a retried Publish), this
// Repository's own earlier attempt, a file a published timestamp names
// (the repository moved on: ErrConflict), another publisher's write in
// progress (ErrConflict) or the leftover of a publish that died (replaced).
func (r *Repository) createVersioned(ctx context.Context, cs ConditionalStorage, w blob) error {
	err := cs.Create(ctx, w.name, bytes.NewReader(w.data))
	if err == nil {
		r.created[w.name] = true
		return nil
	}
	if !errors.Is(err, ErrBlobExists) {
		return err
	}
	have, err := getBlob(ctx, cs, w.name, MaxDocumentSize)
	if err != nil && !errors.Is(err, ErrBlobNotFound) {
		return err
	}
	if err == nil && bytes.Equal(have, w.data) {
		r.created[w.name] = true
		return nil
	}
	if err := r.checkUnchanged(ctx); err != nil {
		return err
	}
	if !r.created[w.name] {
		mt, err := cs.ModTime(ctx, w.name)
		if err != nil && !errors.Is(err, ErrBlobNotFound) {
			return err
		}
		// The store's clock against ours: the lease must be long
		// against clock skew as well as against a publish.
		if err == nil && time.Since(mt) < r.lease() {
			return fmt.Errorf("%w: %s is being written by another publisher", ErrConflict, w.name)
		}
	}
	if err := r.put(ctx, w); err != nil {
		return err
	}
	r.created[w.name] = true
	return nil
}

// newestClaim returns the newest claim above version v (its document and
// bytes), or nil when there is none.
func newestClaim(ctx context.Context, cs ConditionalStorage, v int64) (*manifest.Metadata[manifest.Timestamp], []byte, error) {
	var md *manifest.Metadata[manifest.Timestamp]
	var data []byte
	for {
		b, err := getBlob(ctx, cs, claimName(v+1), MaxDocumentSize)
		if errors.Is(err, ErrBlobNotFound) {
			return md, data, nil
		}
		if err != nil {
			return nil, nil, err
		}
		next, err := manifest.ParseUnverified[manifest.Timestamp](manifest.RoleTimestamp, b, documentLimits)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %s: %w", ErrMalformedDocument, claimName(v+1), err)
		}
		if next.Signed.Version != v+1 {
			return nil, nil, fmt.Errorf("%w: %s holds version %d", ErrMalformedDocument, claimName(v+1), next.Signed.Version)
		}
		md, data, v = next, b, v+1
	}
}

// copyClaim writes timestamp.json for our claim of version v, unless a
// newer claim exists already: another publisher committed after us, and
// writing ours would put an older timestamp back where clients read it.
// Either way finishClaims then makes sure the newest claim is what stays.
func (r *Repository) copyClaim(ctx context.Context, cs ConditionalStorage, w blob, v int64) error {
	_, err := cs.ModTime(ctx, claimName(v+1))
	switch {
	case errors.Is(err, ErrBlobNotFound):
		if err := r.put(ctx, w); err != nil {
			return err
		}
	case err != nil:
		return err
	}
	return r.finishClaims(ctx, cs, v)
}

// finishClaims copies the newest claim above version v to timestamp.json,
// and again while newer claims appear. A store without compare-and-swap
// on a replaced object cannot stop a slow copy of an older claim from
// landing after a newer one; but every copier looks for newer claims after
// its own write, so the last write of any copier is the newest claim, and
// an older timestamp.json is visible at most for that one round trip
// (clients refuse it as a rollback and keep what they trust; update
// servers never serve it, see examples/updateserver).
func (r *Repository) finishClaims(ctx context.Context, cs ConditionalStorage, v int64) error {
	for {
		md, data, err := newestClaim(ctx, cs, v)
		if err != nil || md == nil {
			return err
		}
		if err := cs.Put(ctx, timestampName, bytes.NewReader(data)); err != nil {
			return err
		}
		v = md.Signed.Version
	}
}

// rollForward, at open, takes the newest claim above the stored
// timestamp.json as the published timestamp and completes its copy.
func (r *Repository) rollForward(ctx context.Context) error {
	cs, ok := r.store.(ConditionalStorage)
	if !ok {
		return nil
	}
	md, data, err := newestClaim(ctx, cs, r.timestamp.Signed.Version)
	if err != nil || md == nil {
		return err
	}
	r.timestamp = md
	if err := cs.Put(ctx, timestampName, bytes.NewReader(data)); err != nil {
		return err
	}
	return r.finishClaims(ctx, cs, md.Signed.Version)
}

// keptClaims is how many claims below the newest one are never removed.
const keptClaims = 16

// maxPrunedClaims bounds the claims one publish removes: a repository
// that piled them up before they were pruned loses them over a few
// publishes.
const maxPrunedClaims = 256

// pruneClaims removes old claims after a commit of version v, when the
// store can remove. A claim is needed while a publisher may still try to
// create it: that publisher checked timestamp.json at the start of its
// publish, at most a lease ago, and found the version below the claim; so
// a claim more than keptClaims versions old and written more than two
// leases ago can no longer be contested (its absence would let a stale
// publisher win it). Readers never need claims below timestamp.json.
// Removal is best effort: the publish has committed, and a claim left
// behind is removed by a later publish.
func (r *Repository) pruneClaims(ctx context.Context, cs ConditionalStorage, v int64) {
	rs, ok := r.store.(RemovableStorage)
	if !ok {
		return
	}
	for old, n := v-keptClaims, 0; old > 0 && n < maxPrunedClaims; old, n = old-1, n+1 {
		mt, err := cs.ModTime(ctx, claimName(old))
		if err != nil || time.Since(mt) < 2*r.lease() {
			return
		}
		if rs.Remove(ctx, claimName(old)) != nil {
			return
		}
	}
}
