package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
	"github.com/otaseal/otaseal/verify"
)

const (
	hardwareID   = "acme-gw-r2"
	firmwarePath = "acme-gw-r2/2.4.1/firmware.bin"
)

// t0 is when the test repositories are published.
var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

const keyDir = "../../sign/testdata/keys/"

// Test keys, one per role, as in package sign's examples.
const (
	rootKeyFile      = keyDir + "ed25519-1.pem"
	targetsKeyFile   = keyDir + "p256.pem"
	snapshotKeyFile  = keyDir + "ed25519-4.pem"
	timestampKeyFile = keyDir + "ed25519-5.pem"
)

func loadKey(t testing.TB, file string) *sign.Signer {
	t.Helper()
	s, err := sign.LoadPEMSignerFile(context.Background(), file, nil)
	require.NoError(t, err)
	return s
}

// clock is a settable clock for the server and for clients.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// testRepo is a published repository as the release tool leaves it.
type testRepo struct {
	dir      string // storage directory: metadata/ and targets/
	rootJSON []byte
	image    []byte
}

// newRepo publishes a repository with one firmware image of imageSize
// bytes at t0, its timestamp valid for tsExpiry.
func newRepo(t testing.TB, imageSize int, tsExpiry time.Duration) *testRepo {
	t.Helper()
	return newRepoAt(t, t0, imageSize, tsExpiry)
}

// newRepoAt is newRepo published at now.
func newRepoAt(t testing.TB, now time.Time, imageSize int, tsExpiry time.Duration) *testRepo {
	t.Helper()
	return newRepoWith(t, now, imageSize, tsExpiry, loadKey(t, snapshotKeyFile), loadKey(t, timestampKeyFile))
}

// newRepoWith is newRepoAt with the given online keys.
func newRepoWith(t testing.TB, now time.Time, imageSize int, tsExpiry time.Duration, snapKey, tsKey *sign.Signer) *testRepo {
	t.Helper()
	ctx := context.Background()
	rootKey, targetsKey := loadKey(t, rootKeyFile), loadKey(t, targetsKeyFile)
	one := func(s *sign.Signer) sign.RoleKeys { return sign.RoleKeys{Threshold: 1, Keys: []*manifest.Key{s.Key()}} }
	root, err := sign.NewRoot(sign.RootSpec{Roles: map[string]sign.RoleKeys{
		manifest.RoleRoot: one(rootKey), manifest.RoleTargets: one(targetsKey),
		manifest.RoleSnapshot: one(snapKey), manifest.RoleTimestamp: one(tsKey),
	}}, now.Add(sign.DefaultRootExpiry))
	require.NoError(t, err)
	policy, err := sign.PolicyFromRoot(&root.Signed)
	require.NoError(t, err)
	_, err = sign.SignRole(ctx, policy, manifest.RoleRoot, root, []*sign.Signer{rootKey})
	require.NoError(t, err)

	r := &testRepo{dir: filepath.Join(t.TempDir(), "repository"), image: make([]byte, imageSize)}
	rand.Read(r.image)
	r.rootJSON, err = root.ToBytes(false)
	require.NoError(t, err)
	store, err := sign.NewDirStorage(r.dir)
	require.NoError(t, err)
	repo, err := sign.CreateRepository(ctx, store, root, sign.RepositoryOptions{Now: func() time.Time { return now }, TimestampExpiry: tsExpiry, TempDir: t.TempDir()})
	require.NoError(t, err)
	defer repo.Close()
	fw := manifest.Firmware{Version: manifest.MustParseVersion("2.4.1"), SecurityVersion: 7, HardwareIDs: []string{hardwareID}}
	require.NoError(t, repo.AddFirmware(ctx, firmwarePath, bytes.NewReader(r.image), fw))
	require.NoError(t, repo.Publish(ctx, []*sign.Signer{targetsKey, snapKey, tsKey}))
	return r
}

// testConfig is a server configuration for repo at the fake clock c.
func testConfig(t testing.TB, repo *testRepo, c *clock) config {
	return config{
		Dir:             repo.dir,
		SnapshotKey:     loadKey(t, snapshotKeyFile),
		TimestampKey:    loadKey(t, timestampKeyFile),
		TimestampExpiry: time.Hour,
		SnapshotExpiry:  sign.DefaultSnapshotExpiry,
		ResignBefore:    30 * time.Minute,
		CheckEvery:      time.Minute,
		Now:             c.Now,
	}
}

// running is a server started in-process on 127.0.0.1.
type running struct {
	srv       *server
	httpURL   string // "" unless started with HTTP
	httpsURL  string // "" unless started with TLS
	healthURL string
	cancel    context.CancelFunc
	done      chan error
}

// stop shuts the server down and returns serve's result.
func (r *running) stop() error {
	r.cancel()
	return <-r.done
}

// start runs a server for cfg with a plain HTTP listener, and an HTTPS one
// when tlsConf is set; t.Cleanup shuts it down.
func start(t testing.TB, cfg config, tlsConf *tls.Config) *running {
	t.Helper()
	srv, err := newServer(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(srv.close)
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		return ln
	}
	r := &running{srv: srv, done: make(chan error, 1)}
	var eps []endpoint
	if tlsConf == nil {
		ln := listen()
		r.httpURL = "http://" + ln.Addr().String()
		eps = append(eps, endpoint{ln: ln, kind: serveAll})
	} else {
		ln := listen()
		r.httpsURL = "https://" + ln.Addr().String()
		eps = append(eps, endpoint{ln: ln, kind: serveAll, tls: tlsConf})
	}
	hl := listen()
	r.healthURL = "http://" + hl.Addr().String() + "/healthz"
	eps = append(eps, endpoint{ln: hl, kind: serveHealth})
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- srv.serve(ctx, eps, 5*time.Second) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			t.Error("server did not shut down")
		}
	})
	return r
}

// newClient bootstraps a verify client against baseURL in its own store.
func newClient(t testing.TB, baseURL string, hc *http.Client, rootJSON []byte, c verify.Clock) (*verify.Client, string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	store := verify.DirTrustStore{Dir: dir}
	require.NoError(t, verify.Bootstrap(ctx, store, rootJSON, manifest.Limits{}))
	client, err := verify.New(ctx, verify.Config{
		MetadataURL: baseURL + "/metadata/",
		TargetsURL:  baseURL + "/targets/",
		Fetcher:     &verify.HTTPFetcher{Client: hc, Retries: -1},
		Store:       store,
		Clock:       c,
	})
	require.NoError(t, err)
	return client, dir
}

// trustedTimestampVersion reads the timestamp version a client stored.
func trustedTimestampVersion(t testing.TB, storeDir string) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(storeDir, verify.DirTrustStore{}.FileName(manifest.RoleTimestamp)))
	require.NoError(t, err)
	ts, err := manifest.ParseUnverified[manifest.Timestamp](manifest.RoleTimestamp, b, manifest.Limits{})
	require.NoError(t, err)
	return ts.Signed.Version
}

// getHealth fetches /healthz.
func getHealth(t testing.TB, url string) (int, healthReport) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	var rep healthReport
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &rep), "%s", b)
	return resp.StatusCode, rep
}

// pki is a CA able to issue server and device certificates (ECDSA P-256).
type pki struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

var serial struct {
	mu sync.Mutex
	n  int64
}

func nextSerial() *big.Int {
	serial.mu.Lock()
	defer serial.mu.Unlock()
	serial.n++
	return big.NewInt(serial.n)
}

func newCA(t testing.TB, name string) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &pki{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a leaf certificate for a server (127.0.0.1) or a device.
func (ca *pki) issue(t testing.TB, name string, server bool) (tls.Certificate, []byte, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
	return pair, certPEM, keyPEM
}

// tlsFiles is the server's TLS material on disk, as the flags take it.
type tlsFiles struct {
	cert, key, clientCA string
	serverCA            *x509.CertPool // for clients
}

func writeTLS(t testing.TB, deviceCA *pki) tlsFiles {
	t.Helper()
	dir := t.TempDir()
	serverCA := newCA(t, "update server CA")
	_, certPEM, keyPEM := serverCA.issue(t, "updates.example", true)
	f := tlsFiles{cert: filepath.Join(dir, "server.pem"), key: filepath.Join(dir, "server-key.pem"), serverCA: x509.NewCertPool()}
	require.NoError(t, os.WriteFile(f.cert, certPEM, 0o644))
	require.NoError(t, os.WriteFile(f.key, keyPEM, 0o600))
	f.serverCA.AddCert(serverCA.cert)
	if deviceCA != nil {
		f.clientCA = filepath.Join(dir, "device-ca.pem")
		require.NoError(t, os.WriteFile(f.clientCA, deviceCA.pem, 0o644))
	}
	return f
}

// httpsClient trusts the server CA and presents cert, if any.
func httpsClient(roots *x509.CertPool, cert *tls.Certificate) *http.Client {
	conf := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		conf.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: conf, ForceAttemptHTTP2: true}, Timeout: 30 * time.Second}
}
