package main

import (
	"context"
	"fmt"
	"time"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

func cmdInit(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "init", "--repo DIR --root-key K[,K...] --targets-key K[,K...] --snapshot-key K --timestamp-key K [--ROLE-threshold N]", `
Creates a repository in DIR (which must not hold one) with the given keys
and thresholds for the four top-level roles, signs root version 1 and
publishes the empty targets role, snapshot and timestamp.

Keys are PEM files or pkcs11: references; each role flag takes a
comma-separated list and may be repeated. A "PUBLIC KEY" PEM file adds a
key that is held elsewhere; the private keys present must meet the root
threshold and the targets, snapshot and timestamp thresholds, since the
first publish signs all four roles.

A root or targets key that is also a snapshot or timestamp key is
refused (the update server holds those, and must not be able to sign
firmware or a root) unless --allow-shared-keys says it is a test setup.
Make keys with "release keygen". Each --ROLE-expiry sets how long each
version of the role stays valid (90d, 36h); it must be positive.

Clients bootstrap from DIR/metadata/1.root.json.`)
	repoDir := fs.String("repo", "", "repository directory to create")
	passEnv := fs.String("passphrase-env", "", "environment variable holding the passphrase of encrypted PEM keys")
	roles := []string{manifest.RoleRoot, manifest.RoleTargets, manifest.RoleSnapshot, manifest.RoleTimestamp}
	keyFlags := map[string]*listFlag{}
	thresholds := map[string]*int{}
	for _, role := range roles {
		keyFlags[role] = &listFlag{}
		fs.Var(keyFlags[role], role+"-key", "key(s) of the "+role+" role: "+keyHelp)
		thresholds[role] = fs.Int(role+"-threshold", 1, "signatures the "+role+" role needs")
	}
	expiry := expiryFlags(fs, roles...)
	allowShared := fs.Bool("allow-shared-keys", false, "allow a root or targets key to be a snapshot or timestamp key too (test setups only)")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if *repoDir == "" {
		return usageErr("--repo is required")
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected arguments %q", fs.Args())
	}
	kr := &keyring{passEnv: *passEnv}
	defer kr.close()
	spec := sign.RootSpec{Roles: map[string]sign.RoleKeys{}}
	var signers []*sign.Signer
	for _, role := range roles {
		refs := *keyFlags[role]
		if len(refs) == 0 {
			return usageErr("--%s-key is required", role)
		}
		rk := sign.RoleKeys{Threshold: *thresholds[role]}
		for _, ref := range refs {
			key, s, err := kr.resolve(ctx, ref)
			if err != nil {
				return err
			}
			rk.Keys = append(rk.Keys, key)
			// Private keys sign the first version; public-only ones are
			// listed for later ceremonies.
			if s != nil {
				signers = append(signers, s)
			}
		}
		spec.Roles[role] = rk
	}
	if err := sign.CheckRoleSeparation(spec); err != nil && !*allowShared {
		return fmt.Errorf("%w\n  make one key per role with release keygen (or pass --allow-shared-keys for a test repository)", err)
	}
	opts := sign.RepositoryOptions{}
	applyExpiry(&opts, expiry)
	root, err := sign.NewRoot(spec, time.Now().Add(opts.RootExpiry))
	if err != nil {
		return err
	}
	policy, err := sign.PolicyFromRoot(&root.Signed)
	if err != nil {
		return err
	}
	var rootSigners []*sign.Signer
	for _, s := range signers {
		if policy.Authorize(manifest.RoleRoot, s.KeyID()) == nil {
			rootSigners = append(rootSigners, s)
		}
	}
	rep, err := sign.SignRole(ctx, policy, manifest.RoleRoot, root, rootSigners)
	if err != nil {
		return err
	}
	if !rep.Met {
		return fmt.Errorf("root needs %d signatures, only %d private root key(s) given", rep.Threshold, len(rep.SignedBy))
	}
	store, closeStore, err := openStorage(ctx, *repoDir)
	if err != nil {
		return err
	}
	s := &session{dir: *repoDir, store: store, closeStore: closeStore}
	if s.repo, err = sign.CreateRepository(ctx, store, root, opts); err != nil {
		closeStore()
		return err
	}
	defer s.close()
	if err := s.publish(ctx, e, signers); err != nil {
		return err
	}
	e.printf("created %s: root version 1, clients bootstrap from %s/metadata/1.root.json\n", *repoDir, *repoDir)
	return nil
}
