package manifest

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseVersion(t *testing.T) {
	good := []string{"0.0.0", "1.2.3", "10.20.30", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-0.3.7",
		"1.0.0-x.7.z.92", "1.0.0+20130313144700", "1.0.0-beta+exp.sha.5114f85", "1.0.0-x-y-z.--",
		"18446744073709551615.0.0"}
	for _, s := range good {
		v, err := ParseVersion(s)
		if assert.NoError(t, err, s) {
			assert.Equal(t, s, v.String())
		}
	}
	bad := []string{"", "1", "1.2", "1.2.3.4", "v1.2.3", "01.2.3", "1.02.3", "1.2.03", "1.2.3-", "1.2.3+",
		"1.2.3-01", "1.2.3-a..b", "1.2.3+a..b", "1.2.3-a_b", " 1.2.3", "1.2.3 ", "1.2.-3", "-1.2.3",
		"18446744073709551616.0.0", "1.2.3-\x00", "1.2.3-é"}
	for _, s := range bad {
		_, err := ParseVersion(s)
		assert.ErrorIs(t, err, ErrMalformedVersion, "%q", s)
	}
	long := "1.2.3-" + string(make([]byte, MaxVersionLength))
	_, err := ParseVersion(long)
	assert.ErrorIs(t, err, ErrMalformedVersion)
	assert.Less(t, len(err.Error()), 4*MaxVersionLength+200, "error must not echo unbounded input (each byte quotes to at most 4)")
}

func TestVersionCompare(t *testing.T) {
	// Precedence order from Semantic Versioning 2.0.0, section 11, plus
	// numeric identifiers longer than 64 bits.
	ordered := []string{"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
		"1.0.0-beta.11", "1.0.0-beta.99999999999999999999", "1.0.0-beta.100000000000000000000", "1.0.0-rc.1",
		"1.0.0", "1.0.1", "1.1.0", "2.0.0", "2.1.0", "2.1.1", "10.0.0"}
	for i, a := range ordered {
		for j, b := range ordered {
			got := MustParseVersion(a).Compare(MustParseVersion(b))
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			assert.Equal(t, want, got, "%s vs %s", a, b)
		}
	}
	assert.Equal(t, 0, MustParseVersion("1.0.0+a").Compare(MustParseVersion("1.0.0+b")), "build metadata has no precedence")
	assert.True(t, MustParseVersion("1.0.0-rc.1").Prerelease())
	assert.False(t, MustParseVersion("1.0.0+b").Prerelease())
}

func TestVersionText(t *testing.T) {
	var v Version
	require.NoError(t, v.UnmarshalText([]byte("2.4.1-rc.1")))
	b, err := v.MarshalText()
	require.NoError(t, err)
	assert.Equal(t, "2.4.1-rc.1", string(b))
	assert.Error(t, v.UnmarshalText([]byte("2.4")))
	_, err = Version{}.MarshalText()
	assert.ErrorIs(t, err, ErrMalformedVersion)
	assert.True(t, Version{}.IsZero())
	assert.Panics(t, func() { MustParseVersion("nope") })
}

// ParseVersion reads versions outside any otaseal object too (a device's
// state file, a command line): its error is no schema error.
func TestVersionErrorIsDistinct(t *testing.T) {
	_, err := ParseVersion("1.2")
	assert.ErrorIs(t, err, ErrMalformedVersion)
	assert.False(t, errors.Is(err, ErrSchema))
	assert.False(t, errors.As(err, new(*FieldError)))
}
