package delta

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The names are the wire names of a delta target's "format" field; the old
// in-package name "stream" is gone, so that one format has one name.
func TestFormatNames(t *testing.T) {
	for _, tt := range []struct {
		name string
		want Format
	}{{"bsdiff40", FormatBSDIFF40}, {"otaseal-zstd", FormatStream}} {
		got, err := ParseFormat(tt.name)
		require.NoError(t, err)
		assert.Equal(t, tt.want, got)
		assert.Equal(t, tt.name, got.String())
	}
	for _, bad := range []string{"", "stream", "BSDIFF40", "otaseal-zstd "} {
		_, err := ParseFormat(bad)
		assert.ErrorIs(t, err, ErrFormat, "%q", bad)
	}
	assert.Equal(t, "Format(0)", Format(0).String())
}
