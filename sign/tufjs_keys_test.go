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

// tuf-js reads every key type this package signs with: RSA-PSS, ECDSA
// P-256 and ECDSA P-384 (tuf-js before 6.0.2 hashed every ECDSA
// signature with SHA-256 whatever the scheme said, so P-384 roles failed;
// the pinned 6.0.2 uses the scheme's SHA-384), and go-tuf reads them too.
func TestTufJSKeyTypes(t *testing.T) {
	node := requireTufJS(t)
	for _, key := range []string{"rsa2048", "p256", "p384"} {
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
			require.Equal(t, 0, code, "tuf-js refuses a %s targets role: %s", key, stderr)
			// go-tuf reads it too.
			_, _, err = newGoTUFClient(t, url, rootBytesOf(t, root), now).fetch("a.bin")
			require.NoError(t, err)
		})
	}
}
