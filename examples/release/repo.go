package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

// session is one open repository plus the changes staged beside it for an
// offline ceremony.
type session struct {
	dir    string
	store  *sign.DirStorage
	repo   *sign.Repository
	plan   plan
	pinned time.Time // when set, the repository's clock reads this
	record bool      // stage keeps copies of added targets for later commands
}

// plan is the staged, unpublished changes, kept in DIR.staged/plan.json
// with a copy of every staged file. A Repository keeps staged changes in
// memory only, so each command replays the plan; an export pins the clock
// to its own time so that the replayed document is byte for byte the one
// the key holders signed.
type plan struct {
	ExportedAt time.Time    `json:"exported_at,omitzero"`
	Items      []stagedItem `json:"items"`
	// Signed maps a targets role to the file of its merged document,
	// once its threshold was met.
	Signed map[string]string `json:"signed,omitempty"`
	// Root is a signed successor root waiting for publish.
	Root string `json:"root,omitempty"`
}

// stagedItem is one staged target: a firmware image or a delta.
type stagedItem struct {
	Path     string             `json:"path"`
	Blob     string             `json:"blob"` // file name in the staging directory
	Firmware *manifest.Firmware `json:"firmware,omitempty"`
	Delta    *manifest.Delta    `json:"delta,omitempty"`
}

func stagingDir(repoDir string) string { return filepath.Clean(repoDir) + ".staged" }

func (s *session) now() time.Time {
	if !s.pinned.IsZero() {
		return s.pinned
	}
	return time.Now()
}

// openSession opens the repository in dir and replays its staged changes.
func openSession(ctx context.Context, dir string) (*session, error) {
	if dir == "" {
		return nil, usageErr("--repo is required")
	}
	if _, err := os.Stat(filepath.Join(dir, sign.MetadataDir)); err != nil {
		return nil, fmt.Errorf("%s is not a repository (run release init): %w", dir, err)
	}
	s := &session{dir: dir}
	var err error
	if s.store, err = sign.NewDirStorage(dir); err != nil {
		return nil, err
	}
	if err := s.loadPlan(); err != nil {
		return nil, err
	}
	s.pinned = s.plan.ExportedAt
	if s.repo, err = sign.OpenRepository(ctx, s.store, sign.RepositoryOptions{Now: s.now}); err != nil {
		return nil, err
	}
	for _, it := range s.plan.Items {
		if err := s.replay(ctx, it); err != nil {
			s.repo.Close()
			return nil, fmt.Errorf("replaying staged %s: %w", it.Path, err)
		}
	}
	if err := s.setStagedRoot(); err != nil {
		s.repo.Close()
		return nil, fmt.Errorf("staged root: %w", err)
	}
	return s, nil
}

func (s *session) close() { s.repo.Close() }

func (s *session) loadPlan() error {
	data, err := os.ReadFile(filepath.Join(stagingDir(s.dir), "plan.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, &s.plan); err != nil {
		return fmt.Errorf("staged changes: %w", err)
	}
	return nil
}

func (s *session) savePlan() error {
	dir := stagingDir(s.dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	data, err := json.MarshalIndent(s.plan, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "plan.json.tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "plan.json"))
}

// clearPlan forgets staged changes after they were published.
func (s *session) clearPlan() error {
	s.plan = plan{}
	return os.RemoveAll(stagingDir(s.dir))
}

func (s *session) staged() bool { return len(s.plan.Items) > 0 || s.plan.Root != "" }

// importSigned hands the merged documents of offline roles back to the
// repository. ExportRole runs first, on the pinned clock, so that the
// repository knows exactly which document it will accept.
func (s *session) importSigned() error {
	for role, file := range s.plan.Signed {
		if _, err := s.repo.ExportRole(role); err != nil {
			return err
		}
		data, err := os.ReadFile(filepath.Join(stagingDir(s.dir), file))
		if err != nil {
			return err
		}
		if err := s.repo.ImportSigned(role, data); err != nil {
			return fmt.Errorf("signed %s document: %w", role, err)
		}
	}
	return nil
}

// setStagedRoot installs the signed successor root kept in the staging
// directory.
func (s *session) setStagedRoot() error {
	if s.plan.Root == "" {
		return nil
	}
	data, err := os.ReadFile(filepath.Join(stagingDir(s.dir), s.plan.Root))
	if err != nil {
		return err
	}
	d, err := sign.ParseDocument(data)
	if err != nil {
		return err
	}
	next, ok := d.Root()
	if !ok {
		return fmt.Errorf("staged root is a %s document", d.Type)
	}
	return s.repo.SetRoot(next)
}

func (s *session) replay(ctx context.Context, it stagedItem) error {
	f, err := os.Open(filepath.Join(stagingDir(s.dir), it.Blob))
	if err != nil {
		return err
	}
	defer f.Close()
	switch {
	case it.Firmware != nil:
		return s.repo.AddFirmware(ctx, it.Path, f, *it.Firmware)
	case it.Delta != nil:
		return s.repo.AddDelta(ctx, it.Path, f, *it.Delta)
	}
	return fmt.Errorf("staged item %s is neither firmware nor delta", it.Path)
}

// stage records a target already added to the repository, with a copy of
// its content, for later commands. Any change voids an earlier export.
func (s *session) stage(ctx context.Context, it stagedItem, content func(path string) error) error {
	if !s.record {
		return nil
	}
	dir := stagingDir(s.dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	it.Blob = fmt.Sprintf("%03d-%s", len(s.plan.Items), strings.ReplaceAll(it.Path, "/", "_"))
	if err := content(filepath.Join(dir, it.Blob)); err != nil {
		return err
	}
	s.plan.Items = append(s.plan.Items, it)
	s.plan.ExportedAt = time.Time{}
	s.plan.Signed = nil
	return nil
}

// publish signs and writes everything staged with the keys given, then
// forgets the staged changes. The clock runs again: snapshot and timestamp
// get fresh expiries even when the targets document was exported earlier.
func (s *session) publish(ctx context.Context, e *env, signers []*sign.Signer) error {
	s.pinned = time.Time{}
	if err := s.repo.Publish(ctx, signers); err != nil {
		var te *manifest.ThresholdError
		if errors.As(err, &te) {
			return fmt.Errorf("%w\n  role %s needs %d signatures; signed by %d key(s): %s\n  give more keys of the role, or sign it offline (add --stage, export, sign, merge)",
				err, te.Role, te.Threshold, len(te.SignedBy), shortIDs(te.SignedBy))
		}
		return err
	}
	if err := s.clearPlan(); err != nil {
		return err
	}
	ts := s.repo.Timestamp()
	e.printf("published: timestamp version %d, expires %s\n", ts.Signed.Version, ts.Signed.Expires.UTC().Format(time.RFC3339))
	return nil
}

func shortIDs(ids []string) string {
	if len(ids) == 0 {
		return "none"
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = shortID(id)
	}
	return strings.Join(out, ", ")
}

func cmdPublish(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "publish", "--repo DIR --key K [--key K...]", `
Publishes the staged changes of the repository (for instance a targets
document whose threshold was met by merge) and re-signs snapshot and
timestamp. With nothing staged it only refreshes snapshot and timestamp,
which needs just those online keys.`)
	repoDir := fs.String("repo", "", "repository directory")
	passEnv := fs.String("passphrase-env", "", "environment variable holding the passphrase of encrypted PEM keys")
	var keys listFlag
	fs.Var(&keys, "key", "signing key: "+keyHelp+" (repeatable)")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if len(keys) == 0 {
		return usageErr("at least one --key is needed")
	}
	kr := &keyring{passEnv: *passEnv}
	defer kr.close()
	signers, err := kr.signers(ctx, keys)
	if err != nil {
		return err
	}
	s, err := openSession(ctx, *repoDir)
	if err != nil {
		return err
	}
	defer s.close()
	if err := s.importSigned(); err != nil {
		return err
	}
	return s.publish(ctx, e, signers)
}
