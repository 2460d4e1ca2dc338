package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

// cmdBins delegates the targets role's namespace to hash bins.
func cmdBins(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "bins", "--repo DIR --bits N --bin-key K[,K...] [--bin-threshold N] [--prefix NAME] (--key K... | --stage)", `
Delegates the whole namespace of the targets role to 2^N hash-bin roles
(TAP 15) named PREFIX-XX: an image belongs to the bin given by the first
N bits of the SHA-256 of its path. A catalogue of many thousands of
images then costs a device one small bin document per image it looks up,
and publishing a release re-signs one bin, not one huge targets file.
Choose N so that a bin holds tens to a few hundred images.

Run it on a fresh repository, before the first "add": the targets role
must list no image and delegate nothing else (a role delegates either by
path or by hash bins, so a repository with hash bins has no rollout
control role). Devices find releases by hardware ID in bins only through
release indexes: give "add" --release-index from the first release on.

All bins share the --bin-key keys and threshold. Setting them up signs
the targets role and every bin once, so it needs the targets key(s) and
the bin key(s) (--key), or --stage for a k-of-n ceremony; later adds need
the bin key(s) too. A "PUBLIC KEY" PEM file in --bin-key lists a key
without signing with it.`)
	repoDir := fs.String("repo", "", "repository directory")
	passEnv := fs.String("passphrase-env", "", "environment variable holding the passphrase of encrypted PEM keys")
	bits := fs.Int("bits", 0, fmt.Sprintf("number of bins as a power of two, 1..%d (10 makes 1,024 bins)", sign.MaxHashBinBits))
	prefix := fs.String("prefix", "bin", "name prefix of the bin roles")
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
	if err := s.repo.AddHashBins(manifest.RoleTargets, *prefix, *bits, rk); err != nil {
		if errors.Is(err, sign.ErrBadPolicy) {
			return fmt.Errorf("%s: %w (hash bins go on a fresh repository, before the first add)", s.dir, err)
		}
		return err
	}
	e.printf("delegated targets to %d hash bins %s-*: %d of %d key(s)\n", 1<<*bits, *prefix, rk.Threshold, len(rk.Keys))
	return s.finish(ctx, e, *stage, signers)
}
