package sign

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/manifest"
)

// Test keys are fixed files under testdata/keys (RSA generation is slow
// under -race); each is parsed once per test binary.
var (
	testSignersMu sync.Mutex
	testSigners   = map[string]*Signer{}
)

func testSigner(t testing.TB, name string) *Signer {
	t.Helper()
	testSignersMu.Lock()
	defer testSignersMu.Unlock()
	if s, ok := testSigners[name]; ok {
		return s
	}
	s, err := LoadPEMSignerFile(context.Background(), filepath.Join("testdata", "keys", name+".pem"), nil)
	require.NoError(t, err, name)
	testSigners[name] = s
	return s
}

func readTestFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

var testEpoch = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// testRoot builds an unsigned root: root 2-of-3 (ed25519-1..3), targets
// (p256), snapshot (ed25519-4), timestamp (ed25519-5).
func testRoot(t testing.TB) *manifest.Metadata[manifest.Root] {
	t.Helper()
	spec := RootSpec{
		Roles: map[string]RoleKeys{
			manifest.RoleRoot:      {Threshold: 2, Keys: keysOf(t, "ed25519-1", "ed25519-2", "ed25519-3")},
			manifest.RoleTargets:   {Threshold: 1, Keys: keysOf(t, "p256")},
			manifest.RoleSnapshot:  {Threshold: 1, Keys: keysOf(t, "ed25519-4")},
			manifest.RoleTimestamp: {Threshold: 1, Keys: keysOf(t, "ed25519-5")},
		},
	}
	root, err := NewRoot(spec, testEpoch.Add(365*24*time.Hour))
	require.NoError(t, err)
	return root
}

func keysOf(t testing.TB, names ...string) []*manifest.Key {
	var out []*manifest.Key
	for _, n := range names {
		out = append(out, testSigner(t, n).Key())
	}
	return out
}

func signersOf(t testing.TB, names ...string) []*Signer {
	var out []*Signer
	for _, n := range names {
		out = append(out, testSigner(t, n))
	}
	return out
}

// requireTool skips when a real peer is missing locally, and fails in CI
// (CI set), where .ci/run installs it.
func requireTool(t *testing.T, what string, ok bool) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is required in CI but missing", what)
	}
	t.Skipf("%s not installed; skipping (it runs in CI)", what)
}
