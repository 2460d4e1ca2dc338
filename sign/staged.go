package sign

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/otaseal/otaseal/manifest"
)

// Persistent staging, for a k-of-n ceremony that spans machines and days:
//
//  1. On the coordinator: OpenRepository, stage changes (AddFirmware, ...),
//     SaveStaged to a file.
//  2. Wherever the ceremony continues: OpenRepository on the same
//     storage, ResumeStaged from the file, ExportRole for the key holders
//     (SignDetached on their machines, Merge back), ImportSigned, and
//     either SaveStaged again or Publish.
//
// A Repository pins its staging clock the first time it exports a role or
// saves its staged changes, and the saved form carries that time: every
// machine that resumes it makes the same next targets documents, byte for
// byte, so signatures collected anywhere fit together. Publish unpins;
// snapshot and timestamp always take the current time.

// StagedFormat is the first line of a saved staging file.
const StagedFormat = "otaseal-staged-changes"

// StagedVersion is the version of the saved form SaveStaged writes and the
// only one ResumeStaged reads.
const StagedVersion = 1

// MaxStagedHeaderSize bounds the part of a saved staging file before the
// target files' contents: the changed targets documents, the signed ones
// and a staged root (a 2^14-bin hash delegation fits with room to spare).
const MaxStagedHeaderSize = 4 * MaxDocumentSize

// ErrMalformedStaged marks a saved staging file that ResumeStaged cannot
// read or that does not fit together.
var ErrMalformedStaged = errors.New("sign: malformed staged changes")

// stagedHeader is the JSON part of a saved staging file.
type stagedHeader struct {
	Version int        `json:"version"`
	Base    stagedBase `json:"base"`
	// PinnedAt is the time the next targets documents are made at.
	PinnedAt time.Time `json:"pinned_at"`
	// Roles holds the working copy of every changed targets role.
	Roles map[string]json.RawMessage `json:"roles"`
	// Files lists the staged target files whose contents follow the
	// header, in this order.
	Files []stagedFile `json:"files"`
	// Exported lists the roles exported for offline signing; Signed holds
	// the signed documents ImportSigned accepted.
	Exported []string                   `json:"exported,omitempty"`
	Signed   map[string]json.RawMessage `json:"signed,omitempty"`
	// Root is a signed successor root staged by SetRoot.
	Root json.RawMessage `json:"root,omitempty"`
	// Revoked lists, per delegated role, the keys SetDelegationKeys took
	// away.
	Revoked map[string][]string `json:"revoked,omitempty"`
}

// stagedBase is the published state changes were staged against: the root
// version and the published version of every targets role (as the snapshot
// lists them). Resuming onto another state is a conflict. What the online
// keys alone publish meanwhile (timestamp, snapshot, the rollout control)
// is not: an update server refreshes those while a k-of-n ceremony takes
// days, and the next Publish makes new ones anyway. The rollout control
// counts only when the staged changes touch it.
type stagedBase struct {
	RootVersion int64            `json:"root_version"`
	Roles       map[string]int64 `json:"roles"`
}

// conflict reports how cur differs from b, or nil.
func (b stagedBase) conflict(cur stagedBase) error {
	if b.RootVersion != cur.RootVersion {
		return fmt.Errorf("%w: changes were staged against root %d, the repository is at root %d", ErrConflict, b.RootVersion, cur.RootVersion)
	}
	for _, role := range slices.Sorted(maps.Keys(cur.Roles)) {
		if b.Roles[role] != cur.Roles[role] {
			return fmt.Errorf("%w: changes were staged against %s version %d, the repository has published version %d since",
				ErrConflict, role, b.Roles[role], cur.Roles[role])
		}
	}
	for role := range b.Roles {
		if _, ok := cur.Roles[role]; !ok {
			return fmt.Errorf("%w: changes were staged against role %s, which the repository no longer lists", ErrConflict, clipText(role))
		}
	}
	return nil
}

type stagedFile struct {
	Path   string `json:"path"`
	Length int64  `json:"length"`
}

// StagedChanges summarises what a Repository has staged and not published.
type StagedChanges struct {
	Targets  []string  // target files added, sorted
	Roles    []string  // targets roles with changes, sorted
	Root     bool      // a new root waits to be published
	PinnedAt time.Time // when the next targets documents are made; zero until pinned
}

// StagedChanges reports what the next Publish would publish besides fresh
// snapshot and timestamp.
func (r *Repository) StagedChanges() StagedChanges {
	return StagedChanges{
		Targets:  slices.Sorted(maps.Keys(r.pending)),
		Roles:    slices.Sorted(maps.Keys(r.dirty)),
		Root:     r.rootPending,
		PinnedAt: r.pinned,
	}
}

func (r *Repository) hasStaged() bool {
	return len(r.dirty) > 0 || len(r.pending) > 0 || r.rootPending && !r.rootAdopted
}

// pinClock fixes the time the next targets documents are made at, once.
func (r *Repository) pinClock() time.Time {
	if r.pinned.IsZero() {
		r.pinned = r.opts.now().Truncate(time.Second)
	}
	return r.pinned
}

// base is the published state staged changes rest on; withControl says
// whether the rollout control's version counts.
func (r *Repository) base(withControl bool) (stagedBase, error) {
	if r.timestamp == nil || r.snapshot == nil {
		return stagedBase{}, fmt.Errorf("%w: nothing published yet; publish the new repository first", ErrNotInitialized)
	}
	b := stagedBase{RootVersion: r.root.Signed.Version, Roles: map[string]int64{}}
	for name, meta := range r.snapshot.Signed.Meta {
		role := strings.TrimSuffix(name, ".json")
		if role != manifest.RoleRolloutControl || withControl {
			b.Roles[role] = meta.Version
		}
	}
	if r.rootPending && !r.rootAdopted {
		b.RootVersion--
	}
	return b, nil
}

// SaveStaged writes every change staged since the last Publish to w:
// target files with their contents, changed and new targets roles, roles
// exported for signing and signed documents imported back, a staged root,
// and the pinned clock (pinning it now if it was not). ResumeStaged on a
// Repository opened on the same published state stages them again. The
// Repository itself is unchanged apart from the pin.
//
// The saved form holds no secrets, but it is what key holders will sign:
// keep it where a release engineer would keep the images.
func (r *Repository) SaveStaged(w io.Writer) error {
	base, err := r.base(r.dirty[manifest.RoleRolloutControl])
	if err != nil {
		return err
	}
	h := stagedHeader{
		Version:  StagedVersion,
		Base:     base,
		PinnedAt: r.pinClock(),
		Roles:    map[string]json.RawMessage{},
		Files:    []stagedFile{},
		Exported: slices.Sorted(maps.Keys(r.staged)),
	}
	for role := range r.dirty {
		if h.Roles[role], err = r.targets[role].ToBytes(false); err != nil {
			return err
		}
	}
	paths := slices.Sorted(maps.Keys(r.pending))
	for _, p := range paths {
		h.Files = append(h.Files, stagedFile{Path: p, Length: r.pending[p].tf.Length})
	}
	if len(r.presigned) > 0 {
		h.Signed = map[string]json.RawMessage{}
		for role, md := range r.presigned {
			if h.Signed[role], err = md.ToBytes(false); err != nil {
				return err
			}
		}
	}
	if r.rootPending && !r.rootAdopted {
		if h.Root, err = r.root.ToBytes(false); err != nil {
			return err
		}
	}
	if len(r.revokedDelegated) > 0 {
		h.Revoked = map[string][]string{}
		for role, ids := range r.revokedDelegated {
			h.Revoked[role] = slices.Sorted(maps.Keys(ids))
		}
	}
	header, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("sign: saving staged changes: %w", err)
	}
	if len(header) > MaxStagedHeaderSize {
		return fmt.Errorf("%w: staged metadata of %d bytes (limit %d)", ErrTooLarge, len(header), MaxStagedHeaderSize)
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%s\n%d\n", StagedFormat, len(header))
	bw.Write(header)
	for _, p := range paths {
		if err := copyFileTo(bw, r.pending[p].file); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("sign: saving staged changes: %w", err)
	}
	return nil
}

func copyFileTo(w io.Writer, name string) error {
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("sign: saving staged changes: %w", err)
	}
	defer f.Close()
	if _, err := io.Copy(w, f); err != nil {
		return fmt.Errorf("sign: saving staged changes: %w", err)
	}
	return nil
}

// ResumeStaged reads changes saved by SaveStaged from rd and stages them
// on r, which must have nothing staged. The saved form is untrusted input:
// every length is bounded, every target file must match the length and
// hashes its role lists, every document must parse and fit the
// repository's delegations, signed documents must meet their thresholds,
// and a staged root must be a valid rotation; anything else is
// ErrMalformedStaged (or the error of the check that failed) and r is left
// as it was. Changes staged against another published state (someone
// published since) are refused with ErrConflict: stage them again.
//
// r then uses the saved pinned clock for its next targets documents, so
// ExportRole here returns exactly what it returned where the changes were
// staged.
func (r *Repository) ResumeStaged(ctx context.Context, rd io.Reader) (err error) {
	if r.hasStaged() {
		return fmt.Errorf("%w: the repository already has staged changes", ErrConflict)
	}
	h, err := readStagedHeader(rd)
	if err != nil {
		return err
	}
	_, withControl := h.Base.Roles[manifest.RoleRolloutControl]
	base, err := r.base(withControl)
	if err != nil {
		return err
	}
	if err := h.Base.conflict(base); err != nil {
		return err
	}
	published := maps.Clone(r.targets)
	undo := r.saveState()
	defer func() {
		if err != nil {
			undo()
		}
	}()
	if err := r.resumeRoles(h); err != nil {
		return err
	}
	for _, f := range h.Files {
		if err := r.resumeFile(ctx, rd, f); err != nil {
			return err
		}
	}
	if _, err := io.ReadFull(rd, make([]byte, 1)); err != io.EOF {
		return fmt.Errorf("%w: data after the last target file", ErrMalformedStaged)
	}
	if err := r.checkResumedTargets(h, published); err != nil {
		return err
	}
	if h.Root != nil {
		d, err := ParseDocument(h.Root)
		if err != nil {
			return err
		}
		next, ok := d.Root()
		if !ok {
			return fmt.Errorf("%w: staged root is a %s document", ErrMalformedStaged, d.Type)
		}
		if err := r.SetRoot(next); err != nil {
			return err
		}
	}
	r.pinned = h.PinnedAt.UTC()
	for _, role := range h.Exported {
		if _, err := r.ExportRole(role); err != nil {
			return err
		}
	}
	for role, doc := range h.Signed {
		if err := r.ImportSigned(role, doc); err != nil {
			return err
		}
	}
	return nil
}

// readStagedHeader reads the format line, the header length and the
// header, and checks the header's shape.
func readStagedHeader(rd io.Reader) (*stagedHeader, error) {
	line, err := readLine(rd, len(StagedFormat)+1)
	if err != nil || line != StagedFormat {
		return nil, fmt.Errorf("%w: not a staged changes file", ErrMalformedStaged)
	}
	line, err = readLine(rd, 20)
	if err != nil {
		return nil, fmt.Errorf("%w: header length: %v", ErrMalformedStaged, err)
	}
	n, err := strconv.ParseInt(line, 10, 64)
	if err != nil || n < 2 || line != strconv.FormatInt(n, 10) {
		return nil, fmt.Errorf("%w: header length %q", ErrMalformedStaged, clipText(line))
	}
	if n > MaxStagedHeaderSize {
		return nil, fmt.Errorf("%w: staged metadata of %d bytes (limit %d)", ErrTooLarge, n, MaxStagedHeaderSize)
	}
	data, err := io.ReadAll(io.LimitReader(rd, n))
	if err != nil {
		return nil, fmt.Errorf("sign: reading staged changes: %w", err)
	}
	if int64(len(data)) != n {
		return nil, fmt.Errorf("%w: header cut short", ErrMalformedStaged)
	}
	var h stagedHeader
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedStaged, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the header", ErrMalformedStaged)
	}
	if h.Version != StagedVersion {
		return nil, fmt.Errorf("%w: version %d, this package reads version %d", ErrMalformedStaged, h.Version, StagedVersion)
	}
	return &h, nil
}

// readLine reads up to max bytes and a newline, one byte at a time so that
// nothing after the line is consumed.
func readLine(rd io.Reader, max int) (string, error) {
	var b [1]byte
	var line []byte
	for len(line) <= max {
		if _, err := io.ReadFull(rd, b[:]); err != nil {
			return "", err
		}
		if b[0] == '\n' {
			return string(line), nil
		}
		line = append(line, b[0])
	}
	return "", fmt.Errorf("line longer than %d bytes", max)
}

// saveState returns a function that puts back everything ResumeStaged
// may change. Documents are replaced in the maps, never edited, so copying
// the maps is enough.
func (r *Repository) saveState() func() {
	targets, dirty, staged, presigned := maps.Clone(r.targets), maps.Clone(r.dirty), maps.Clone(r.staged), maps.Clone(r.presigned)
	revoked, pending := maps.Clone(r.revokedDelegated), maps.Clone(r.pending)
	root, prevRoot, rootPending, pinned := r.root, r.prevRoot, r.rootPending, r.pinned
	return func() {
		for p, s := range r.pending {
			if pending[p] != s {
				os.Remove(s.file)
			}
		}
		r.targets, r.dirty, r.staged, r.presigned = targets, dirty, staged, presigned
		r.revokedDelegated, r.pending = revoked, pending
		r.root, r.prevRoot, r.rootPending, r.pinned = root, prevRoot, rootPending, pinned
	}
}

// resumeRoles installs the saved working copies of the changed targets
// roles and the revoked delegated keys, and checks that the delegations
// still make a valid policy.
func (r *Repository) resumeRoles(h *stagedHeader) error {
	for role, raw := range h.Roles {
		if role != manifest.RoleTargets {
			if err := checkRoleName(role); err != nil {
				return fmt.Errorf("%w: %w", ErrMalformedStaged, err)
			}
		}
		md, err := parseTargetsDocument(role, raw)
		if err != nil {
			return err
		}
		// The working copy keeps the version last published (1 for a
		// new role): Publish and ExportRole number the next one.
		want := int64(1)
		if cur, ok := r.targets[role]; ok {
			want = cur.Signed.Version
		}
		if md.Signed.Version != want {
			return fmt.Errorf("%w: role %q at version %d, want %d", ErrMalformedStaged, role, md.Signed.Version, want)
		}
		r.targets[role] = md
		r.dirty[role] = true
	}
	for role, ids := range h.Revoked {
		for _, id := range ids {
			if !isLowerHex(id, 64, 64) {
				return fmt.Errorf("%w: revoked keyid of role %q", ErrMalformedStaged, clipText(role))
			}
			if r.revokedDelegated[role] == nil {
				r.revokedDelegated[role] = map[string]bool{}
			}
			r.revokedDelegated[role][id] = true
		}
	}
	if _, err := r.policy(); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformedStaged, err)
	}
	// Every role must be reachable from the top-level targets role, as
	// clients reach it: a working copy nobody delegates to would be
	// published into the snapshot and never read.
	for role := range h.Roles {
		if role == manifest.RoleTargets {
			continue
		}
		if _, ok := r.delegator(role, nil); !ok {
			return fmt.Errorf("%w: no role delegates to %q", ErrMalformedStaged, role)
		}
	}
	return nil
}

// checkResumedTargets checks that every target a resumed role lists is
// either staged with its content or published with the same length,
// hashes and custom data: otherwise Publish would sign metadata naming a
// file that storage does not hold.
func (r *Repository) checkResumedTargets(h *stagedHeader, published map[string]*manifest.Metadata[manifest.Targets]) error {
	for role := range h.Roles {
		for p, tf := range r.targets[role].Signed.Targets {
			if _, ok := r.pending[p]; ok {
				continue
			}
			found := false
			for _, md := range published {
				if old, ok := md.Signed.Targets[p]; ok && old.Equal(*tf) {
					found = true
					break
				}
			}
			if !found {
				return fmt.Errorf("%w: role %q lists %q without its content", ErrMalformedStaged, role, clipText(p))
			}
		}
	}
	return nil
}

func parseTargetsDocument(role string, raw []byte) (md *manifest.Metadata[manifest.Targets], err error) {
	d, err := ParseDocument(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: role %q: %w", ErrMalformedStaged, clipText(role), err)
	}
	md, ok := d.Targets()
	if !ok {
		return nil, fmt.Errorf("%w: role %q holds a %s document", ErrMalformedStaged, clipText(role), d.Type)
	}
	return md, nil
}

// resumeFile reads one staged target file's content from rd and checks it
// against the target its role lists.
func (r *Repository) resumeFile(ctx context.Context, rd io.Reader, f stagedFile) error {
	if err := CheckName(f.Path); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformedStaged, err)
	}
	tf, role, ok := r.findTarget(f.Path)
	switch {
	case !ok || !r.dirty[role]:
		return fmt.Errorf("%w: file %q is in no changed role", ErrMalformedStaged, clipText(f.Path))
	case tf.Length != f.Length:
		return fmt.Errorf("%w: file %q has length %d, its target %d", ErrMalformedStaged, f.Path, f.Length, tf.Length)
	case r.pending[f.Path] != nil:
		return fmt.Errorf("%w: file %q twice", ErrMalformedStaged, f.Path)
	}
	if want, err := r.roleFor(f.Path); err != nil || want != role {
		return fmt.Errorf("%w: target %q is listed by %q, which is not the role delegated that path", ErrMalformedStaged, f.Path, role)
	}
	s, err := r.spool(ctx, io.LimitReader(rd, f.Length))
	if err != nil {
		return err
	}
	if s.tf.Length != tf.Length || !bytes.Equal(s.tf.Hashes["sha256"], tf.Hashes["sha256"]) || !bytes.Equal(s.tf.Hashes["sha512"], tf.Hashes["sha512"]) {
		os.Remove(s.file)
		return fmt.Errorf("%w: content of %q does not match its target's length and hashes", ErrMalformedStaged, f.Path)
	}
	s.tf = tf
	r.pending[f.Path] = s
	return nil
}
