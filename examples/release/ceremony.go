package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

// readDocument reads a metadata document file within sign's size limit.
func readDocument(path string) ([]byte, *sign.Document, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	data, err := manifest.ReadLimited(f, sign.MaxDocumentSize)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	d, err := sign.ParseDocument(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return data, d, nil
}

func writeFile(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func cmdExport(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "export", "--repo DIR --role ROLE --out FILE", `
Writes the next version of a targets role with the changes staged by
"release add --stage", unsigned, to FILE. Hand FILE to the key holders;
each runs "release sign" on their own machine and returns a signature file
for "release merge". Staging another change voids the export.

To sign a root rotation k-of-n, use "release rotate --export" instead.`)
	repoDir := fs.String("repo", "", "repository directory")
	role := fs.String("role", manifest.RoleTargets, "role to export: targets or a delegated targets role")
	out := fs.String("out", "", "file to write the unsigned document to")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usageErr("--out is required")
	}
	if *role == manifest.RoleRoot {
		return usageErr("root documents are exported by release rotate --export or release revoke --export")
	}
	s, err := openSession(ctx, *repoDir)
	if err != nil {
		return err
	}
	defer s.close()
	if !s.staged() {
		return fmt.Errorf("nothing staged: run release add --stage (or merge a root rotation) first")
	}
	// The staged changes keep the clock the export pinned, so that the
	// document merge publishes is exactly the one signed.
	doc, err := s.repo.ExportRole(*role)
	if err != nil {
		return err
	}
	if err := writeFile(*out, doc); err != nil {
		return err
	}
	if err := s.save(); err != nil {
		return err
	}
	if err := describe(e, doc); err != nil {
		return err
	}
	p, err := s.repo.Policy()
	if err != nil {
		return err
	}
	if rp, err := p.Role(*role); err == nil {
		e.printf("needs %d of %d signatures from: %s\n", rp.Threshold, len(rp.Keys), shortIDs(rp.KeyIDs()))
	}
	e.printf("wrote %s\n", *out)
	return nil
}

// describe prints what a document says, so that a key holder sees what
// they are about to sign.
func describe(e *env, data []byte) error {
	d, err := sign.ParseDocument(data)
	if err != nil {
		return err
	}
	e.printf("%s version %d, %d signature(s) attached\n", d.Type, d.Version, len(d.Signatures()))
	if t, ok := d.Targets(); ok {
		e.printf("  expires %s, %d target(s):\n", formatTime(t.Signed.Expires), len(t.Signed.Targets))
		paths := make([]string, 0, len(t.Signed.Targets))
		for p := range t.Signed.Targets {
			paths = append(paths, p)
		}
		sort.Strings(paths)
		for _, p := range paths {
			e.printf("    %s (%s)\n", p, size(t.Signed.Targets[p].Length))
		}
	}
	if r, ok := d.Root(); ok {
		e.printf("  expires %s\n", formatTime(r.Signed.Expires))
		for _, role := range []string{manifest.RoleRoot, manifest.RoleTargets, manifest.RoleSnapshot, manifest.RoleTimestamp} {
			if rr, ok := r.Signed.Roles[role]; ok {
				e.printf("    %-9s %d of %d: %s\n", role, rr.Threshold, len(rr.KeyIDs), shortIDs(rr.KeyIDs))
			}
		}
	}
	return nil
}

func cmdSign(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "sign", "--in FILE --role ROLE --key K --out SIG", `
Signs an exported document with one key and writes a detached signature
file. It runs on the key holder's machine and needs only the document and
the key, no repository. Read what it prints before handing SIG back: it
is what you vouch for.`)
	in := fs.String("in", "", "exported document")
	role := fs.String("role", "", "role the document is for (root, targets, ...)")
	key := fs.String("key", "", "signing key: "+keyHelp)
	out := fs.String("out", "", "file to write the detached signature to")
	passEnv := fs.String("passphrase-env", "", "environment variable holding the passphrase of an encrypted PEM key")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if *in == "" || *role == "" || *key == "" || *out == "" {
		return usageErr("--in, --role, --key and --out are required")
	}
	doc, d, err := readDocument(*in)
	if err != nil {
		return err
	}
	if err := checkRoleType(*role, d.Type); err != nil {
		return err
	}
	kr := &keyring{passEnv: *passEnv}
	defer kr.close()
	signer, err := kr.signer(ctx, *key)
	if err != nil {
		return err
	}
	if err := describe(e, doc); err != nil {
		return err
	}
	sig, err := sign.SignDetached(ctx, doc, *role, signer)
	if err != nil {
		return err
	}
	data, err := sig.Marshal()
	if err != nil {
		return err
	}
	if err := writeFile(*out, data); err != nil {
		return err
	}
	e.printf("signed %s version %d as key %s; wrote %s\n", *role, d.Version, shortID(signer.KeyID()), *out)
	return nil
}

// checkRoleType refuses signing a root as targets or the other way round.
func checkRoleType(role, typ string) error {
	want := manifest.RoleTargets
	switch role {
	case manifest.RoleRoot, manifest.RoleSnapshot, manifest.RoleTimestamp:
		want = role
	}
	if typ != want {
		return usageErr("document is a %s document, not one for role %s", typ, role)
	}
	return nil
}

func cmdMerge(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "merge", "--repo DIR --role ROLE --in FILE [--key K...] SIG...", `
Checks the detached signatures SIG... against the role's keys and adds
them to the exported document FILE (rewritten in place, so signatures can
be merged as they arrive). Prints which keys have signed and whether the
threshold is met. A signature by a key of another role, a revoked or
unknown key, for another document, or one that does not verify is an
error and nothing is merged.

Once the threshold is met the document is kept with the staged changes;
with --key (the snapshot and timestamp keys, plus for a root rotation
any other keys whose roles must be re-signed) it is published at once,
otherwise run "release publish". For a root, the threshold counts twice:
the current root's keys and the new root's keys must each meet their own.
Falling short of the threshold is not a failure: exit status 0.`)
	repoDir := fs.String("repo", "", "repository directory")
	role := fs.String("role", manifest.RoleTargets, "role of the document")
	in := fs.String("in", "", "exported document; signatures are merged into it")
	passEnv := fs.String("passphrase-env", "", "environment variable holding the passphrase of encrypted PEM keys")
	var keys listFlag
	fs.Var(&keys, "key", "key to publish with once the threshold is met: "+keyHelp+" (repeatable)")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if *in == "" {
		return usageErr("--in is required")
	}
	doc, d, err := readDocument(*in)
	if err != nil {
		return err
	}
	if err := checkRoleType(*role, d.Type); err != nil {
		return err
	}
	sigs, err := readSignatures(fs.Args())
	if err != nil {
		return err
	}
	s, signers, err := openSigning(ctx, *repoDir, *passEnv, keys)
	if err != nil {
		return err
	}
	defer s.close()

	var policy *sign.Policy
	if next, ok := d.Root(); ok {
		if s.repo.StagedChanges().Root {
			return fmt.Errorf("a signed root rotation is already staged: publish it first")
		}
		if policy, err = sign.RotationPolicy(&s.repo.Root().Signed, &next.Signed); err != nil {
			return err
		}
	} else if policy, err = s.repo.Policy(); err != nil {
		return err
	}
	merged, rep, err := sign.Merge(policy, *role, doc, sigs)
	if err != nil {
		var ke *sign.KeyError
		if errors.As(err, &ke) {
			return fmt.Errorf("refused signature of key %s for role %s: %w (nothing merged)", shortID(ke.KeyID), ke.Role, err)
		}
		return err
	}
	if err := writeFile(*in, merged); err != nil {
		return err
	}
	printReport(e, rep, "")
	if rep.Previous != nil {
		printReport(e, *rep.Previous, "current root keys")
	}
	if !rep.Met {
		e.printf("threshold not met: collect more signatures and merge them into %s\n", *in)
		return nil
	}
	if err := stageMerged(s.repo, *role, merged); err != nil {
		return err
	}
	if err := s.save(); err != nil {
		return err
	}
	if len(signers) == 0 {
		if *role == manifest.RoleRoot {
			e.printf("threshold met; if the rotation changed the targets keys, have the new holders sign targets (release export --role targets, sign, merge)\n")
		}
		e.printf("threshold met; publish with: release publish --repo %s --key SNAPSHOT-KEY --key TIMESTAMP-KEY\n", s.dir)
		return nil
	}
	return s.publish(ctx, e, signers)
}

// readSignatures reads detached signature files.
func readSignatures(paths []string) ([]*sign.DetachedSignature, error) {
	var sigs []*sign.DetachedSignature
	for _, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		data, err := manifest.ReadLimited(f, sign.MaxDetachedSignatureSize)
		f.Close()
		if err == nil {
			var sig *sign.DetachedSignature
			sig, err = sign.ParseDetachedSignature(data)
			sigs = append(sigs, sig)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	return sigs, nil
}

// stageMerged stages a document whose threshold is met: a root for the
// next publish, or a targets role's signed document, which must be the one
// exported (checked now, not at publish).
func stageMerged(repo *sign.Repository, role string, merged []byte) error {
	d, err := sign.ParseDocument(merged)
	if err != nil {
		return err
	}
	if next, ok := d.Root(); ok {
		return repo.SetRoot(next)
	}
	return repo.ImportSigned(role, merged)
}

// printReport prints who signed; label names the key set, rep.Role if "".
func printReport(e *env, rep sign.Report, label string) {
	met := "not met"
	if rep.Met {
		met = "met"
	}
	e.printf("%s: %d of %d required signatures, threshold %s\n", or(label, rep.Role), len(rep.SignedBy), rep.Threshold, met)
	e.printf("  signed by: %s\n", shortIDs(rep.SignedBy))
	e.printf("  missing:   %s\n", shortIDs(rep.Missing))
}
