package sign_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/sigstore/sigstore/pkg/signature/kms/fake"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

func load(name string) *sign.Signer {
	s, err := sign.LoadPEMSignerFile(context.Background(), "testdata/keys/"+name+".pem", nil)
	if err != nil {
		log.Fatal(err)
	}
	return s
}

// A release: create a repository with separate root, targets, snapshot and
// timestamp keys, add a firmware image and publish it.
func ExampleRepository_Publish() {
	ctx := context.Background()
	rootKey, targetsKey, snapshotKey, timestampKey := load("ed25519-1"), load("p256"), load("ed25519-4"), load("ed25519-5")
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

	root, err := sign.NewRoot(sign.RootSpec{
		Roles: map[string]sign.RoleKeys{
			manifest.RoleRoot:      {Threshold: 1, Keys: []*manifest.Key{rootKey.Key()}},
			manifest.RoleTargets:   {Threshold: 1, Keys: []*manifest.Key{targetsKey.Key()}},
			manifest.RoleSnapshot:  {Threshold: 1, Keys: []*manifest.Key{snapshotKey.Key()}},
			manifest.RoleTimestamp: {Threshold: 1, Keys: []*manifest.Key{timestampKey.Key()}},
		},
	}, now.Add(sign.DefaultRootExpiry))
	if err != nil {
		log.Fatal(err)
	}
	policy, err := sign.PolicyFromRoot(&root.Signed)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := sign.SignRole(ctx, policy, manifest.RoleRoot, root, []*sign.Signer{rootKey}); err != nil {
		log.Fatal(err)
	}

	dir, _ := os.MkdirTemp("", "otaseal-example-")
	defer os.RemoveAll(dir)
	store, err := sign.NewDirStorage(dir)
	if err != nil {
		log.Fatal(err)
	}
	repo, err := sign.CreateRepository(ctx, store, root, sign.RepositoryOptions{Now: func() time.Time { return now }})
	if err != nil {
		log.Fatal(err)
	}
	defer repo.Close()
	fw := manifest.Firmware{Version: manifest.MustParseVersion("2.4.1"), SecurityVersion: 7, HardwareIDs: []string{"acme-gw-r2"}}
	if err := repo.AddFirmware(ctx, "acme-gw-r2/2.4.1/firmware.bin", bytes.NewReader([]byte("image bytes")), fw); err != nil {
		log.Fatal(err)
	}

	// The online keys alone cannot publish firmware.
	err = repo.Publish(ctx, []*sign.Signer{snapshotKey, timestampKey})
	var te *manifest.ThresholdError
	fmt.Println(errors.As(err, &te), te.Role)

	if err := repo.Publish(ctx, []*sign.Signer{targetsKey, snapshotKey, timestampKey}); err != nil {
		log.Fatal(err)
	}
	signedAt, _, _ := manifest.SignedAt(&repo.Timestamp().Signed)
	fmt.Println("timestamp version", repo.Timestamp().Signed.Version, "signed at", signedAt.Format(time.RFC3339))
	// Output:
	// true targets
	// timestamp version 1 signed at 2026-11-26T12:00:00Z
}

// An offline 2-of-3 ceremony: each holder signs the exported document on
// their own machine; the coordinator merges and learns whether the
// threshold is met.
func ExampleMerge() {
	ctx := context.Background()
	holders := []*sign.Signer{load("ed25519-1"), load("ed25519-2"), load("ed25519-3")}
	online := load("ed25519-4")
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	one := func(s *sign.Signer) sign.RoleKeys { return sign.RoleKeys{Threshold: 1, Keys: []*manifest.Key{s.Key()}} }
	root, err := sign.NewRoot(sign.RootSpec{Roles: map[string]sign.RoleKeys{
		manifest.RoleRoot:      {Threshold: 2, Keys: []*manifest.Key{holders[0].Key(), holders[1].Key(), holders[2].Key()}},
		manifest.RoleTargets:   one(load("p256")),
		manifest.RoleSnapshot:  one(online),
		manifest.RoleTimestamp: one(online),
	}}, now.Add(sign.DefaultRootExpiry))
	if err != nil {
		log.Fatal(err)
	}
	doc, _ := root.ToBytes(true)
	policy, _ := sign.PolicyFromRoot(&root.Signed)

	first, _ := sign.SignDetached(ctx, doc, manifest.RoleRoot, holders[0])
	doc, rep, err := sign.Merge(policy, manifest.RoleRoot, doc, []*sign.DetachedSignature{first})
	fmt.Println(len(rep.SignedBy), "of", rep.Threshold, "met:", rep.Met, err)

	// The online key has no business signing root.
	bad, _ := sign.SignDetached(ctx, doc, manifest.RoleRoot, online)
	_, _, err = sign.Merge(policy, manifest.RoleRoot, doc, []*sign.DetachedSignature{bad})
	fmt.Println(errors.Is(err, sign.ErrWrongRole))

	second, _ := sign.SignDetached(ctx, doc, manifest.RoleRoot, holders[2])
	_, rep, err = sign.Merge(policy, manifest.RoleRoot, doc, []*sign.DetachedSignature{second})
	fmt.Println(len(rep.SignedBy), "of", rep.Threshold, "met:", rep.Met, err)
	// Output:
	// 1 of 2 met: false <nil>
	// true
	// 2 of 2 met: true <nil>
}

// Cloud KMS keys are named by sigstore KMS URIs; the program imports the
// provider it uses. Here sigstore's in-process fake stands in for
// "awskms://...", "gcpkms://...", "azurekms://..." or "hashivault://...".
func ExampleLoadKMSSigner() {
	ctx := context.Background() // the fake makes a fresh P-256 key
	s, err := sign.LoadKMSSigner(ctx, fake.ReferenceScheme+"release-targets")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.Scheme())
	// Output: ecdsa-sha2-nistp256
}

// An HSM key through PKCS#11: the PIN comes from the environment and the
// private key never leaves the token.
func ExampleOpenPKCS11() {
	ctx := context.Background()
	s, err := sign.OpenPKCS11(ctx, sign.PKCS11Config{
		ModulePath: os.Getenv("PKCS11_MODULE"), // the vendor's library
		TokenLabel: "release",
		KeyLabel:   "targets-2026",
		PINEnv:     "RELEASE_HSM_PIN",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	fmt.Println("signing as", s.KeyID())
}
