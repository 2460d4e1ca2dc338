package verify_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/rollback"
	"github.com/otaseal/otaseal/sign"
	"github.com/otaseal/otaseal/verify"
)

// A device agent's update check: refresh, select, install into the
// inactive slot, confirm. (exampleRepository, below, plays the vendor.)
func Example() {
	ctx := context.Background()
	url, rootJSON, factory, stop := exampleRepository()
	defer stop()
	store := rollback.NewMemStore() // rollback.OpenFileStore on a device
	state, _ := rollback.OpenState(ctx, store, rollback.StateOptions{HardwareID: "acme-gw-r2", AllowNoCounter: true})
	clock, _ := rollback.OpenTrustedClock(ctx, store, rollback.TrustedClockOptions{Now: time.Now})
	sum := sha256.Sum256(factory)
	state.Provision(ctx, rollback.Image{HardwareID: "acme-gw-r2", TargetPath: "factory.bin", Version: manifest.MustParseVersion("1.0.0"),
		SecurityVersion: 1, Length: int64(len(factory)), SHA256: sum[:], Slot: "a"})
	trust := verify.StateTrustStore{State: state}
	verify.Bootstrap(ctx, trust, rootJSON, manifest.Limits{})
	client, _ := verify.New(ctx, verify.Config{MetadataURL: url + "/metadata/", TargetsURL: url + "/targets/", Store: trust, Clock: clock})
	if err := client.Refresh(ctx); err != nil {
		log.Fatal(err) // every TUF check failed closed: keep running the old image
	}
	st, _ := state.Status(ctx)
	u, err := client.Select(ctx, "acme-gw-r2", st.Installed, st.Floors, rollback.InstallPolicy{})
	if err != nil {
		log.Fatal(err) // verify.ErrNoUpdate when up to date
	}
	fw := u.Release.Firmware
	fmt.Println("update:", fw.Version, fw.Severity, fw.Advisories)
	var slotB bytes.Buffer // the inactive partition
	state.Begin(ctx, rollback.Image{HardwareID: "acme-gw-r2", TargetPath: u.Release.Path, Version: fw.Version,
		SecurityVersion: fw.SecurityVersion, Length: u.Release.File.Length, SHA256: u.Release.File.Hashes["sha256"], Slot: "b"})
	if err := client.Install(ctx, u, &slotB, verify.InstallOptions{Installed: bytes.NewReader(factory), InstalledSize: int64(len(factory))}); err != nil {
		state.Revert(ctx)
		log.Fatal(err)
	}
	// ... reboot into slot b, run the health check, then:
	img, _ := state.Confirm(ctx)
	st, _ = state.Status(ctx)
	fmt.Println("installed:", img.Version, "through a delta:", u.Patch != nil, "floor:", st.Floors["acme-gw-r2"])
	// Output:
	// update: 1.1.0 security [CVE-2026-0001]
	// installed: 1.1.0 through a delta: false floor: 2
}

// exampleRepository publishes firmware 1.0.0 and 1.1.0 with package sign
// and serves them on 127.0.0.1.
func exampleRepository() (url string, rootJSON, factory []byte, stop func()) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "otaseal-example-")
	if err != nil {
		log.Fatal(err)
	}
	keys := map[string]*sign.Signer{}
	roles := map[string]sign.RoleKeys{}
	for _, role := range []string{"root", "targets", "snapshot", "timestamp"} {
		seed := sha256.Sum256([]byte("example " + role))
		keys[role], _ = sign.SignerFromPrivateKey(ctx, ed25519.NewKeyFromSeed(seed[:]))
		roles[role] = sign.RoleKeys{Threshold: 1, Keys: []*manifest.Key{keys[role].Key()}}
	}
	root, _ := sign.NewRoot(sign.RootSpec{Roles: roles}, time.Now().Add(sign.DefaultRootExpiry))
	policy, _ := sign.PolicyFromRoot(&root.Signed)
	if _, err := sign.SignRole(ctx, policy, "root", root, []*sign.Signer{keys["root"]}); err != nil {
		log.Fatal(err)
	}
	storage, _ := sign.NewDirStorage(dir)
	repo, err := sign.CreateRepository(ctx, storage, root, sign.RepositoryOptions{TempDir: dir})
	if err != nil {
		log.Fatal(err)
	}
	defer repo.Close()
	factory = bytes.Repeat([]byte("firmware 1.0.0 "), 1000)
	for v, image := range map[string][]byte{"1.0.0": factory, "1.1.0": bytes.Repeat([]byte("firmware 1.1.0 "), 1000)} {
		fw := manifest.Firmware{Version: manifest.MustParseVersion(v), SecurityVersion: 1, HardwareIDs: []string{"acme-gw-r2"}}
		if v == "1.1.0" {
			fw.SecurityVersion, fw.Severity, fw.Advisories = 2, manifest.SeveritySecurity, []string{"CVE-2026-0001"}
		}
		if err := repo.AddFirmware(ctx, "acme-gw-r2/"+v+"/firmware.bin", bytes.NewReader(image), fw); err != nil {
			log.Fatal(err)
		}
	}
	if err := repo.Publish(ctx, []*sign.Signer{keys["targets"], keys["snapshot"], keys["timestamp"]}); err != nil {
		log.Fatal(err)
	}
	rootJSON, _ = root.ToBytes(false)
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	return srv.URL, rootJSON, factory, func() { srv.Close(); os.RemoveAll(dir) }
}
