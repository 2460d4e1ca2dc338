package verify

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otaseal/otaseal/manifest"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/stretchr/testify/require"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// The test repository is built with go-tuf's metadata API directly, so the
// client is tested against documents it did not produce itself.

var testNow = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

type testSigner struct {
	signature.Signer
	key *metadata.Key
}

func newSigner(t testing.TB, name string) testSigner {
	seed := sha256.Sum256([]byte("otaseal verify test key " + name))
	priv := ed25519.NewKeyFromSeed(seed[:])
	s, err := signature.LoadSigner(priv, crypto.Hash(0))
	require.NoError(t, err)
	k, err := metadata.KeyFromPublicKey(priv.Public())
	require.NoError(t, err)
	return testSigner{Signer: s, key: k}
}

// repo is a served TUF repository whose documents tests change at will.
type repo struct {
	t       testing.TB
	mu      sync.Mutex
	keys    map[string]testSigner // by role name
	root    *metadata.Metadata[metadata.RootType]
	targets map[string]*metadata.Metadata[metadata.TargetsType] // top-level and delegated
	snap    *metadata.Metadata[metadata.SnapshotType]
	ts      *metadata.Metadata[metadata.TimestampType]
	files   map[string][]byte // served path -> bytes
	blobs   map[string][]byte // target path -> content
	srv     *httptest.Server
	log     []string // request paths
	// override lets a test answer a path itself (an attacker's mirror).
	override func(path string) ([]byte, bool)
	client   *Client // the device under attack, for attacks that need it to move first
}

func newRepo(t testing.TB) *repo {
	r := &repo{t: t, keys: map[string]testSigner{}, files: map[string][]byte{}, blobs: map[string][]byte{},
		targets: map[string]*metadata.Metadata[metadata.TargetsType]{}}
	r.root = metadata.Root(testNow.AddDate(1, 0, 0))
	r.root.Signed.ConsistentSnapshot = false // tests that want it turn it on
	for _, role := range []string{"root", "timestamp", "snapshot", "targets"} {
		s := newSigner(t, role)
		r.keys[role] = s
		require.NoError(t, r.root.Signed.AddKey(s.key, role))
	}
	r.targets["targets"] = metadata.Targets(testNow.AddDate(0, 3, 0))
	r.snap = metadata.Snapshot(testNow.AddDate(0, 0, 7))
	r.ts = metadata.Timestamp(testNow.AddDate(0, 0, 1))
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	r.publishRoot()
	r.publish()
	return r
}

func (r *repo) serve(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	path := strings.TrimPrefix(req.URL.EscapedPath(), "/")
	r.log = append(r.log, path)
	override := r.override
	data, ok := r.files[path]
	r.mu.Unlock()
	if override != nil {
		if d, ok2 := override(path); ok2 {
			data, ok = d, true
		}
	}
	if !ok {
		http.NotFound(w, req)
		return
	}
	w.Write(data)
}

func (r *repo) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.log
	r.log = nil
	return out
}

func (r *repo) metadataURL() string { return r.srv.URL + "/metadata/" }
func (r *repo) targetsURL() string  { return r.srv.URL + "/targets/" }

func signBytes[T metadata.Roles](t testing.TB, md *metadata.Metadata[T], signers ...testSigner) []byte {
	md.ClearSignatures()
	for _, s := range signers {
		_, err := md.Sign(s.Signer)
		require.NoError(t, err)
	}
	b, err := md.ToBytes(false)
	require.NoError(t, err)
	return b
}

// publishRoot signs the current root with the root key(s) given (default:
// the current root key) and serves it as VERSION.root.json.
func (r *repo) publishRoot(signers ...testSigner) []byte {
	if len(signers) == 0 {
		signers = []testSigner{r.keys["root"]}
	}
	b := signBytes(r.t, r.root, signers...)
	r.mu.Lock()
	r.files[fmt.Sprintf("metadata/%d.root.json", r.root.Signed.Version)] = b
	r.mu.Unlock()
	return b
}

func (r *repo) rootJSON(version int64) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.files[fmt.Sprintf("metadata/%d.root.json", version)]
}

// addTarget adds content under path to role's targets.
func (r *repo) addTarget(role, path string, content []byte, set func(*metadata.TargetFiles)) {
	tf, err := metadata.TargetFile().FromBytes(path, content, "sha256", "sha512")
	require.NoError(r.t, err)
	if set != nil {
		set(tf)
	}
	r.targets[role].Signed.Targets[path] = tf
	r.blobs[path] = content
}

// delegate adds a delegated role to delegator, signed by a key of its own.
func (r *repo) delegate(delegator string, role metadata.DelegatedRole) {
	s := newSigner(r.t, "delegated "+role.Name)
	r.keys[role.Name] = s
	d := r.targets[delegator].Signed.Delegations
	if d == nil {
		d = &metadata.Delegations{Keys: map[string]*metadata.Key{}}
		r.targets[delegator].Signed.Delegations = d
	}
	id, err := s.key.ID()
	require.NoError(r.t, err)
	d.Keys[id] = s.key
	role.KeyIDs = []string{id}
	if role.Threshold == 0 {
		role.Threshold = 1
	}
	d.Roles = append(d.Roles, role)
	if r.targets[role.Name] == nil {
		r.targets[role.Name] = metadata.Targets(testNow.AddDate(0, 3, 0))
	}
}

// publish bumps and signs every targets role, the snapshot and the
// timestamp, and serves them (plain and consistent-snapshot names).
func (r *repo) publish() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, md := range r.targets {
		md.Signed.Version++
		b := signBytes(r.t, md, r.keys[name])
		r.files["metadata/"+name+".json"] = b
		r.files[fmt.Sprintf("metadata/%d.%s.json", md.Signed.Version, name)] = b
		r.snap.Signed.Meta[name+".json"] = metadata.MetaFile(md.Signed.Version)
	}
	for path, content := range r.blobs {
		r.files["targets/"+path] = content
		sum := sha256.Sum256(content)
		dir, base := "", path
		if i := strings.LastIndex(path, "/"); i >= 0 {
			dir, base = path[:i+1], path[i+1:]
		}
		r.files[fmt.Sprintf("targets/%s%x.%s", dir, sum, base)] = content
	}
	r.snap.Signed.Version++
	sb := signBytes(r.t, r.snap, r.keys["snapshot"])
	r.files["metadata/snapshot.json"] = sb
	r.files[fmt.Sprintf("metadata/%d.snapshot.json", r.snap.Signed.Version)] = sb
	r.publishTimestampLocked()
}

// setFile and getFile let tests play the attacker's mirror.
func (r *repo) setFile(path string, data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.files[path] = data
}

func (r *repo) getFile(path string) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.files[path]
}

func (r *repo) setOverride(f func(path string) ([]byte, bool)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.override = f
}

// setMeta serves a metadata document under its plain and its
// consistent-snapshot name, as a mirror would.
func (r *repo) setMeta(role string, version int64, data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.files["metadata/"+role+".json"] = data
	r.files[fmt.Sprintf("metadata/%d.%s.json", version, role)] = data
}

func (r *repo) publishTimestamp() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.publishTimestampLocked()
}

func (r *repo) publishTimestampLocked() {
	r.ts.Signed.Version++
	r.ts.Signed.Meta["snapshot.json"] = metadata.MetaFile(r.snap.Signed.Version)
	manifest.SetSignedAt(&r.ts.Signed, testNow)
	r.files["metadata/timestamp.json"] = signBytes(r.t, r.ts, r.keys["timestamp"])
}

// memStore is a TrustStore in memory.
type memStore struct {
	mu   sync.Mutex
	docs map[string][]byte
}

func newMemStore() *memStore { return &memStore{docs: map[string][]byte{}} }

func (m *memStore) LoadMetadata(_ context.Context, role string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.docs[role], nil
}

func (m *memStore) StoreMetadata(_ context.Context, role string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if data == nil {
		delete(m.docs, role)
	} else {
		m.docs[role] = append([]byte(nil), data...)
	}
	return nil
}

type fixedClock struct{ t time.Time }

func (c *fixedClock) Now() time.Time { return c.t }

// newClient bootstraps a store with the repository's version-1 root.
func newClient(t testing.TB, r *repo, clock Clock) (*Client, *memStore) {
	store := newMemStore()
	require.NoError(t, Bootstrap(context.Background(), store, r.rootJSON(1), manifest.Limits{}))
	if clock == nil {
		clock = &fixedClock{testNow}
	}
	c, err := New(context.Background(), Config{
		MetadataURL: r.metadataURL(), TargetsURL: r.targetsURL(),
		Fetcher: &HTTPFetcher{Retries: -1}, Store: store, Clock: clock,
	})
	require.NoError(t, err)
	return c, store
}
