package sign

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/manifest"
)

// tuf-js reads RSA-PSS roles. It does not verify ecdsa-sha2-nistp384
// signatures (4.1.0 verifies ECDSA with Node's default SHA-256 digest
// whatever the scheme says), which go-tuf does: this pins the limitation
// documented in the package doc, and tells us when tuf-js fixes it.
func TestTufJSKeyTypes(t *testing.T) {
	node := requireTufJS(t)
	for _, tc := range []struct {
		key    string
		wantOK bool
	}{{"rsa2048", true}, {"p384", false}} {
		key := tc.key
		t.Run(key, func(t *testing.T) {
			ctx := context.Background()
			now := time.Now().UTC().Truncate(time.Second)
			spec := RootSpec{Roles: map[string]RoleKeys{
				manifest.RoleRoot:      {Threshold: 1, Keys: keysOf(t, "ed25519-1")},
				manifest.RoleTargets:   {Threshold: 1, Keys: keysOf(t, key)},
				manifest.RoleSnapshot:  {Threshold: 1, Keys: keysOf(t, "ed25519-4")},
				manifest.RoleTimestamp: {Threshold: 1, Keys: keysOf(t, "ed25519-5")},
			}}
			root, err := NewRoot(spec, now.Add(time.Hour))
			require.NoError(t, err)
			p, err := PolicyFromRoot(&root.Signed)
			require.NoError(t, err)
			_, err = SignRole(ctx, p, manifest.RoleRoot, root, signersOf(t, "ed25519-1"))
			require.NoError(t, err)
			dir := t.TempDir()
			store, err := NewDirStorage(dir)
			require.NoError(t, err)
			repo, err := CreateRepository(ctx, store, root, RepositoryOptions{Now: func() time.Time { return now }, TempDir: t.TempDir()})
			require.NoError(t, err)
			require.NoError(t, repo.AddFirmware(ctx, "a.bin", bytes.NewReader([]byte("a")), firmware("1.0.0", 0)))
			require.NoError(t, repo.Publish(ctx, signersOf(t, key, "ed25519-4", "ed25519-5")))
			rootFile := filepath.Join(t.TempDir(), "root.json")
			require.NoError(t, os.WriteFile(rootFile, rootBytesOf(t, root), 0o644))
			url := serveDir(t, dir)
			_, code, stderr := runTufJS(t, node, url, rootFile, t.TempDir(), "a.bin")
			if tc.wantOK {
				require.Equal(t, 0, code, stderr)
			} else {
				require.Equal(t, 1, code, "tuf-js now verifies %s; update the package doc", key)
				require.Contains(t, stderr, "targets was signed by 0/1 keys")
			}
			// go-tuf reads it either way.
			_, _, err = newGoTUFClient(t, url, rootBytesOf(t, root), now).fetch("a.bin")
			require.NoError(t, err)
		})
	}
}
