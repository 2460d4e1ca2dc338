package sign_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
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

// The server side of a release, step by step: a root naming one key per
// role, signed by the root key; a repository in a directory a web server
// serves; a firmware image; a publish. The README's server-side quick
// start mirrors this example: change one, change the other.
func Example() {
	ctx := context.Background()
	rootKey, targetsKey, snapshotKey, timestampKey := load("ed25519-1"), load("p256"), load("ed25519-4"), load("ed25519-5")
	one := func(s *sign.Signer) sign.RoleKeys { return sign.RoleKeys{Threshold: 1, Keys: []*manifest.Key{s.Key()}} }
	roles := map[string]sign.RoleKeys{
		manifest.RoleRoot: one(rootKey), manifest.RoleTargets: one(targetsKey),
		manifest.RoleSnapshot: one(snapshotKey), manifest.RoleTimestamp: one(timestampKey),
	}

	root, err := sign.NewRoot(sign.RootSpec{Roles: roles}, time.Now().Add(sign.DefaultRootExpiry))
	if err != nil {
		log.Fatal(err)
	}
	policy, err := sign.PolicyFromRoot(&root.Signed)
	if err != nil {
		log.Fatal(err)
	}
	// Offline, k-of-n if you like (SignDetached and Merge).
	if _, err := sign.SignRole(ctx, policy, manifest.RoleRoot, root, []*sign.Signer{rootKey}); err != nil {
		log.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "otaseal-quickstart-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	storage, err := sign.NewDirStorage(dir)
	if err != nil {
		log.Fatal(err)
	}
	repo, err := sign.CreateRepository(ctx, storage, root, sign.RepositoryOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer repo.Close()
	image := bytes.NewReader([]byte("firmware 1.1.0"))
	err = repo.AddFirmware(ctx, "acme-gw-r2/1.1.0/firmware.bin", image, manifest.Firmware{
		Version: manifest.MustParseVersion("1.1.0"), SecurityVersion: 2, HardwareIDs: []string{"acme-gw-r2"}})
	if err != nil {
		log.Fatal(err)
	}
	// repo.AddDelta adds a delta from an earlier release the same way.

	// (Not in the quick start: the online keys alone cannot publish firmware.)
	err = repo.Publish(ctx, []*sign.Signer{snapshotKey, timestampKey})
	var te *manifest.ThresholdError
	fmt.Println(errors.As(err, &te), te.Role)

	if err := repo.Publish(ctx, []*sign.Signer{targetsKey, snapshotKey, timestampKey}); err != nil {
		log.Fatal(err)
	}

	// The root to build into devices, as published.
	name, data, err := repo.DeviceRoot()
	if err != nil {
		log.Fatal(err)
	}
	published, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
	fmt.Println(name, bytes.Equal(data, published), err)
	fmt.Println("timestamp version", repo.Timestamp().Signed.Version)
	// Output:
	// true targets
	// metadata/1.root.json true <nil>
	// timestamp version 1
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
