package sign_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

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
	// metadata/1.root.json true <nil>
	// timestamp version 1
}
