package verify

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// foldingNames are role names that a case-insensitive (macOS, Windows) or
// Unicode-normalising (APFS, HFS+) file system could merge with each other
// or with a top-level role's file.
var foldingNames = []string{
	"root", "Root", "ROOT", "ｒｏｏｔ", "ro\u200cot",
	"timestamp", "Timestamp", "TIMESTAMP",
	"snapshot", "Snapshot", "s\u0301napshot", "\u015bnapshot", "snapshot\u0301",
	"targets", "Targets", "ｔａｒｇｅｔｓ",
	"acme", "Acme", "ACME", "\u212acme", "kcme", // Kelvin sign folds to k
	"a/b", "a%2Fb", "a%2fb", `a\b`, "a:b", "a=2fb", ".", "..", "../root",
}

// A DirTrustStore on a store that folds case and normalises Unicode keeps
// every role apart: the files it uses are distinct even after folding, so
// a delegated role named "Root" never writes over root.json.
func TestDirTrustStoreFoldingFileSystem(t *testing.T) {
	ctx := context.Background()
	s := DirTrustStore{Dir: t.TempDir()}
	fileOf := map[string]string{} // folded file name -> role
	for _, role := range foldingNames {
		f := s.FileName(role)
		assert.Equal(t, filepath.Base(f), f, "%q: one file inside Dir", role)
		assert.False(t, strings.HasPrefix(f, "."), "%q: %q is hidden", role, f)
		for i := 0; i < len(f); i++ {
			// Lower-case printable ASCII is left alone by case folding
			// and by NFC, NFD and NFKC: what is distinct here is distinct
			// on the file system.
			assert.True(t, f[i] > 0x20 && f[i] < 0x7f && (f[i] < 'A' || f[i] > 'Z'), "%q: byte %#x in %q", role, f[i], f)
		}
		folded := strings.ToLower(f)
		if other, dup := fileOf[folded]; dup {
			t.Errorf("roles %q and %q share file %q on a case-insensitive file system", other, role, f)
		}
		for g, other := range fileOf {
			assert.False(t, strings.EqualFold(g, f), "roles %q and %q fold to one file", other, role)
		}
		fileOf[folded] = role
		require.NoError(t, s.StoreMetadata(ctx, role, []byte(role)))
	}
	for _, role := range foldingNames {
		got, err := s.LoadMetadata(ctx, role)
		require.NoError(t, err)
		assert.Equal(t, role, string(got))
	}
	entries, err := os.ReadDir(s.Dir)
	require.NoError(t, err)
	assert.Len(t, entries, len(foldingNames))
}

// Existing devices keep their state: the top-level roles keep the file
// names DirTrustStore always gave them, and so do the usual lower-case
// delegated names.
func TestDirTrustStoreFileNamesKept(t *testing.T) {
	for _, role := range []string{"root", "timestamp", "snapshot", "targets", "acme-gw-r2", "bins-0f"} {
		assert.Equal(t, role+".json", DirTrustStore{}.FileName(role))
	}
	assert.Equal(t, "=52oot.json", DirTrustStore{}.FileName("Root"))
}
