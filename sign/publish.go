package sign

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/otaseal/otaseal/manifest"
)

// Publish signs and writes every staged change.
//
// Each changed targets role (top-level or delegated) gets version+1, a new
// expiry and signatures from those of signers that its policy allows; the
// snapshot is regenerated when anything changed or it is about to expire;
// the timestamp always is, carrying its signing time
// (manifest.SetSignedAt). Every document must meet its role's threshold
// (checked by this package's Policy and again by go-tuf's VerifyDelegate,
// which is what clients run) before the first byte is written; otherwise
// Publish returns a *manifest.ThresholdError naming the role and writes nothing.
//
// An update server holding only the snapshot and timestamp keys calls
// Publish with just those to keep freshness metadata alive; offline keys
// are needed only when targets or delegations changed.
//
// Writes go in the order that keeps every intermediate state safe for
// clients: target files, then targets metadata, then snapshot, then
// timestamp.json, the commit point, then a new root if one is staged.
// With consistent snapshots every file but timestamp.json has a new name,
// so a publish that fails at any write leaves clients the old repository
// or the new one, whole, and the next Publish completes it. For a root
// rotation that replaces online (or targets) keys this needs the old keys
// among signers, to bridge the documents to both roots; without them the
// root is written before the timestamp (see SetRoot).
// Without consistent snapshots, metadata is overwritten in place and a
// client refreshing during a (failed) publish can see mismatched versions
// until the next successful Publish: prefer consistent snapshots.
//
// Before writing, Publish checks that storage still holds the timestamp it
// last saw (ErrConflict otherwise): two publishers never interleave
// silently. It refuses (*ExpiredError, ErrExpired) to publish under a root
// or top-level targets document that has expired, since devices would
// refuse everything it writes: a staged root rotation or a new targets
// version renews them.
//
// On a ConditionalStorage (a bucket) the check is a real
// compare-and-swap: the commit point is the conditional creation of a
// versioned copy of the timestamp, so of two publishers starting from one
// version exactly one commits and the other gets ErrConflict with nothing
// of its publication visible; open the repository again and retry (see
// ConditionalStorage and RepositoryOptions.PublishLease).
func (r *Repository) Publish(ctx context.Context, signers []*Signer) error {
	pub, err := r.newPublisher(ctx, signers)
	if err != nil {
		return err
	}
	if err := pub.planTargets(); err != nil {
		return err
	}
	if err := pub.checkOfflineExpiry(); err != nil {
		return err
	}
	if err := pub.nextSnapshot(); err != nil {
		return err
	}
	if err := pub.nextTimestamp(); err != nil {
		return err
	}
	// Everything is signed and checked: from here on only storage can fail.
	writes := r.writeOrder(pub.next)
	if err := r.checkUnchanged(ctx); err != nil {
		return err
	}
	return r.writeAll(ctx, writes, pub.next)
}

// timestampName is the one metadata file without a version in its name:
// writing it is the commit point for clients.
const timestampName = MetadataDir + "/timestamp.json"

// publisher carries one Publish through its steps: who signs, under which
// policy, at what time, and the publication it builds.
type publisher struct {
	r       *Repository
	ctx     context.Context
	now     time.Time
	policy  *Policy
	signers []*Signer
	// prevRoot is the root being replaced during a root rotation, nil
	// otherwise: documents whose role keys change are signed for it too.
	prevRoot *manifest.Metadata[manifest.Root]
	next     *publication
}

// publication is what one Publish writes and, once the timestamp lands,
// makes the Repository's state.
type publication struct {
	// order lists the changed targets roles, delegated ones before the
	// top-level role; targets and targetsBytes hold their new documents.
	order        []string
	targets      map[string]*manifest.Metadata[manifest.Targets]
	targetsBytes map[string][]byte
	// published is every targets role's version once this is published.
	published map[string]int64
	// snapshot is r.snapshot when it needs no new version.
	snapshot       *manifest.Metadata[manifest.Snapshot]
	snapshotBytes  []byte
	timestamp      *manifest.Metadata[manifest.Timestamp]
	timestampBytes []byte
	root           []byte // the staged root, or nil
	// bridged: every document a rotation re-keys verifies under the
	// previous root as well, so the root can be written last.
	bridged bool
}

func (r *Repository) newPublisher(ctx context.Context, signers []*Signer) (*publisher, error) {
	p, err := r.policy()
	if err != nil {
		return nil, err
	}
	pub := &publisher{r: r, ctx: ctx, now: r.opts.now(), policy: p, signers: signers, next: &publication{
		targets:      map[string]*manifest.Metadata[manifest.Targets]{},
		targetsBytes: map[string][]byte{},
		published:    maps.Clone(r.published),
		bridged:      true,
	}}
	if r.rootPending {
		pub.prevRoot = r.prevRoot
		if pub.next.root, err = r.root.ToBytes(false); err != nil {
			return nil, err
		}
	}
	return pub, nil
}

// planTargets signs the next version of every changed targets role (or
// takes the document ImportSigned accepted) and checks each against its
// delegator as go-tuf clients will.
func (p *publisher) planTargets() error {
	r, next := p.r, p.next
	for role := range r.dirty {
		next.order = append(next.order, role)
	}
	sort.Slice(next.order, func(i, j int) bool {
		a, b := next.order[i], next.order[j]
		if (a == manifest.RoleTargets) != (b == manifest.RoleTargets) {
			return b == manifest.RoleTargets
		}
		return a < b
	})
	for _, role := range next.order {
		md, ok := r.presigned[role]
		if !ok {
			var err error
			if md, err = r.nextTargets(role, p.now); err != nil {
				return err
			}
			if md.Signed.Version, err = p.freeVersion(role, md.Signed.Version); err != nil {
				return err
			}
			if err := signAs(p, role, md); err != nil {
				return err
			}
		}
		// A presigned document was checked by ImportSigned; it is
		// checked again below with go-tuf like every other role.
		next.targets[role] = md
		next.published[role] = md.Signed.Version
	}
	if md, ok := next.targets[manifest.RoleTargets]; ok {
		if err := bridge(p, manifest.RoleTargets, md); err != nil {
			return err
		}
	}
	for _, role := range next.order {
		if err := checkControl(role, next.targets[role]); err != nil {
			return err
		}
		if err := r.verifyDelegated(role, next.targets); err != nil {
			return err
		}
		data, err := next.targets[role].ToBytes(false)
		if err != nil {
			return err
		}
		next.targetsBytes[role] = data
	}
	return nil
}

// nextSnapshot signs a new snapshot when any targets role or the root
// changed or the current one is about to expire; otherwise the current
// one stays.
func (p *publisher) nextSnapshot() error {
	r, next := p.r, p.next
	snap := r.snapshot
	expiry := orDefault(r.opts.SnapshotExpiry, DefaultSnapshotExpiry)
	if snap == nil || len(next.order) > 0 || r.rootPending || snap.Signed.Expires.Before(p.now.Add(expiry/2)) {
		snap = metadata.Snapshot(p.now.Add(expiry).Truncate(1e9))
		if r.snapshot != nil {
			snap.Signed.Version = r.snapshot.Signed.Version + 1
		}
		var err error
		if snap.Signed.Version, err = p.freeVersion(manifest.RoleSnapshot, snap.Signed.Version); err != nil {
			return err
		}
		snap.Signed.Meta = map[string]*manifest.MetaFile{}
		for role := range r.targets {
			snap.Signed.Meta[role+".json"] = metadata.MetaFile(next.published[role])
		}
		if err := signAs(p, manifest.RoleSnapshot, snap); err != nil {
			return err
		}
		if err := bridge(p, manifest.RoleSnapshot, snap); err != nil {
			return err
		}
		if err := manifest.TranslateError(r.root.VerifyDelegate(manifest.RoleSnapshot, snap)); err != nil {
			return fmt.Errorf("sign: snapshot would not verify: %w", err)
		}
	}
	data, err := snap.ToBytes(false)
	if err != nil {
		return err
	}
	next.snapshot, next.snapshotBytes = snap, data
	return nil
}

// nextTimestamp signs a new timestamp naming the next snapshot and
// carrying its signing time. It always gets a new version.
func (p *publisher) nextTimestamp() error {
	r, next := p.r, p.next
	ts := metadata.Timestamp(p.now.Add(orDefault(r.opts.TimestampExpiry, DefaultTimestampExpiry)).Truncate(1e9))
	if r.timestamp != nil {
		ts.Signed.Version = r.timestamp.Signed.Version + 1
	}
	sum := sha256.Sum256(next.snapshotBytes)
	ts.Signed.Meta["snapshot.json"] = &manifest.MetaFile{
		Version: next.snapshot.Signed.Version,
		Length:  int64(len(next.snapshotBytes)),
		Hashes:  manifest.Hashes{"sha256": sum[:]},
	}
	manifest.SetSignedAt(&ts.Signed, p.now)
	if err := signAs(p, manifest.RoleTimestamp, ts); err != nil {
		return err
	}
	if err := bridge(p, manifest.RoleTimestamp, ts); err != nil {
		return err
	}
	if err := manifest.TranslateError(r.root.VerifyDelegate(manifest.RoleTimestamp, ts)); err != nil {
		return fmt.Errorf("sign: timestamp would not verify: %w", err)
	}
	data, err := ts.ToBytes(false)
	if err != nil {
		return err
	}
	next.timestamp, next.timestampBytes = ts, data
	return nil
}

// signAs signs md as role with those of the publisher's signers that the
// policy allows for it, and requires the role's threshold.
func signAs[T metadata.Roles](p *publisher, role string, md *manifest.Metadata[T]) error {
	var allowed []*Signer
	for _, s := range p.signers {
		if p.policy.Authorize(role, s.KeyID()) == nil {
			allowed = append(allowed, s)
		}
	}
	rep, err := SignRole(p.ctx, p.policy, role, md, allowed)
	if err != nil {
		return err
	}
	if !rep.Met {
		return &manifest.ThresholdError{Role: role, Threshold: rep.Threshold, SignedBy: rep.SignedBy, Missing: rep.Missing}
	}
	return nil
}

// bridge adds, during a root rotation that changes role's keys, the
// signatures of those of the publisher's signers that the previous root
// allows for role, so that md verifies under the old root and the new one
// alike. Then the new root can be written last and a publish that fails at
// any write still leaves clients a repository they can verify. Without
// the old keys the publication is not bridged: the root goes before the
// timestamp, and a client refreshing in between fails until the timestamp
// lands.
func bridge[T metadata.Roles](p *publisher, role string, md *manifest.Metadata[T]) error {
	prev := p.prevRoot
	if prev == nil || sameRole(prev.Signed.Roles[role], p.r.root.Signed.Roles[role]) {
		return nil
	}
	payload, err := Payload(md)
	if err != nil {
		return err
	}
	for _, s := range p.signers {
		id := s.KeyID()
		if !slices.Contains(prev.Signed.Roles[role].KeyIDs, id) ||
			slices.ContainsFunc(md.Signatures, func(x manifest.Signature) bool { return x.KeyID == id }) {
			continue
		}
		sig, err := s.SignPayload(p.ctx, payload)
		if err != nil {
			return err
		}
		md.Signatures = append(md.Signatures, sig)
	}
	if prev.VerifyDelegate(role, md) != nil {
		p.next.bridged = false
	}
	return nil
}

// blob is one storage write: data, or the content of a local file.
type blob struct {
	name string
	data []byte
	file string
}

// writeOrder lists next's writes in the order that keeps every
// intermediate state safe for clients: target files first, as nothing
// refers to them yet; then targets metadata, delegated roles before the
// top-level role that delegates to them; then the snapshot naming them;
// then timestamp.json, the commit point. A staged root goes last when the
// publication is bridged (every document verifies under either root), and
// just before the timestamp otherwise, after everything it could make
// clients look for.
func (r *Repository) writeOrder(next *publication) []blob {
	var writes []blob
	paths := slices.Sorted(maps.Keys(r.pending))
	for _, tp := range paths {
		s := r.pending[tp]
		for _, name := range r.targetBlobNames(tp, s) {
			writes = append(writes, blob{name: name, file: s.file})
		}
	}
	for _, role := range next.order {
		writes = append(writes, blob{name: r.metaName(role, next.targets[role].Signed.Version), data: next.targetsBytes[role]})
	}
	if next.snapshot != r.snapshot {
		writes = append(writes, blob{name: r.metaName(manifest.RoleSnapshot, next.snapshot.Signed.Version), data: next.snapshotBytes})
	}
	var root []blob
	if next.root != nil {
		root = []blob{
			{name: fmt.Sprintf("%s/%d.root.json", MetadataDir, r.root.Signed.Version), data: next.root},
			{name: MetadataDir + "/root.json", data: next.root},
		}
	}
	ts := blob{name: timestampName, data: next.timestampBytes}
	if next.bridged {
		return append(append(writes, ts), root...)
	}
	return append(append(writes, root...), ts)
}

// writeAll makes the writes in order and commits next when the timestamp
// lands. The in-memory state follows what clients can see, so a Publish
// that failed before the timestamp can simply be retried, and one that
// failed after it (writing a bridged root) only has the root left to
// write.
func (r *Repository) writeAll(ctx context.Context, writes []blob, next *publication) error {
	if cs, ok := r.store.(ConditionalStorage); ok {
		return r.writeConditional(ctx, cs, writes, next)
	}
	for _, w := range writes {
		if err := r.put(ctx, w); err != nil {
			return err
		}
		if w.name == timestampName {
			r.commit(next)
		}
	}
	r.rootPending, r.rootAdopted = false, false
	return nil
}

// commit makes next the Repository's published state and forgets the
// staged changes it carried.
func (r *Repository) commit(next *publication) {
	for role, md := range next.targets {
		r.targets[role] = md
	}
	r.published = next.published
	r.snapshot, r.timestamp = next.snapshot, next.timestamp
	r.dirty = map[string]bool{}
	r.pinned = time.Time{}
	r.staged = map[string][]byte{}
	r.presigned = map[string]*manifest.Metadata[manifest.Targets]{}
	r.Close()
}

func (r *Repository) put(ctx context.Context, w blob) error {
	if w.file == "" {
		return r.store.Put(ctx, w.name, bytes.NewReader(w.data))
	}
	f, err := os.Open(w.file)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	defer f.Close()
	return r.store.Put(ctx, w.name, f)
}

// checkUnchanged is the compare half of Publish's compare-and-swap: the
// timestamp in storage must be the one this Repository published or
// loaded.
func (r *Repository) checkUnchanged(ctx context.Context) error {
	b, err := getBlob(ctx, r.store, timestampName, MaxDocumentSize)
	switch {
	case errors.Is(err, ErrBlobNotFound) && r.timestamp == nil:
		return r.checkNoClaim(ctx)
	case errors.Is(err, ErrBlobNotFound):
		return fmt.Errorf("%w: timestamp.json disappeared", ErrConflict)
	case err != nil:
		return err
	case r.timestamp == nil:
		return fmt.Errorf("%w: another publisher created the repository", ErrConflict)
	}
	cur, err := (&manifest.Metadata[manifest.Timestamp]{}).FromBytes(b)
	if err != nil || cur.Signed.Version != r.timestamp.Signed.Version {
		return fmt.Errorf("%w: timestamp in storage is not version %d", ErrConflict, r.timestamp.Signed.Version)
	}
	return r.checkNoClaim(ctx)
}

// checkNoClaim: on a ConditionalStorage, no publisher has claimed the
// timestamp version after this Repository's (see claim.go).
func (r *Repository) checkNoClaim(ctx context.Context) error {
	cs, ok := r.store.(ConditionalStorage)
	if !ok {
		return nil
	}
	var v int64
	if r.timestamp != nil {
		v = r.timestamp.Signed.Version
	}
	_, err := cs.ModTime(ctx, claimName(v+1))
	switch {
	case err == nil:
		return fmt.Errorf("%w: another publisher published timestamp version %d", ErrConflict, v+1)
	case errors.Is(err, ErrBlobNotFound):
		return nil
	}
	return err
}

// verifyDelegated runs go-tuf's own check of role's new document against
// its delegator (root for targets, else the delegating targets role), so
// nothing is written that go-tuf clients would refuse.
func (r *Repository) verifyDelegated(role string, newTargets map[string]*manifest.Metadata[manifest.Targets]) error {
	md := newTargets[role]
	if role == manifest.RoleTargets {
		return wrapVerify(role, r.root.VerifyDelegate(role, md))
	}
	parent, ok := r.delegator(role, newTargets)
	if !ok {
		return fmt.Errorf("%w %q: no role delegates to it", ErrUnknownRole, role)
	}
	return wrapVerify(role, parent.VerifyDelegate(role, md))
}

// delegator returns the targets role that delegates to role, preferring
// its new document in newTargets.
func (r *Repository) delegator(role string, newTargets map[string]*manifest.Metadata[manifest.Targets]) (*manifest.Metadata[manifest.Targets], bool) {
	for name, parent := range r.targets {
		if n, ok := newTargets[name]; ok {
			parent = n
		}
		d := parent.Signed.Delegations
		if d == nil {
			continue
		}
		if d.SuccinctRoles != nil && d.SuccinctRoles.IsDelegatedRole(role) {
			return parent, true
		}
		for _, dr := range d.Roles {
			if dr.Name == role {
				return parent, true
			}
		}
	}
	return nil, false
}

func wrapVerify(role string, err error) error {
	if err != nil {
		return fmt.Errorf("sign: %s would not verify: %w", role, manifest.TranslateError(err))
	}
	return nil
}
