package verify

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otaseal/otaseal/internal/tuftest"
	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

// The differential test: a corpus of repositories published by package
// sign, most of them damaged on the way to the device, read by our client
// and by go-tuf's updater. Both must accept or reject each one alike.

func testSigner(t testing.TB, name string) *sign.Signer {
	seed := sha256.Sum256([]byte("otaseal differential key " + name))
	s, err := sign.SignerFromPrivateKey(context.Background(), ed25519.NewKeyFromSeed(seed[:]))
	require.NoError(t, err)
	return s
}

type signedRepo struct {
	dir      string
	rootJSON []byte
	url      string
}

// publishRepo publishes a repository with firmware in the top-level
// targets role and in a delegated role, at time now.
func publishRepo(t *testing.T, now time.Time, consistent bool) *signedRepo {
	ctx := context.Background()
	keys := map[string]*sign.Signer{}
	roles := map[string]sign.RoleKeys{}
	for _, role := range []string{"root", "targets", "snapshot", "timestamp"} {
		keys[role] = testSigner(t, role)
		roles[role] = sign.RoleKeys{Threshold: 1, Keys: []*manifest.Key{keys[role].Key()}}
	}
	root, err := sign.NewRoot(sign.RootSpec{Roles: roles, AllowInPlaceMetadata: !consistent}, now.AddDate(1, 0, 0))
	require.NoError(t, err)
	policy, err := sign.PolicyFromRoot(&root.Signed)
	require.NoError(t, err)
	_, err = sign.SignRole(ctx, policy, "root", root, []*sign.Signer{keys["root"]})
	require.NoError(t, err)
	dir := t.TempDir()
	store, err := sign.NewDirStorage(dir)
	require.NoError(t, err)
	repo, err := sign.CreateRepository(ctx, store, root, sign.RepositoryOptions{Now: func() time.Time { return now }, TempDir: t.TempDir()})
	require.NoError(t, err)
	defer repo.Close()
	team := testSigner(t, "team")
	require.NoError(t, repo.AddDelegation("targets", sign.Delegation{Name: "team", Paths: []string{"team/*/*"},
		Keys: sign.RoleKeys{Threshold: 1, Keys: []*manifest.Key{team.Key()}}}))
	for _, p := range []string{"acme/1.0.0/fw.bin", "team/1.0.0/fw.bin"} {
		fw := manifest.Firmware{Version: manifest.MustParseVersion("1.0.0"), SecurityVersion: 1, HardwareIDs: []string{strings.Split(p, "/")[0]}}
		require.NoError(t, repo.AddFirmware(ctx, p, bytes.NewReader([]byte("image of "+p)), fw))
	}
	require.NoError(t, repo.Publish(ctx, []*sign.Signer{keys["targets"], keys["snapshot"], keys["timestamp"], team}))
	rootJSON, err := root.ToBytes(false)
	require.NoError(t, err)
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	return &signedRepo{dir: dir, rootJSON: rootJSON, url: srv.URL}
}

// ours refreshes a fresh device and downloads target.
func (r *signedRepo) ours(t *testing.T, now time.Time, target string) error {
	ctx := context.Background()
	store := newMemStore()
	require.NoError(t, Bootstrap(ctx, store, r.rootJSON, manifest.Limits{}))
	c, err := New(ctx, Config{MetadataURL: r.url + "/metadata/", TargetsURL: r.url + "/targets/",
		Fetcher: &HTTPFetcher{Retries: -1}, Store: store, Clock: &fixedClock{now}})
	require.NoError(t, err)
	if err := c.Refresh(ctx); err != nil {
		return err
	}
	tf, _, err := c.FindTarget(ctx, target)
	if err != nil {
		return err
	}
	return c.Download(ctx, target, tf, io.Discard)
}

// theirs does the same with go-tuf's updater.
func (r *signedRepo) theirs(t *testing.T, now time.Time, target string) error {
	cfg, err := config.New(r.url+"/metadata/", r.rootJSON)
	require.NoError(t, err)
	cache := t.TempDir()
	cfg.LocalMetadataDir = filepath.Join(cache, "metadata")
	cfg.LocalTargetsDir = filepath.Join(cache, "targets")
	cfg.RemoteTargetsURL = r.url + "/targets/"
	cfg.Fetcher = tuftest.GoTUFFetcher{Client: &http.Client{Timeout: 10 * time.Second}}
	require.NoError(t, cfg.EnsurePathsExist())
	up, err := updater.New(cfg)
	if err != nil {
		return err
	}
	up.UnsafeSetRefTime(now)
	if err := up.Refresh(); err != nil {
		return err
	}
	tf, err := up.GetTargetInfo(target)
	if err != nil {
		return err
	}
	_, _, err = up.DownloadTarget(tf, filepath.Join(cache, "dl"), "")
	return err
}

// mutation damages the published repository in one way.
type mutation struct {
	name  string
	apply func(t *testing.T, dir string)
}

func metaFile(t *testing.T, dir, role string) string {
	m, err := filepath.Glob(filepath.Join(dir, "metadata", "*"+role+".json"))
	require.NoError(t, err)
	require.NotEmpty(t, m, role)
	// The versioned name when there is one (consistent snapshots).
	for _, f := range m {
		if filepath.Base(f) != role+".json" {
			return f
		}
	}
	return m[0]
}

func editFile(t *testing.T, path string, f func([]byte) []byte) {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, f(b), 0o644))
}

func corpus(t *testing.T) []mutation {
	ms := []mutation{{"valid", func(*testing.T, string) {}}}
	for _, role := range []string{"timestamp", "snapshot", "targets", "team"} {
		role := role
		for k := 0; k < 12; k++ {
			k := k
			ms = append(ms, mutation{fmt.Sprintf("%s flip %d/12", role, k), func(t *testing.T, dir string) {
				editFile(t, metaFile(t, dir, role), func(b []byte) []byte {
					b[k*len(b)/12] ^= 0x01
					return b
				})
			}})
		}
		ms = append(ms,
			mutation{role + " truncated", func(t *testing.T, dir string) {
				editFile(t, metaFile(t, dir, role), func(b []byte) []byte { return b[:len(b)/2] })
			}},
			mutation{role + " empty", func(t *testing.T, dir string) {
				editFile(t, metaFile(t, dir, role), func([]byte) []byte { return nil })
			}},
			mutation{role + " deleted", func(t *testing.T, dir string) {
				require.NoError(t, os.Remove(metaFile(t, dir, role)))
			}},
			mutation{role + " padded", func(t *testing.T, dir string) {
				editFile(t, metaFile(t, dir, role), func(b []byte) []byte { return append(b, ' ') })
			}},
		)
	}
	ms = append(ms, mutation{"target tampered", func(t *testing.T, dir string) {
		m, err := filepath.Glob(filepath.Join(dir, "targets", "acme", "1.0.0", "*fw.bin"))
		require.NoError(t, err)
		for _, f := range m {
			editFile(t, f, func(b []byte) []byte { b[0] ^= 1; return b })
		}
	}})
	return ms
}

func TestDifferentialWithGoTUF(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	rejected, total := 0, 0
	defer func() {
		t.Logf("%d of %d damaged repositories rejected by both clients", rejected, total)
		// The corpus must bite: most damage is caught.
		assert.Greater(t, rejected, total/2)
	}()
	for _, consistent := range []bool{true, false} {
		for _, m := range corpus(t) {
			for _, target := range []string{"acme/1.0.0/fw.bin", "team/1.0.0/fw.bin"} {
				name := fmt.Sprintf("consistent=%v/%s/%s", consistent, m.name, target)
				if m.name != "valid" {
					total++
				}
				t.Run(name, func(t *testing.T) {
					r := publishRepo(t, now, consistent)
					m.apply(t, r.dir)
					errOurs := r.ours(t, now, target)
					errTheirs := r.theirs(t, now, target)
					assert.Equal(t, errTheirs == nil, errOurs == nil, "go-tuf: %v\notaseal: %v", errTheirs, errOurs)
					if m.name == "valid" {
						assert.NoError(t, errOurs)
					} else if errOurs != nil {
						rejected++
					}
				})
			}
		}
		// Time: both refuse the same repository once it has expired.
		for _, at := range []time.Duration{0, 23 * time.Hour, 25 * time.Hour, 8 * 24 * time.Hour} {
			t.Run(fmt.Sprintf("consistent=%v/at+%v", consistent, at), func(t *testing.T) {
				r := publishRepo(t, now, consistent)
				errOurs := r.ours(t, now.Add(at), "acme/1.0.0/fw.bin")
				errTheirs := r.theirs(t, now.Add(at), "acme/1.0.0/fw.bin")
				assert.Equal(t, errTheirs == nil, errOurs == nil, "go-tuf: %v\notaseal: %v", errTheirs, errOurs)
				assert.Equal(t, at < 24*time.Hour, errOurs == nil, "timestamp lives one day")
			})
		}
	}
}
