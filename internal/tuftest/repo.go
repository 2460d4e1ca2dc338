// Package tuftest builds TUF repositories for tests directly with go-tuf's
// metadata API and serves them on 127.0.0.1, so that otaseal's client is
// tested against documents it did not produce itself. Tests change any
// document at will to play a malicious repository or mirror.
package tuftest

import (
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

// Now is the time the repository's documents are made at.
var Now = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// Signer is a test key: an ed25519 signer and its TUF key.
type Signer struct {
	signature.Signer
	Key *metadata.Key
}

// NewSigner derives a fixed ed25519 key from name, so vectors are stable.
func NewSigner(t testing.TB, name string) Signer {
	seed := sha256.Sum256([]byte("otaseal verify test key " + name))
	priv := ed25519.NewKeyFromSeed(seed[:])
	s, err := signature.LoadSigner(priv, crypto.Hash(0))
	require.NoError(t, err)
	k, err := metadata.KeyFromPublicKey(priv.Public())
	require.NoError(t, err)
	return Signer{Signer: s, Key: k}
}

// Repo is a served TUF repository whose documents tests change at will.
// Fields are the documents as go-tuf values; change them, then Publish.
type Repo struct {
	t         testing.TB
	mu        sync.Mutex
	Keys      map[string]Signer // by role name
	Root      *metadata.Metadata[metadata.RootType]
	Targets   map[string]*metadata.Metadata[metadata.TargetsType] // top-level and delegated
	Snapshot  *metadata.Metadata[metadata.SnapshotType]
	Timestamp *metadata.Metadata[metadata.TimestampType]
	files     map[string][]byte // served path -> bytes
	blobs     map[string][]byte // target path -> content
	Srv       *httptest.Server
	log       []string // request paths
	// override lets a test answer a path itself (an attacker's mirror).
	override func(path string) ([]byte, bool)
}

// NewRepo returns a published repository with one key per role, served on
// 127.0.0.1 until the test ends.
func NewRepo(t testing.TB) *Repo {
	r := &Repo{t: t, Keys: map[string]Signer{}, files: map[string][]byte{}, blobs: map[string][]byte{},
		Targets: map[string]*metadata.Metadata[metadata.TargetsType]{}}
	r.Root = metadata.Root(Now.AddDate(1, 0, 0))
	r.Root.Signed.ConsistentSnapshot = false // tests that want it turn it on
	for _, role := range []string{"root", "timestamp", "snapshot", "targets"} {
		s := NewSigner(t, role)
		r.Keys[role] = s
		require.NoError(t, r.Root.Signed.AddKey(s.Key, role))
	}
	r.Targets["targets"] = metadata.Targets(Now.AddDate(0, 3, 0))
	r.Snapshot = metadata.Snapshot(Now.AddDate(0, 0, 7))
	r.Timestamp = metadata.Timestamp(Now.AddDate(0, 0, 1))
	r.Srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Srv.Close)
	r.PublishRoot()
	r.Publish()
	return r
}

func (r *Repo) serve(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	path := strings.TrimPrefix(req.URL.Path, "/")
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

// File returns the bytes served at path ("metadata/timestamp.json").
func (r *Repo) File(path string) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.files[path]
}

// Requests returns the paths requested since the last call, in order.
func (r *Repo) Requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.log
	r.log = nil
	return out
}

// MetadataURL is the base URL of the metadata, ending in "/".
func (r *Repo) MetadataURL() string { return r.Srv.URL + "/metadata/" }

// TargetsURL is the base URL of the targets, ending in "/".
func (r *Repo) TargetsURL() string { return r.Srv.URL + "/targets/" }

// SignBytes signs md with signers (replacing its signatures) and returns
// its compact JSON.
func SignBytes[T metadata.Roles](t testing.TB, md *metadata.Metadata[T], signers ...Signer) []byte {
	md.ClearSignatures()
	for _, s := range signers {
		_, err := md.Sign(s.Signer)
		require.NoError(t, err)
	}
	b, err := md.ToBytes(false)
	require.NoError(t, err)
	return b
}

// PublishRoot signs the current root with the root key(s) given (default:
// the current root key) and serves it as VERSION.root.json.
func (r *Repo) PublishRoot(signers ...Signer) []byte {
	if len(signers) == 0 {
		signers = []Signer{r.Keys["root"]}
	}
	b := SignBytes(r.t, r.Root, signers...)
	r.mu.Lock()
	r.files[fmt.Sprintf("metadata/%d.root.json", r.Root.Signed.Version)] = b
	r.mu.Unlock()
	return b
}

// RootJSON returns the published root of version.
func (r *Repo) RootJSON(version int64) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.files[fmt.Sprintf("metadata/%d.root.json", version)]
}

// AddTarget adds content under path to role's targets.
func (r *Repo) AddTarget(role, path string, content []byte, set func(*metadata.TargetFiles)) {
	tf, err := metadata.TargetFile().FromBytes(path, content, "sha256", "sha512")
	require.NoError(r.t, err)
	if set != nil {
		set(tf)
	}
	r.Targets[role].Signed.Targets[path] = tf
	r.blobs[path] = content
}

// Delegate adds a delegated role to delegator, signed by a key of its own.
func (r *Repo) Delegate(delegator string, role metadata.DelegatedRole) {
	s := NewSigner(r.t, "delegated "+role.Name)
	r.Keys[role.Name] = s
	d := r.Targets[delegator].Signed.Delegations
	if d == nil {
		d = &metadata.Delegations{Keys: map[string]*metadata.Key{}}
		r.Targets[delegator].Signed.Delegations = d
	}
	id, err := s.Key.ID()
	require.NoError(r.t, err)
	d.Keys[id] = s.Key
	role.KeyIDs = []string{id}
	if role.Threshold == 0 {
		role.Threshold = 1
	}
	d.Roles = append(d.Roles, role)
	if r.Targets[role.Name] == nil {
		r.Targets[role.Name] = metadata.Targets(Now.AddDate(0, 3, 0))
	}
}

// Publish bumps and signs every targets role, the snapshot and the
// timestamp, and serves them (plain and consistent-snapshot names).
func (r *Repo) Publish() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, md := range r.Targets {
		md.Signed.Version++
		b := SignBytes(r.t, md, r.Keys[name])
		r.files["metadata/"+name+".json"] = b
		r.files[fmt.Sprintf("metadata/%d.%s.json", md.Signed.Version, name)] = b
		r.Snapshot.Signed.Meta[name+".json"] = metadata.MetaFile(md.Signed.Version)
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
	r.Snapshot.Signed.Version++
	sb := SignBytes(r.t, r.Snapshot, r.Keys["snapshot"])
	r.files["metadata/snapshot.json"] = sb
	r.files[fmt.Sprintf("metadata/%d.snapshot.json", r.Snapshot.Signed.Version)] = sb
	r.publishTimestampLocked()
}

// SetFile serves data at path (relative to the server root).
func (r *Repo) SetFile(path string, data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.files[path] = data
}

// GetFile returns what is served at path.
func (r *Repo) GetFile(path string) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.files[path]
}

// SetOverride lets f answer any request first (nil removes it).
func (r *Repo) SetOverride(f func(path string) ([]byte, bool)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.override = f
}

// SetMeta serves a metadata document under its plain and its
// consistent-snapshot name, as a mirror would.
func (r *Repo) SetMeta(role string, version int64, data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.files["metadata/"+role+".json"] = data
	r.files[fmt.Sprintf("metadata/%d.%s.json", version, role)] = data
}

// PublishTimestamp bumps and signs the timestamp alone.
func (r *Repo) PublishTimestamp() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.publishTimestampLocked()
}

func (r *Repo) publishTimestampLocked() {
	r.Timestamp.Signed.Version++
	r.Timestamp.Signed.Meta["snapshot.json"] = metadata.MetaFile(r.Snapshot.Signed.Version)
	manifest.SetSignedAt(&r.Timestamp.Signed, Now)
	r.files["metadata/timestamp.json"] = SignBytes(r.t, r.Timestamp, r.Keys["timestamp"])
}
