package sign

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/otaseal/otaseal/manifest"
)

// Layout of a repository in its Storage: metadata under "metadata/", target
// files under "targets/". Serve the storage over HTTP and point a TUF
// client's metadata URL at ".../metadata/" and its targets URL at
// ".../targets/".
const (
	MetadataDir = "metadata"
	TargetsDir  = "targets"
)

// Default expiry periods (Options fields left zero).
const (
	DefaultRootExpiry      = 365 * 24 * time.Hour
	DefaultTargetsExpiry   = 90 * 24 * time.Hour
	DefaultSnapshotExpiry  = 7 * 24 * time.Hour
	DefaultTimestampExpiry = 24 * time.Hour
	DefaultPublishLease    = 10 * time.Minute
)

// RepositoryOptions configure a Repository. The zero value is safe: real time,
// default expiries, spool files in the system temp directory.
type RepositoryOptions struct {
	// Now returns the current time; nil means time.Now. Every version's
	// expiry and the timestamp's signing time come from it.
	Now func() time.Time
	// Expiry periods per role; zero means the default above.
	RootExpiry, TargetsExpiry, SnapshotExpiry, TimestampExpiry time.Duration
	// TempDir holds target files between Add and Publish; "" means
	// os.TempDir().
	TempDir string
	// MaxTargetSize bounds one target file read by AddFirmware/AddDelta;
	// zero means 4 GiB.
	MaxTargetSize int64
	// PublishLease matters only on a ConditionalStorage: a versioned
	// metadata file that another publisher wrote less than this long ago,
	// and no published timestamp names, belongs to a publish still in
	// progress (ErrConflict); an older one is the leftover of a publish
	// that died and is replaced. A Publish that takes longer than this
	// between its first metadata write and its commit gives up
	// (ErrConflict). Zero means DefaultPublishLease.
	PublishLease time.Duration
}

func (o *RepositoryOptions) now() time.Time {
	if o.Now != nil {
		return o.Now().UTC()
	}
	return time.Now().UTC()
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Repository is a TUF repository being edited and published: a current
// root, the targets role and its delegations, snapshot and timestamp.
// Changes (targets added or removed, delegations, a new root) are staged in
// memory and written by Publish, which signs every changed role with the
// keys given to it and refuses to write anything below a threshold.
//
// A Repository is not safe for concurrent use. Two processes publishing to
// one storage are detected (ErrConflict) by comparing the timestamp version
// in storage with the one this Repository last saw.
type Repository struct {
	store Storage
	opts  RepositoryOptions

	root     *manifest.Metadata[manifest.Root]
	prevRoot *manifest.Metadata[manifest.Root] // for revocation evidence
	// targets holds the working copy of every targets role (top-level and
	// delegated); published holds the version last written for each.
	targets   map[string]*manifest.Metadata[manifest.Targets]
	published map[string]int64
	snapshot  *manifest.Metadata[manifest.Snapshot]
	timestamp *manifest.Metadata[manifest.Timestamp]

	dirty map[string]bool // targets roles changed since the last publish
	// staged and presigned hold offline ceremonies in progress: the exact
	// next document of a role as exported, and the signed document
	// imported back. Any later change to the role discards both.
	staged    map[string][]byte // role -> canonical payload exported
	presigned map[string]*manifest.Metadata[manifest.Targets]
	// revokedDelegated[role][keyid]: keys SetDelegationKeys removed, kept
	// for the life of this Repository as evidence for Policy.
	revokedDelegated map[string]map[string]bool
	pending          map[string]*spooled
	rootPending      bool
	// rootAdopted: the pending root was found in storage (a crashed
	// publish wrote it), not staged by SetRoot.
	rootAdopted bool
	// pinned, when set, is the time the next targets documents are made
	// at (see SaveStaged).
	pinned time.Time
	// created: versioned metadata this Repository wrote to a
	// ConditionalStorage, which a retried Publish may replace.
	created map[string]bool
}

// spooled is a target file read by Add, waiting in a local temp file.
type spooled struct {
	file   string
	tf     *manifest.TargetFile
	sha256 string
	sha512 string
}

// CreateRepository starts a new repository in store with root, which must be signed
// by its own root threshold. Nothing is written until Publish. CreateRepository
// refuses a storage that already holds a repository (ErrConflict).
func CreateRepository(ctx context.Context, store Storage, root *manifest.Metadata[manifest.Root], opts RepositoryOptions) (*Repository, error) {
	if _, err := getBlob(ctx, store, MetadataDir+"/timestamp.json", MaxDocumentSize); err == nil {
		return nil, fmt.Errorf("%w: storage already holds a repository", ErrConflict)
	} else if !errors.Is(err, ErrBlobNotFound) {
		return nil, err
	}
	if err := checkRootSelf(root); err != nil {
		return nil, err
	}
	r := newRepository(store, opts)
	r.root = root
	r.rootPending = true
	r.targets[manifest.RoleTargets] = metadata.Targets(r.opts.now())
	r.dirty[manifest.RoleTargets] = true
	return r, nil
}

func newRepository(store Storage, opts RepositoryOptions) *Repository {
	return &Repository{
		store:     store,
		opts:      opts,
		targets:   map[string]*manifest.Metadata[manifest.Targets]{},
		published: map[string]int64{},
		dirty:     map[string]bool{},
		staged:    map[string][]byte{},
		presigned: map[string]*manifest.Metadata[manifest.Targets]{},

		revokedDelegated: map[string]map[string]bool{},
		pending:          map[string]*spooled{},
		created:          map[string]bool{},
	}
}

// checkRootSelf checks that root meets its own root threshold, by this
// package's policy and by go-tuf's VerifyDelegate. Signatures from keys the
// root does not list for itself are ignored here, as clients ignore them:
// a rotated root legitimately carries the old root keys' signatures.
func checkRootSelf(root *manifest.Metadata[manifest.Root]) error {
	p, err := PolicyFromRoot(&root.Signed)
	if err != nil {
		return err
	}
	payload, err := Payload(root)
	if err != nil {
		return err
	}
	rp, _ := p.Role(manifest.RoleRoot)
	var own []manifest.Signature
	for _, s := range root.Signatures {
		if _, ok := rp.Keys[s.KeyID]; ok {
			own = append(own, s)
		}
	}
	if _, err := p.Check(manifest.RoleRoot, payload, own); err != nil {
		return err
	}
	return manifest.TranslateError(root.VerifyDelegate(manifest.RoleRoot, root))
}

// OpenRepository loads the repository published in store.
func OpenRepository(ctx context.Context, store Storage, opts RepositoryOptions) (*Repository, error) {
	r := newRepository(store, opts)
	b, err := getBlob(ctx, store, MetadataDir+"/root.json", MaxDocumentSize)
	if errors.Is(err, ErrBlobNotFound) {
		return nil, ErrNotInitialized
	}
	if err != nil {
		return nil, err
	}
	if r.root, err = manifest.ParseUnverified[manifest.Root](manifest.RoleRoot, b, documentLimits); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedDocument, err)
	}
	if err := checkRootSelf(r.root); err != nil {
		return nil, err
	}
	// A publish that died between writing N.root.json and root.json leaves
	// a newer root that clients may already trust: adopt it (and rewrite
	// root.json at the next Publish) rather than ever signing a different
	// document under the same version.
	for {
		b, err := getBlob(ctx, store, fmt.Sprintf("%s/%d.root.json", MetadataDir, r.root.Signed.Version+1), MaxDocumentSize)
		if errors.Is(err, ErrBlobNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		next, err := manifest.ParseUnverified[manifest.Root](manifest.RoleRoot, b, documentLimits)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformedDocument, err)
		}
		if _, err := VerifyRootRotation(r.root, next); err != nil {
			return nil, err
		}
		r.root = next
		r.rootPending, r.rootAdopted = true, true
	}
	if v := r.root.Signed.Version; v > 1 {
		b, err := getBlob(ctx, store, fmt.Sprintf("%s/%d.root.json", MetadataDir, v-1), MaxDocumentSize)
		if err == nil {
			r.prevRoot, _ = manifest.ParseUnverified[manifest.Root](manifest.RoleRoot, b, documentLimits)
		}
	}
	b, err = getBlob(ctx, store, MetadataDir+"/timestamp.json", MaxDocumentSize)
	if err != nil {
		return nil, err
	}
	if r.timestamp, err = manifest.ParseUnverified[manifest.Timestamp](manifest.RoleTimestamp, b, documentLimits); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedDocument, err)
	}
	// A publisher that died after its commit point on a bucket left its
	// timestamp only in the claim: finish its copy.
	if err := r.rollForward(ctx); err != nil {
		return nil, err
	}
	snapMeta := r.timestamp.Signed.Meta["snapshot.json"]
	if snapMeta == nil {
		return nil, fmt.Errorf("%w: timestamp has no snapshot.json", ErrMalformedDocument)
	}
	b, err = getBlob(ctx, store, r.metaName(manifest.RoleSnapshot, snapMeta.Version), MaxDocumentSize)
	if err != nil {
		return nil, err
	}
	if r.snapshot, err = manifest.ParseUnverified[manifest.Snapshot](manifest.RoleSnapshot, b, documentLimits); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedDocument, err)
	}
	for file, mf := range r.snapshot.Signed.Meta {
		role, ok := strings.CutSuffix(file, ".json")
		if !ok || (role != manifest.RoleTargets && role != manifest.RoleRolloutControl && checkRoleName(role) != nil) {
			return nil, fmt.Errorf("%w: snapshot lists %q", ErrMalformedDocument, clipText(file))
		}
		b, err := getBlob(ctx, store, r.metaName(role, mf.Version), MaxDocumentSize)
		if err != nil {
			return nil, err
		}
		// The one-pass decoder, as devices use: a catalogue of 100,000
		// targets opens in a fraction of go-tuf's time and garbage.
		p, err := manifest.ParseTargetsUnverified(role, b, documentLimits)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformedDocument, err)
		}
		r.targets[role] = p.Metadata
		r.published[role] = p.Metadata.Signed.Version
	}
	if _, err := r.policy(); err != nil {
		return nil, err
	}
	if err := r.verifyStored(); err != nil {
		return nil, err
	}
	return r, nil
}

// verifyStored checks every loaded document against its delegator, as a
// client would. Storage is the update server's, and a server with stolen
// online keys could otherwise slip a target into a stored targets file
// that the next offline Publish would then re-sign with the real key:
// forged firmware laundered through the release engineer.
func (r *Repository) verifyStored() error {
	check := func(role string, err error) error {
		if err != nil {
			return fmt.Errorf("%w: stored %q metadata does not verify: %v", manifest.ErrThreshold, role, manifest.TranslateError(err))
		}
		return nil
	}
	// Stored metadata was signed under the root published with it; a root
	// adopted from a crashed publish is not that one yet.
	root := r.root
	if r.rootPending && r.prevRoot != nil {
		root = r.prevRoot
	}
	if err := check(manifest.RoleTimestamp, root.VerifyDelegate(manifest.RoleTimestamp, r.timestamp)); err != nil {
		return err
	}
	if err := check(manifest.RoleSnapshot, root.VerifyDelegate(manifest.RoleSnapshot, r.snapshot)); err != nil {
		return err
	}
	if r.timestamp.Signed.Meta["snapshot.json"].Version != r.snapshot.Signed.Version {
		return fmt.Errorf("%w: timestamp names snapshot %d, storage holds %d", ErrConflict, r.timestamp.Signed.Meta["snapshot.json"].Version, r.snapshot.Signed.Version)
	}
	for role, md := range r.targets {
		if want := r.snapshot.Signed.Meta[role+".json"].Version; md.Signed.Version != want {
			return fmt.Errorf("%w: snapshot names %s version %d, storage holds %d", ErrConflict, role, want, md.Signed.Version)
		}
		if role == manifest.RoleTargets {
			if err := check(role, root.VerifyDelegate(role, md)); err != nil {
				return err
			}
			continue
		}
		if err := r.verifyDelegated(role, r.targets); err != nil {
			return fmt.Errorf("%w: stored metadata: %v", manifest.ErrThreshold, err)
		}
	}
	return nil
}

// metaName is the storage name of a role's metadata at version: with
// consistent snapshots "metadata/VERSION.ROLE.json" (so a client mid-update
// keeps reading the versions its snapshot names), else "metadata/ROLE.json".
func (r *Repository) metaName(role string, version int64) string {
	if r.root.Signed.ConsistentSnapshot {
		return fmt.Sprintf("%s/%d.%s.json", MetadataDir, version, role)
	}
	return fmt.Sprintf("%s/%s.json", MetadataDir, role)
}

// Root returns the current (possibly staged) root document.
func (r *Repository) Root() *manifest.Metadata[manifest.Root] { return r.root }

// Targets returns the working copy of a targets role, or false.
func (r *Repository) Targets(role string) (*manifest.Metadata[manifest.Targets], bool) {
	t, ok := r.targets[role]
	return t, ok
}

// Snapshot returns the last published snapshot (the one the timestamp
// names), or nil before the first Publish.
func (r *Repository) Snapshot() *manifest.Metadata[manifest.Snapshot] { return r.snapshot }

// Timestamp returns the last published timestamp, or nil before the first
// Publish.
func (r *Repository) Timestamp() *manifest.Metadata[manifest.Timestamp] { return r.timestamp }

// Policy returns the role policies of the current (possibly staged) root
// and of every delegation, with the keys the previous root listed and the
// current one does not marked revoked.
func (r *Repository) Policy() (*Policy, error) { return r.policy() }

func (r *Repository) policy() (*Policy, error) {
	p, err := PolicyFromRoot(&r.root.Signed)
	if err != nil {
		return nil, err
	}
	if r.prevRoot != nil {
		p.NoteRevoked(&r.prevRoot.Signed)
	}
	names := make([]string, 0, len(r.targets))
	for n := range r.targets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := p.AddDelegations(r.targets[n].Signed.Delegations); err != nil {
			return nil, fmt.Errorf("delegations of %q: %w", n, err)
		}
	}
	for role, ids := range r.revokedDelegated {
		for id := range ids {
			if p.revoked[role] == nil {
				p.revoked[role] = map[string]bool{}
			}
			p.revoked[role][id] = true
		}
	}
	return p, nil
}

// Close removes the spool files of targets that were added but not
// published.
func (r *Repository) Close() error {
	for name, s := range r.pending {
		os.Remove(s.file)
		delete(r.pending, name)
	}
	return nil
}
