package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

var topRoles = []string{manifest.RoleRoot, manifest.RoleTargets, manifest.RoleSnapshot, manifest.RoleTimestamp}

// resolveKeyID expands a keyid prefix (as inspect prints it) to the one
// key of spec it names.
func resolveKeyID(spec sign.RootSpec, prefix string) (string, error) {
	var found []string
	for _, rk := range spec.Roles {
		for _, k := range rk.Keys {
			id, err := sign.KeyID(k)
			if err != nil {
				return "", err
			}
			if strings.HasPrefix(id, strings.ToLower(prefix)) && !slices.Contains(found, id) {
				found = append(found, id)
			}
		}
	}
	switch {
	case len(prefix) < 8:
		return "", usageErr("key id %q: give at least 8 hex digits", prefix)
	case len(found) == 0:
		return "", fmt.Errorf("no role of the current root lists key %s", prefix)
	case len(found) > 1:
		return "", usageErr("key id prefix %q is ambiguous", prefix)
	}
	return found[0], nil
}

func hasKey(rk sign.RoleKeys, id string) bool {
	return slices.ContainsFunc(rk.Keys, func(k *manifest.Key) bool {
		kid, err := sign.KeyID(k)
		return err == nil && kid == id
	})
}

func cmdRotate(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "rotate", "--repo DIR --role ROLE [--add-key K]... [--remove-key KEYID]... [--threshold N] (--key K... | --export FILE)", `
Makes the next root version with keys added to or removed from one
top-level role and, optionally, a new threshold. A root rotation must be
signed by a threshold of the current root keys and a threshold of the
new root keys (TUF 5.3.4).

With every needed key at hand, pass them as --key: the old and new root
keys, and the keys of the role being rotated (the old and the new, so that
clients on either root accept the re-signed documents), plus snapshot and
timestamp. With --export the new root goes to FILE, signed by whatever
root keys --key gives, for the holders to sign with "release sign --role
root" and "release merge --role root". When the rotation changes the
targets keys and their holders are offline too, merge the root without
--key, then run "release export --role targets", have the new holders sign
it, and merge it with the snapshot and timestamp keys to publish both.

KEYID is a keyid as "release inspect" prints it (a unique prefix of at
least 8 hex digits is enough).

Every new root version expires --root-expiry after now. Without --role
and changes, rotate only renews the root: how a root that expires soon,
or has expired, is brought back (devices accept a new root signed by the
old root's keys even after the old one expired). A root or targets key
that would also be a snapshot or timestamp key is refused unless
--allow-shared-keys is given.`)
	repoDir := fs.String("repo", "", "repository directory")
	role := fs.String("role", "", "role to change: root, targets, snapshot or timestamp (none: only renew the root)")
	expiry := expiryFlags(fs, manifest.RoleRoot)
	allowShared := fs.Bool("allow-shared-keys", false, "allow a root or targets key to be a snapshot or timestamp key too (test setups only)")
	var add, remove, keys listFlag
	fs.Var(&add, "add-key", "key to add to the role: "+keyHelp+" or a PUBLIC KEY PEM (repeatable)")
	fs.Var(&remove, "remove-key", "keyid to remove from the role (repeatable)")
	threshold := fs.Int("threshold", 0, "new threshold of the role (0: keep)")
	export := fs.String("export", "", "write the new root to FILE for a k-of-n ceremony instead of publishing")
	passEnv := fs.String("passphrase-env", "", "environment variable holding the passphrase of encrypted PEM keys")
	fs.Var(&keys, "key", "signing key: "+keyHelp+" (repeatable)")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	renewOnly := *role == "" && len(add) == 0 && len(remove) == 0 && *threshold == 0
	if !renewOnly && !slices.Contains(topRoles, *role) {
		return usageErr("--role must be one of %s", strings.Join(topRoles, ", "))
	}
	if !renewOnly && len(add) == 0 && len(remove) == 0 && *threshold == 0 {
		return usageErr("nothing to change: give --add-key, --remove-key or --threshold (or no --role, to renew the root)")
	}
	if renewOnly && !expiry[manifest.RoleRoot].set {
		return usageErr("nothing to change: give --role with --add-key, --remove-key or --threshold, or --root-expiry to renew the root")
	}
	kr := &keyring{passEnv: *passEnv}
	defer kr.close()
	opts := sign.RepositoryOptions{}
	applyExpiry(&opts, expiry)
	s, err := openSessionOpts(ctx, *repoDir, opts)
	if err != nil {
		return err
	}
	defer s.close()
	spec := sign.SpecOf(&s.repo.Root().Signed)
	if renewOnly {
		e.printf("root: renewing, the new version expires %s\n", formatTime(e.now().Add(opts.RootExpiry)))
		return rotateRoot(ctx, e, s, kr, spec, keys, *export)
	}
	rk := spec.Roles[*role]
	for _, prefix := range remove {
		id, err := resolveKeyID(spec, prefix)
		if err != nil {
			return err
		}
		if !hasKey(rk, id) {
			return fmt.Errorf("role %s does not list key %s", *role, shortID(id))
		}
		rk = rk.Without(id)
		e.printf("%s: removing key %s\n", *role, shortID(id))
	}
	for _, ref := range add {
		k, _, err := kr.resolve(ctx, ref)
		if err != nil {
			return err
		}
		id, err := sign.KeyID(k)
		if err != nil {
			return err
		}
		if hasKey(rk, id) {
			return fmt.Errorf("role %s already lists key %s", *role, shortID(id))
		}
		rk.Keys = append(rk.Keys, k)
		e.printf("%s: adding key %s (%s)\n", *role, shortID(id), k.Scheme)
	}
	if *threshold > 0 {
		rk.Threshold = *threshold
	}
	if rk.Threshold > len(rk.Keys) {
		return usageErr("role %s would need %d signatures from %d key(s): lower it with --threshold", *role, rk.Threshold, len(rk.Keys))
	}
	spec.Roles[*role] = rk
	if err := sign.CheckRoleSeparation(spec); err != nil && !*allowShared {
		return fmt.Errorf("%w\n  give the role a key of its own (release keygen), or pass --allow-shared-keys for a test repository", err)
	}
	return rotateRoot(ctx, e, s, kr, spec, keys, *export)
}

func cmdRevoke(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "revoke", "--repo DIR --key-id KEYID [--role ROLE] [--threshold N] (--key K... | --export FILE)", `
Removes a compromised or retired key from every top-level role that lists
it (or only from --role) in a new root version. Clients that accept the
new root no longer trust the key, and "release merge" refuses its
signatures as revoked. Signing works as for "release rotate": the current
and new root thresholds must both be met, and roles that lose a key are
re-signed with their remaining keys, which --key must include.

Revoking a snapshot or timestamp key also recovers clients from a
fast-forward attack made with it (TUF 5.3.11).`)
	repoDir := fs.String("repo", "", "repository directory")
	keyID := fs.String("key-id", "", "keyid to revoke (a unique prefix of at least 8 hex digits)")
	role := fs.String("role", "", "revoke only from this role")
	threshold := fs.Int("threshold", 0, "new threshold for the roles that lose the key (0: keep, or lower to the keys left)")
	export := fs.String("export", "", "write the new root to FILE for a k-of-n ceremony instead of publishing")
	passEnv := fs.String("passphrase-env", "", "environment variable holding the passphrase of encrypted PEM keys")
	var keys listFlag
	fs.Var(&keys, "key", "signing key: "+keyHelp+" (repeatable)")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if *keyID == "" {
		return usageErr("--key-id is required")
	}
	if *role != "" && !slices.Contains(topRoles, *role) {
		return usageErr("--role must be one of %s", strings.Join(topRoles, ", "))
	}
	kr := &keyring{passEnv: *passEnv}
	defer kr.close()
	s, err := openSession(ctx, *repoDir)
	if err != nil {
		return err
	}
	defer s.close()
	spec := sign.SpecOf(&s.repo.Root().Signed)
	id, err := resolveKeyID(spec, *keyID)
	if err != nil {
		return err
	}
	changed := 0
	for _, r := range topRoles {
		rk := spec.Roles[r]
		if (*role != "" && r != *role) || !hasKey(rk, id) {
			continue
		}
		rk = rk.Without(id)
		if len(rk.Keys) == 0 {
			return fmt.Errorf("key %s is the only key of role %s: add a replacement first (release rotate --add-key)", shortID(id), r)
		}
		if *threshold > 0 {
			rk.Threshold = *threshold
		}
		if rk.Threshold > len(rk.Keys) {
			return usageErr("role %s would need %d signatures from %d key(s): lower it with --threshold", r, rk.Threshold, len(rk.Keys))
		}
		spec.Roles[r] = rk
		changed++
		e.printf("%s: revoking key %s, %d of %d keys remain required\n", r, shortID(id), rk.Threshold, len(rk.Keys))
	}
	if changed == 0 {
		return fmt.Errorf("role %s does not list key %s", *role, shortID(id))
	}
	return rotateRoot(ctx, e, s, kr, spec, keys, *export)
}

// rotateRoot stages the successor root for spec and either signs and
// publishes it with the keys at hand or exports it for a ceremony.
func rotateRoot(ctx context.Context, e *env, s *session, kr *keyring, spec sign.RootSpec, keys []string, export string) error {
	if s.repo.StagedChanges().Root {
		return fmt.Errorf("a signed root rotation is already staged: publish it first")
	}
	signers, err := kr.signers(ctx, keys)
	if err != nil {
		return err
	}
	cur := s.repo.Root()
	next, err := s.repo.StageRoot(spec)
	if err != nil {
		return err
	}
	policy, err := sign.RotationPolicy(&cur.Signed, &next.Signed)
	if err != nil {
		return err
	}
	var rootSigners []*sign.Signer
	for _, sg := range signers {
		if policy.Authorize(manifest.RoleRoot, sg.KeyID()) == nil {
			rootSigners = append(rootSigners, sg)
		}
	}
	rep, err := sign.SignRole(ctx, policy, manifest.RoleRoot, next, rootSigners)
	if err != nil {
		return err
	}
	if export != "" {
		doc, err := next.ToBytes(true)
		if err != nil {
			return err
		}
		if err := writeFile(export, doc); err != nil {
			return err
		}
		if err := describe(e, doc); err != nil {
			return err
		}
		printReport(e, rep, "new root keys")
		if rep.Previous != nil {
			printReport(e, *rep.Previous, "current root keys")
		}
		e.printf("wrote %s: have the root key holders sign it (release sign --role root) and merge (release merge --role root)\n", export)
		return nil
	}
	if !rep.Met {
		printReport(e, rep, "new root keys")
		if rep.Previous != nil {
			printReport(e, *rep.Previous, "current root keys")
		}
		return fmt.Errorf("root version %d is not signed by enough keys: give more root keys, or use --export for a k-of-n ceremony", next.Signed.Version)
	}
	if err := s.repo.SetRoot(next); err != nil {
		return err
	}
	if err := renewExpiredTargets(e, s); err != nil {
		return err
	}
	if err := s.publish(ctx, e, signers); err != nil {
		return err
	}
	e.printf("root version %d published, expires %s\n", next.Signed.Version, formatTime(next.Signed.Expires))
	warnExpiries(e, s, nil)
	return nil
}
