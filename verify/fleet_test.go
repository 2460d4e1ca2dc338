package verify_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/otaseal/otaseal/delta"
	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

// fleet is a vendor's repository published with package sign and served
// on 127.0.0.1, for the examples and the cycle tests.
type fleet struct {
	hardwareID string
	dir        string
	repo       *sign.Repository
	signers    []*sign.Signer
	srv        *httptest.Server
	images     map[string][]byte // by version

	mu     sync.Mutex
	tamper func(path string, body []byte) []byte // rewrites what the server sends
}

// newFleet creates the repository; nothing is published until release.
func newFleet(hardwareID string) (*fleet, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "otaseal-fleet-")
	if err != nil {
		return nil, err
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
		return nil, err
	}
	storage, _ := sign.NewDirStorage(dir)
	repo, err := sign.CreateRepository(ctx, storage, root, sign.RepositoryOptions{TempDir: dir})
	if err != nil {
		return nil, err
	}
	f := &fleet{hardwareID: hardwareID, dir: dir, repo: repo, images: map[string][]byte{},
		signers: []*sign.Signer{keys["targets"], keys["snapshot"], keys["timestamp"]}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	return f, nil
}

func (f *fleet) serve(w http.ResponseWriter, r *http.Request) {
	body, err := os.ReadFile(f.dir + r.URL.Path)
	if err != nil || strings.Contains(r.URL.Path, "..") {
		http.NotFound(w, r)
		return
	}
	f.mu.Lock()
	if f.tamper != nil {
		body = f.tamper(r.URL.Path, body)
	}
	f.mu.Unlock()
	w.Write(body)
}

func (f *fleet) setTamper(fn func(path string, body []byte) []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tamper = fn
}

func (f *fleet) close() {
	f.srv.Close()
	f.repo.Close()
	os.RemoveAll(f.dir)
}

// imagePath is where version's image is published.
func (f *fleet) imagePath(version string) string {
	return f.hardwareID + "/" + version + "/firmware.bin"
}

// release publishes version with security version sv, and a delta from
// the version released before it, if any.
func (f *fleet) release(version string, sv uint64, from string) error {
	ctx := context.Background()
	image := bytes.Repeat([]byte("firmware "+version+" "), 2000)
	fw := manifest.Firmware{Version: manifest.MustParseVersion(version), SecurityVersion: sv, HardwareIDs: []string{f.hardwareID},
		Severity: manifest.SeveritySecurity, Advisories: []string{"CVE-2026-0001"}}
	if err := f.repo.AddFirmware(ctx, f.imagePath(version), bytes.NewReader(image), fw); err != nil {
		return err
	}
	f.images[version] = image
	if from != "" {
		s, err := delta.Diff(f.images[from], image)
		if err != nil {
			return err
		}
		var patch bytes.Buffer
		if err := s.Encode(&patch, delta.FormatStream); err != nil {
			return err
		}
		p := fmt.Sprintf("%s/deltas/%s-%s.otz", f.hardwareID, from, version)
		if err := f.repo.AddDelta(ctx, p, f.imagePath(from), f.imagePath(version), &patch); err != nil {
			return err
		}
	}
	return f.repo.Publish(ctx, f.signers)
}
