package sign

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"

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
// silently.
func (r *Repository) Publish(ctx context.Context, signers []*Signer) error {
	now := r.opts.now()
	p, err := r.policy()
	if err != nil {
		return err
	}
	allowed := func(role string) []*Signer {
		var out []*Signer
		for _, s := range signers {
			if p.Authorize(role, s.KeyID()) == nil {
				out = append(out, s)
			}
		}
		return out
	}
	sign := func(role string, md any) error {
		var rep Report
		var err error
		switch m := md.(type) {
		case *manifest.Metadata[manifest.Targets]:
			rep, err = SignRole(ctx, p, role, m, allowed(role))
		case *manifest.Metadata[manifest.Snapshot]:
			rep, err = SignRole(ctx, p, role, m, allowed(role))
		case *manifest.Metadata[manifest.Timestamp]:
			rep, err = SignRole(ctx, p, role, m, allowed(role))
		}
		if err != nil {
			return err
		}
		if !rep.Met {
			return &manifest.ThresholdError{Role: role, Threshold: rep.Threshold, SignedBy: rep.SignedBy, Missing: rep.Missing}
		}
		return nil
	}

	// During a root rotation that changes the targets, snapshot or
	// timestamp keys, documents are also signed by those of signers the
	// previous root allows for the role ("bridged"), so that they verify
	// under the old root and the new one alike. Then the new root can be
	// written last and a publish that fails at any write still leaves
	// clients a repository they can verify. Without the old keys the root
	// goes before the timestamp and a client refreshing in between fails
	// until the timestamp lands.
	bridged := true
	var prevRoot *manifest.Metadata[manifest.Root]
	if r.rootPending && r.prevRoot != nil {
		prevRoot = r.prevRoot
	}
	bridge := func(role string, md any) error {
		if prevRoot == nil || sameRole(prevRoot.Signed.Roles[role], r.root.Signed.Roles[role]) {
			return nil
		}
		var (
			sigs    *[]manifest.Signature
			payload []byte
			err     error
			verify  func() error
		)
		switch m := md.(type) {
		case *manifest.Metadata[manifest.Targets]:
			sigs, verify = &m.Signatures, func() error { return prevRoot.VerifyDelegate(role, m) }
			payload, err = Payload(m)
		case *manifest.Metadata[manifest.Snapshot]:
			sigs, verify = &m.Signatures, func() error { return prevRoot.VerifyDelegate(role, m) }
			payload, err = Payload(m)
		case *manifest.Metadata[manifest.Timestamp]:
			sigs, verify = &m.Signatures, func() error { return prevRoot.VerifyDelegate(role, m) }
			payload, err = Payload(m)
		}
		if err != nil {
			return err
		}
		for _, s := range signers {
			id := s.KeyID()
			if !slices.Contains(prevRoot.Signed.Roles[role].KeyIDs, id) ||
				slices.ContainsFunc(*sigs, func(x manifest.Signature) bool { return x.KeyID == id }) {
				continue
			}
			sig, err := s.SignPayload(ctx, payload)
			if err != nil {
				return err
			}
			*sigs = append(*sigs, sig)
		}
		if verify() != nil {
			bridged = false
		}
		return nil
	}

	type blob struct {
		name string
		data []byte // or
		file string
	}
	var writes []blob

	// Target files first: nothing refers to them yet.
	paths := make([]string, 0, len(r.pending))
	for tp := range r.pending {
		paths = append(paths, tp)
	}
	sort.Strings(paths)
	for _, tp := range paths {
		s := r.pending[tp]
		for _, name := range r.targetBlobNames(tp, s) {
			writes = append(writes, blob{name: name, file: s.file})
		}
	}

	// Targets roles, delegated ones before the top-level role.
	dirty := make([]string, 0, len(r.dirty))
	for role := range r.dirty {
		dirty = append(dirty, role)
	}
	sort.Slice(dirty, func(i, j int) bool {
		if (dirty[i] == manifest.RoleTargets) != (dirty[j] == manifest.RoleTargets) {
			return dirty[j] == manifest.RoleTargets
		}
		return dirty[i] < dirty[j]
	})
	newTargets := map[string]*manifest.Metadata[manifest.Targets]{}
	newPublished := map[string]int64{}
	for role, v := range r.published {
		newPublished[role] = v
	}
	for _, role := range dirty {
		if md, ok := r.presigned[role]; ok {
			// Signed offline (ImportSigned checked it); checked again
			// below with go-tuf like every other role.
			newTargets[role] = md
			newPublished[role] = md.Signed.Version
			continue
		}
		md, err := r.nextTargets(role, now)
		if err != nil {
			return err
		}
		if err := sign(role, md); err != nil {
			return err
		}
		newTargets[role] = md
		newPublished[role] = md.Signed.Version
	}
	if md, ok := newTargets[manifest.RoleTargets]; ok {
		if err := bridge(manifest.RoleTargets, md); err != nil {
			return err
		}
	}
	for _, role := range dirty {
		if err := r.verifyDelegated(role, newTargets); err != nil {
			return err
		}
		data, err := newTargets[role].ToBytes(false)
		if err != nil {
			return err
		}
		writes = append(writes, blob{name: r.metaName(role, newTargets[role].Signed.Version), data: data})
	}

	// Snapshot.
	snap := r.snapshot
	snapExpiry := orDefault(r.opts.SnapshotExpiry, DefaultSnapshotExpiry)
	if snap == nil || len(dirty) > 0 || r.rootPending || snap.Signed.Expires.Before(now.Add(snapExpiry/2)) {
		snap = metadata.Snapshot(now.Add(snapExpiry).Truncate(1e9))
		if r.snapshot != nil {
			snap.Signed.Version = r.snapshot.Signed.Version + 1
		}
		snap.Signed.Meta = map[string]*manifest.MetaFile{}
		for role := range r.targets {
			snap.Signed.Meta[role+".json"] = metadata.MetaFile(newPublished[role])
		}
		if err := sign(manifest.RoleSnapshot, snap); err != nil {
			return err
		}
		if err := bridge(manifest.RoleSnapshot, snap); err != nil {
			return err
		}
		if err := manifest.TranslateError(r.root.VerifyDelegate(manifest.RoleSnapshot, snap)); err != nil {
			return fmt.Errorf("sign: snapshot would not verify: %w", err)
		}
	}
	snapBytes, err := snap.ToBytes(false)
	if err != nil {
		return err
	}
	if snap != r.snapshot {
		writes = append(writes, blob{name: r.metaName(manifest.RoleSnapshot, snap.Signed.Version), data: snapBytes})
	}

	// Root, after everything it could make clients look for.
	var rootWrites []blob
	if r.rootPending {
		data, err := r.root.ToBytes(false)
		if err != nil {
			return err
		}
		rootWrites = []blob{
			{name: fmt.Sprintf("%s/%d.root.json", MetadataDir, r.root.Signed.Version), data: data},
			{name: MetadataDir + "/root.json", data: data},
		}
	}

	// Timestamp, the commit point for clients.
	ts := metadata.Timestamp(now.Add(orDefault(r.opts.TimestampExpiry, DefaultTimestampExpiry)).Truncate(1e9))
	if r.timestamp != nil {
		ts.Signed.Version = r.timestamp.Signed.Version + 1
	}
	sum := sha256.Sum256(snapBytes)
	ts.Signed.Meta["snapshot.json"] = &manifest.MetaFile{
		Version: snap.Signed.Version,
		Length:  int64(len(snapBytes)),
		Hashes:  manifest.Hashes{"sha256": sum[:]},
	}
	manifest.SetSignedAt(&ts.Signed, now)
	if err := sign(manifest.RoleTimestamp, ts); err != nil {
		return err
	}
	if err := bridge(manifest.RoleTimestamp, ts); err != nil {
		return err
	}
	if err := manifest.TranslateError(r.root.VerifyDelegate(manifest.RoleTimestamp, ts)); err != nil {
		return fmt.Errorf("sign: timestamp would not verify: %w", err)
	}
	tsBytes, err := ts.ToBytes(false)
	if err != nil {
		return err
	}
	if bridged {
		writes = append(writes, blob{name: MetadataDir + "/timestamp.json", data: tsBytes})
		writes = append(writes, rootWrites...)
	} else {
		writes = append(writes, rootWrites...)
		writes = append(writes, blob{name: MetadataDir + "/timestamp.json", data: tsBytes})
	}

	if err := r.checkUnchanged(ctx); err != nil {
		return err
	}
	// The in-memory state follows what clients can see: it commits when
	// the timestamp lands, so a Publish that failed before can simply be
	// retried, and one that failed after (writing a bridged root) only
	// has the root left to write.
	commit := func() {
		for role, md := range newTargets {
			r.targets[role] = md
		}
		r.published = newPublished
		r.snapshot, r.timestamp = snap, ts
		r.dirty = map[string]bool{}
		r.staged = map[string][]byte{}
		r.presigned = map[string]*manifest.Metadata[manifest.Targets]{}
		r.Close()
	}
	for _, w := range writes {
		if err := r.put(ctx, w.name, w.data, w.file); err != nil {
			return err
		}
		if w.name == MetadataDir+"/timestamp.json" {
			commit()
		}
	}
	r.rootPending = false
	return nil
}

func (r *Repository) put(ctx context.Context, name string, data []byte, file string) error {
	if file == "" {
		return r.store.Put(ctx, name, bytes.NewReader(data))
	}
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	defer f.Close()
	return r.store.Put(ctx, name, f)
}

// checkUnchanged is the compare half of Publish's compare-and-swap: the
// timestamp in storage must be the one this Repository published or
// loaded.
func (r *Repository) checkUnchanged(ctx context.Context) error {
	b, err := getBlob(ctx, r.store, MetadataDir+"/timestamp.json", MaxDocumentSize)
	switch {
	case errors.Is(err, ErrBlobNotFound) && r.timestamp == nil:
		return nil
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
	return nil
}

// verifyDelegated runs go-tuf's own check of role's new document against
// its delegator (root for targets, else the delegating targets role), so
// nothing is written that go-tuf clients would refuse.
func (r *Repository) verifyDelegated(role string, newTargets map[string]*manifest.Metadata[manifest.Targets]) error {
	md := newTargets[role]
	if role == manifest.RoleTargets {
		return wrapVerify(role, r.root.VerifyDelegate(role, md))
	}
	for name, parent := range r.targets {
		if n, ok := newTargets[name]; ok {
			parent = n
		}
		d := parent.Signed.Delegations
		if d == nil {
			continue
		}
		if d.SuccinctRoles != nil && d.SuccinctRoles.IsDelegatedRole(role) {
			return wrapVerify(role, parent.VerifyDelegate(role, md))
		}
		for _, dr := range d.Roles {
			if dr.Name == role {
				return wrapVerify(role, parent.VerifyDelegate(role, md))
			}
		}
	}
	return fmt.Errorf("%w %q: no role delegates to it", ErrUnknownRole, role)
}

func wrapVerify(role string, err error) error {
	if err != nil {
		return fmt.Errorf("sign: %s would not verify: %w", role, manifest.TranslateError(err))
	}
	return nil
}
