package fsname

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestEscape(t *testing.T) {
	tests := []struct{ name, want string }{
		{"root", "root"},
		{"acme-gw_r2", "acme-gw_r2"},
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
// file names that no such file system merges: pure lower-case ASCII, so
// folding cannot make two of them equal.
func TestEscapeDistinctUnderFolding(t *testing.T) {
	names := []string{
		"root", "Root", "ROOT", "ｒｏｏｔ", "ro\u200cot",
		"snapshot", "s\u0301napshot", "śnapshot", "snapshot\u0301",
		"k", "K", "\u212a", // Kelvin sign folds to k
		"ss", "ß", "SS", "ſs",
		"a/b", "a%2Fb", "a=2fb", `a\b`,
		strings.Repeat("x", MaxPlain), strings.Repeat("X", MaxPlain),
	}
	seen := map[string]string{}
	for _, n := range names {
		f := Escape(n)
		for i := 0; i < len(f); i++ {
			c := f[i]
			ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '=' || c == '~'
			assert.True(t, ok, "%q: byte %q in %q", n, c, f)
		}
		key := strings.ToLower(f)
		if prev, dup := seen[key]; dup {
			t.Errorf("%q and %q share file %q", prev, n, f)
		}
		for other, of := range seen {
			assert.False(t, strings.EqualFold(of, f), "%q and %q fold together", other, n)
		}
		seen[key] = n
	}
}
