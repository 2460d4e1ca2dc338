package main

import (
	"context"
	"fmt"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

// cmdBins delegates the targets role's namespace to hash bins.
func cmdBins(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "bins", "--repo DIR --bits N --bin-key K[,K...] [--bin-threshold N] [--prefix NAME] (--key K... | --stage)", `
Delegates the namespace of the targets role to a catalogue role (--role,
"catalog" by default; every target path of up to six segments) and that
role's namespace to 2^N hash-bin roles (TAP 15) named PREFIX-XX: an image
belongs to the bin given by the first N bits of the SHA-256 of its path.
A catalogue of many thousands of images then costs a device one small bin
document per image it looks up, and publishing a release re-signs one bin,
not one huge targets file. Choose N so that a bin holds tens to a few
hundred images. The catalogue role keeps the targets role free to
delegate by name too, as the rollout control role needs (a role delegates
either by name or by hash bins, not both).

Run it on a fresh repository, before the first "add": the targets role
must list no image and delegate to no other role for images. Devices find
releases by hardware ID in bins only through release indexes: give "add"
--release-index from the first release on.

The catalogue role and all bins share the --bin-key keys and threshold.
Setting them up signs the targets role, the catalogue and every bin once,
so it needs the targets key(s) and the bin key(s) (--key), or --stage for
a k-of-n ceremony; later adds need the bin key(s) too. A "PUBLIC KEY" PEM
file in --bin-key lists a key without signing with it.`)
	repoDir := fs.String("repo", "", "repository directory")
	passEnv := fs.String("passphrase-env", "", "environment variable holding the passphrase of encrypted PEM keys")
	bits := fs.Int("bits", 0, fmt.Sprintf("number of bins as a power of two, 1..%d (10 makes 1,024 bins)", sign.MaxHashBinBits))
	prefix := fs.String("prefix", "bin", "name prefix of the bin roles")
	catalog := fs.String("role", "catalog", "name of the catalogue role the bins hang from")
	var binKeys, keys listFlag
	fs.Var(&binKeys, "bin-key", "key(s) of the bins: "+keyHelp)
	threshold := fs.Int("bin-threshold", 1, "signatures each bin needs")
	fs.Var(&keys, "key", "signing key: "+keyHelp+" (repeatable)")
	stage := fs.Bool("stage", false, "stage for an offline ceremony instead of publishing")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return usageErr("unexpected arguments %q", fs.Args())
	case *bits < 1 || *bits > sign.MaxHashBinBits:
		return usageErr("--bits must be 1..%d", sign.MaxHashBinBits)
	case len(binKeys) == 0:
		return usageErr("--bin-key is required")
	case *threshold < 1 || *threshold > len(binKeys):
		return usageErr("--bin-threshold %d needs between 1 and %d bin key(s)", *threshold, len(binKeys))
	case *stage == (len(keys) > 0):
		return usageErr("give either --key (publish now) or --stage (k-of-n ceremony)")
	}
	s, signers, err := openSigning(ctx, *repoDir, *passEnv, keys)
	if err != nil {
		return err
	}
	defer s.close()
	rk, signers, err := s.keys.roleKeys(ctx, binKeys, *threshold, signers)
	if err != nil {
		return err
	}
	if err := checkFresh(s); err != nil {
		return err
	}
	if err := s.repo.AddDelegation(manifest.RoleTargets, sign.Delegation{Name: *catalog, Paths: catalogPaths, Terminating: true, Keys: rk}); err != nil {
		return err
	}
	if err := s.repo.AddHashBins(*catalog, *prefix, *bits, rk); err != nil {
		return err
	}
	e.printf("delegated targets to %s and it to %d hash bins %s-*: %d of %d key(s)\n", *catalog, 1<<*bits, *prefix, rk.Threshold, len(rk.Keys))
	return s.finish(ctx, e, *stage, signers)
}

// catalogPaths are the path patterns of the catalogue role: every target
// path of one to six segments ("*" matches within one segment).
var catalogPaths = []string{"*", "*/*", "*/*/*", "*/*/*/*", "*/*/*/*/*", "*/*/*/*/*/*"}

// checkFresh refuses bins on a repository whose targets role lists images
// or delegates them by path: they would stay outside the catalogue.
func checkFresh(s *session) error {
	t, ok := s.repo.Targets(manifest.RoleTargets)
	if !ok {
		return nil
	}
	if len(t.Signed.Targets) > 0 {
		return fmt.Errorf("%s: the targets role lists %d target(s): hash bins go on a fresh repository, before the first add", s.dir, len(t.Signed.Targets))
	}
	if d := t.Signed.Delegations; d != nil {
		if d.SuccinctRoles != nil {
			return fmt.Errorf("%s: the targets role already delegates to hash bins", s.dir)
		}
		for _, r := range d.Roles {
			if len(r.Paths) > 0 || len(r.PathHashPrefixes) > 0 {
				return fmt.Errorf("%s: the targets role already delegates paths to %q: hash bins go on a fresh repository", s.dir, r.Name)
			}
		}
	}
	return nil
}
