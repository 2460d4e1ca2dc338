package fsname

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// The mapping is an on-disk format (rollback's state records, verify's
// DirTrustStore): these vectors must never change.
func TestEscape(t *testing.T) {
	tests := []struct{ name, want string }{
		{"root", "root"},
		{"acme-gw_r2", "acme-gw_r2"},
		{"A", "=41"},
		{"Root", "=52oot"},
		{"metadata/root", "metadata=2froot"},
		{"..", "=2e=2e"},
		{`a\b:c`, "a=5cb=3ac"},
		{"a=b", "a=3db"},
		{"~", "=7e"},
		{"é", "=c3=a9"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, Escape(tt.name), tt.name)
	}
	long := Escape(strings.Repeat("/", 100))
	assert.True(t, strings.HasPrefix(long, "~"))
	assert.Len(t, long, 65)
	assert.NotEqual(t, long, Escape(strings.Repeat("/", 101)))
}

// Names that a case-insensitive or normalising file system would merge get
// file names that no file system merges: lower-case ASCII, which case
// folding and Unicode normalisation leave as is, all distinct.
func TestEscapeDistinctUnderFolding(t *testing.T) {
	plain := regexp.MustCompile(`^(~[0-9a-f]{64}|[a-z0-9_=-]+)$`)
	names := []string{
		"root", "Root", "ROOT", "ｒｏｏｔ", "ro\u200cot",
		"snapshot", "s\u0301napshot", "\u015bnapshot", "snapshot\u0301",
		"k", "K", "\u212a", // Kelvin sign folds to k
		"ss", "ß", "SS", "ſs",
		"a/b", "a%2Fb", "a=2fb", `a\b`,
		strings.Repeat("x", MaxPlain), strings.Repeat("X", MaxPlain),
	}
	owner := map[string]string{}
	for _, n := range names {
		f := Escape(n)
		assert.Regexp(t, plain, f, n)
		if prev, dup := owner[f]; dup {
			t.Errorf("%q and %q share file %q", prev, n, f)
		}
		owner[f] = n
	}
}
