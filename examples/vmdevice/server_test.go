package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

// release is one release a test server publishes.
type release struct {
	version         string
	securityVersion uint64
}

// updateServer is a repository signed with package sign and served on
// the host's 127.0.0.1, which the guest reaches as 10.0.2.2.
type updateServer struct {
	guestURL string
	root     []byte
	repo     *sign.Repository
	keys     map[string]*sign.Signer
	deltaTx  atomic.Int64 // bytes of delta targets served
	imageTx  atomic.Int64 // bytes of full images served
}

func newUpdateServer(t *testing.T, r *releases, rels []release, deltas [][2]string) *updateServer {
	ctx := context.Background()
	dir := t.TempDir()
	s := &updateServer{keys: map[string]*sign.Signer{}}
	roles := map[string]sign.RoleKeys{}
	for _, role := range []string{"root", "targets", "snapshot", "timestamp"} {
		seed := sha256.Sum256([]byte("vmdevice test " + role))
		k, err := sign.SignerFromPrivateKey(ctx, ed25519.NewKeyFromSeed(seed[:]))
		require.NoError(t, err)
		s.keys[role] = k
		roles[role] = sign.RoleKeys{Threshold: 1, Keys: []*manifest.Key{k.Key()}}
	}
	root, err := sign.NewRoot(sign.RootSpec{Roles: roles}, time.Now().AddDate(1, 0, 0))
	require.NoError(t, err)
	p, err := sign.PolicyFromRoot(&root.Signed)
	require.NoError(t, err)
	_, err = sign.SignRole(ctx, p, "root", root, []*sign.Signer{s.keys["root"]})
	require.NoError(t, err)
	storage, err := sign.NewDirStorage(filepath.Join(dir, "repo"))
	require.NoError(t, err)
	s.repo, err = sign.CreateRepository(ctx, storage, root, sign.RepositoryOptions{TempDir: dir})
	require.NoError(t, err)
	t.Cleanup(func() { s.repo.Close() })
	for _, rel := range rels {
		f, err := os.Open(r.images[rel.version])
		require.NoError(t, err)
		fw := manifest.Firmware{Version: manifest.MustParseVersion(rel.version), SecurityVersion: rel.securityVersion,
			HardwareIDs: []string{hw}, Severity: manifest.SeveritySecurity, Advisories: []string{"CVE-2026-" + rel.version}}
		require.NoError(t, s.repo.AddFirmware(ctx, hw+"/"+rel.version+"/firmware.bin", f, fw))
		f.Close()
	}
	for _, d := range deltas {
		patch := r.patch(t, d[0], d[1])
		require.NoError(t, s.repo.AddDelta(ctx, hw+"/deltas/"+d[0]+"-"+d[1]+".otz",
			hw+"/"+d[0]+"/firmware.bin", hw+"/"+d[1]+"/firmware.bin", bytes.NewReader(patch)))
	}
	s.publish(t, "targets", "snapshot", "timestamp")
	s.root, err = root.ToBytes(false)
	require.NoError(t, err)

	files := http.FileServer(http.Dir(filepath.Join(dir, "repo")))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		cw := &countingWriter{ResponseWriter: w}
		files.ServeHTTP(cw, req)
		switch {
		case strings.Contains(req.URL.Path, "/deltas/"):
			s.deltaTx.Add(cw.n)
		case strings.HasPrefix(req.URL.Path, "/targets/"):
			s.imageTx.Add(cw.n)
		}
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	s.guestURL = fmt.Sprintf("http://10.0.2.2:%d", ln.Addr().(*net.TCPAddr).Port)
	return s
}

func (s *updateServer) publish(t *testing.T, roles ...string) {
	var signers []*sign.Signer
	for _, r := range roles {
		signers = append(signers, s.keys[r])
	}
	require.NoError(t, s.repo.Publish(context.Background(), signers))
}

type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n += int64(n)
	return n, err
}
