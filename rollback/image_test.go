package rollback

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/manifest"
)

func TestImageValidate(t *testing.T) {
	long := string(make([]byte, manifest.MaxTargetPathLen+1))
	tests := []struct {
		name   string
		mutate func(*Image)
	}{
		{"hardware", func(i *Image) { i.HardwareID = "" }},
		{"path", func(i *Image) { i.TargetPath = long }},
		{"version", func(i *Image) { i.Version = manifest.Version{} }},
		{"security version", func(i *Image) { i.SecurityVersion = manifest.MaxSafeInteger + 1 }},
		{"length", func(i *Image) { i.Length = -1 }},
		{"sha256", func(i *Image) { i.SHA256 = i.SHA256[:31] }},
		{"slot", func(i *Image) { i.Slot = "" }},
	}
	for _, tt := range tests {
		i := img("1.0.0", 1)
		require.NoError(t, i.Validate())
		tt.mutate(i)
		assert.ErrorIs(t, i.Validate(), ErrInvalidImage, tt.name)
	}
	var nilImg *Image
	assert.True(t, nilImg.Equal(nil))
	assert.False(t, img("1.0.0", 1).Equal(nil))
}
