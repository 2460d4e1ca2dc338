package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

// session is one open repository with the changes staged beside it for an
// offline ceremony.
type session struct {
	dir   string // or bucket URL
	store sign.Storage
	// closeStore closes the bucket, if the repository is one.
	closeStore func()
	repo       *sign.Repository
	keys       *keyring // closed with the session, if set
	// resumed is set when the session resumed the changes staged beside
	// the repository; only then does publishing them forget the file.
	resumed bool
}

// stagingFile is where staged changes wait between commands: beside the
// repository, never inside it, so that unpublished images are not served.
// It is sign's saved staging form, and can be carried to another machine
// that holds a copy of the repository.
func stagingFile(repoDir string) string {
	if isBucketURL(repoDir) {
		return bucketStagingFile(repoDir)
	}
	return filepath.Clean(repoDir) + ".staged"
}

// openSession opens the repository in dir and resumes its staged changes.
func openSession(ctx context.Context, dir string) (*session, error) {
	return openSessionOpts(ctx, dir, sign.RepositoryOptions{})
}

// openSessionOpts is openSession with the lifetimes (and clock) of opts
// for the documents it signs.
func openSessionOpts(ctx context.Context, dir string, opts sign.RepositoryOptions) (*session, error) {
	s, err := openPublishedOpts(ctx, dir, opts)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(stagingFile(dir))
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err == nil {
		err = s.repo.ResumeStaged(ctx, f)
		f.Close()
	}
	if err != nil {
		s.repo.Close()
		return nil, fmt.Errorf("staged changes in %s: %w", stagingFile(dir), err)
	}
	s.resumed = true
	return s, nil
}

// openPublished opens the repository in dir as published, leaving any
// changes staged beside it for their ceremony.
func openPublished(ctx context.Context, dir string) (*session, error) {
	return openPublishedOpts(ctx, dir, sign.RepositoryOptions{})
}

func openPublishedOpts(ctx context.Context, dir string, opts sign.RepositoryOptions) (*session, error) {
	if dir == "" {
		return nil, usageErr("--repo is required")
	}
	if err := repoExists(ctx, dir); err != nil {
		return nil, err
	}
	s := &session{dir: dir}
	var err error
	if s.store, s.closeStore, err = openStorage(ctx, dir); err != nil {
		return nil, err
	}
	if s.repo, err = sign.OpenRepository(ctx, s.store, opts); err != nil {
		s.closeStore()
		return nil, err
	}
	return s, nil
}

// close closes the repository and, if the session opened them, the
// signing keys.
func (s *session) close() {
	s.repo.Close()
	if s.closeStore != nil {
		s.closeStore()
	}
	if s.keys != nil {
		s.keys.close()
	}
}

// openSigning loads the signing keys, then opens the repository in dir
// with its staged changes: a key that cannot be loaded fails before the
// repository is touched.
func openSigning(ctx context.Context, dir, passEnv string, keys []string) (*session, []*sign.Signer, error) {
	return openSigningWith(ctx, openSession, dir, passEnv, keys)
}

// openSigningOpts is openSigning with the options of openSessionOpts.
func openSigningOpts(ctx context.Context, dir, passEnv string, keys []string, opts sign.RepositoryOptions) (*session, []*sign.Signer, error) {
	return openSigningWith(ctx, func(ctx context.Context, dir string) (*session, error) { return openSessionOpts(ctx, dir, opts) }, dir, passEnv, keys)
}

// openSigningWith is openSigning with open (openSession or openPublished)
// opening the repository.
func openSigningWith(ctx context.Context, open func(context.Context, string) (*session, error), dir, passEnv string, keys []string) (*session, []*sign.Signer, error) {
	kr := &keyring{passEnv: passEnv}
	signers, err := kr.signers(ctx, keys)
	if err != nil {
		kr.close()
		return nil, nil, err
	}
	s, err := open(ctx, dir)
	if err != nil {
		kr.close()
		return nil, nil, err
	}
	s.keys = kr
	return s, signers, nil
}

// save keeps the staged changes for later commands.
func (s *session) save() error {
	tmp := stagingFile(s.dir) + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	err = s.repo.SaveStaged(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, stagingFile(s.dir))
}

func (s *session) staged() bool {
	c := s.repo.StagedChanges()
	return len(c.Roles) > 0 || c.Root
}

// publish signs and writes everything staged with the keys given, then
// forgets the staged changes.
func (s *session) publish(ctx context.Context, e *env, signers []*sign.Signer) error {
	if err := s.repo.Publish(ctx, signers); err != nil {
		var te *manifest.ThresholdError
		if errors.As(err, &te) {
			return fmt.Errorf("%w\n  role %s needs %d signatures; signed by %d key(s): %s%s\n  give more keys of the role, or sign it offline (add --stage, export, sign, merge)",
				err, te.Role, te.Threshold, len(te.SignedBy), shortIDs(te.SignedBy), whyNotCounted(s, te.Role, signers))
		}
		if errors.Is(err, sign.ErrConflict) {
			return fmt.Errorf("%w\n  another publisher changed the repository meanwhile and nothing of this run is visible; run the command again", err)
		}
		return err
	}
	// A session that did not resume the staged changes published none of
	// them: they wait for their ceremony.
	if s.resumed {
		if err := os.Remove(stagingFile(s.dir)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	ts := s.repo.Timestamp()
	e.printf("published: timestamp version %d, expires %s\n", ts.Signed.Version, ts.Signed.Expires.UTC().Format(time.RFC3339))
	return nil
}

// finish keeps a change for a k-of-n ceremony (stage) or publishes it
// with signers.
func (s *session) finish(ctx context.Context, e *env, stage bool, signers []*sign.Signer) error {
	if stage {
		if err := s.save(); err != nil {
			return err
		}
		e.printf("staged in %s; next: release export --repo %s --role targets --out FILE\n", stagingFile(s.dir), s.dir)
		return nil
	}
	return s.publish(ctx, e, signers)
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
	fs := newFlags(e, "publish", "--repo DIR [--renew ROLE]... --key K [--key K...]", `
Publishes the staged changes of the repository (for instance a targets
document whose threshold was met by merge) and re-signs snapshot and
timestamp. With nothing staged it only refreshes snapshot and timestamp,
which needs just those online keys. --renew targets (or a delegated
role) signs a new version of the role unchanged, with a new expiry: how
a targets role that expires soon, or has expired, is kept alive when no
release is due; it needs the role's keys.`)
	repoDir := fs.String("repo", "", "repository directory")
	passEnv := fs.String("passphrase-env", "", "environment variable holding the passphrase of encrypted PEM keys")
	var keys, renew listFlag
	fs.Var(&keys, "key", "signing key: "+keyHelp+" (repeatable)")
	fs.Var(&renew, "renew", "sign a new version of this targets role with a new expiry (repeatable)")
	expiry := expiryFlags(fs, manifest.RoleTargets)
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if len(keys) == 0 {
		return usageErr("at least one --key is needed")
	}
	opts := sign.RepositoryOptions{}
	applyExpiry(&opts, expiry)
	s, signers, err := openSigningOpts(ctx, *repoDir, *passEnv, keys, opts)
	if err != nil {
		return err
	}
	defer s.close()
	if err := checkSigners(s, keys, signers); err != nil {
		return err
	}
	for _, role := range renew {
		if err := s.repo.RenewTargets(role); err != nil {
			return usageErr("--renew: %v", err)
		}
	}
	if err := s.publish(ctx, e, signers); err != nil {
		return err
	}
	warnExpiries(e, s, nil)
	return nil
}
