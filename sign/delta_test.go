package sign

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/delta"
	"github.com/otaseal/otaseal/manifest"
)

func makePatch(t testing.TB, old, new []byte, f delta.Format) []byte {
	t.Helper()
	s, err := delta.Diff(old, new)
	require.NoError(t, err)
	var b bytes.Buffer
	require.NoError(t, s.Encode(&b, f))
	return b.Bytes()
}

// AddDelta takes the ends from the repository, the format from the patch,
// and stages only a patch that rebuilds the signed to image (finding 6 of
// issue 22: a stream patch declared bsdiff40, and bytes that are no patch
// at all, were published).
func TestAddDeltaChecksPatch(t *testing.T) {
	ctx := context.Background()
	tr := newTestRepo(t, false)
	const from, to = "acme/1.0.0/firmware.bin", "acme/1.1.0/firmware.bin"
	old, new := tr.images[from], tr.images[to]

	// Both ends published; the file name says bsdiff, the magic says
	// otherwise, and the magic wins.
	for _, f := range []delta.Format{delta.FormatStream, delta.FormatBSDIFF40} {
		p := "acme/deltas/" + f.String() + ".bsdiff"
		require.NoError(t, tr.repo.AddDelta(ctx, p, from, to, bytes.NewReader(makePatch(t, old, new, f))))
		tf, _, ok := tr.repo.findTarget(p)
		require.True(t, ok)
		e, err := manifest.ReadEntry(tf)
		require.NoError(t, err)
		require.NotNil(t, e.Delta)
		assert.Equal(t, manifest.DeltaFormat(f.String()), e.Delta.Format)
		assert.Equal(t, manifest.DeltaEnd{Path: from, Length: int64(len(old)), SHA256: tr.repo.mustTarget(t, from).Hashes["sha256"]}, e.Delta.From)
		assert.Equal(t, to, e.Delta.To.Path)
	}

	// A staged to end is looked up too.
	staged := append(bytes.Clone(new), "1.2.0"...)
	tr.add(t, "acme/1.2.0/firmware.bin", staged, firmware("1.2.0", 3))
	require.NoError(t, tr.repo.AddDelta(ctx, "acme/deltas/1.1.0-1.2.0", to, "acme/1.2.0/firmware.bin",
		bytes.NewReader(makePatch(t, new, staged, delta.FormatStream))))

	other := bytes.Clone(new)
	other[100] ^= 1
	good := makePatch(t, old, new, delta.FormatStream)
	for _, tt := range []struct {
		name     string
		from, to string
		patch    []byte
		cause    error
	}{
		{"not a patch at all", from, to, []byte("not a patch at all"), delta.ErrFormat},
		{"empty", from, to, nil, delta.ErrFormat},
		{"builds other bytes", from, to, makePatch(t, old, other, delta.FormatStream), delta.ErrHashMismatch},
		{"builds other bytes, bsdiff40", from, to, makePatch(t, old, other, delta.FormatBSDIFF40), delta.ErrHashMismatch},
		{"wrong base", from, to, makePatch(t, image("elsewhere", 2000), new, delta.FormatStream), delta.ErrOldSize},
		{"truncated", from, to, good[:len(good)/2], delta.ErrTruncated},
		{"to another target", from, "acme/1.2.0/firmware.bin", good, nil},
		{"from is to", to, to, makePatch(t, new, new, delta.FormatStream), nil},
	} {
		err := tr.repo.AddDelta(ctx, "acme/deltas/bad", tt.from, tt.to, bytes.NewReader(tt.patch))
		assert.ErrorIs(t, err, ErrBadDelta, tt.name)
		assert.NotErrorIs(t, err, ErrTargetExists, tt.name)
		if tt.cause != nil {
			assert.ErrorIs(t, err, tt.cause, tt.name)
		}
		var de *DeltaError
		if assert.ErrorAs(t, err, &de, tt.name) {
			assert.Equal(t, "acme/deltas/bad", de.Path)
		}
		_, _, staged := tr.repo.findTarget("acme/deltas/bad")
		assert.False(t, staged, "%s: a refused patch is not staged", tt.name)
	}

	err := tr.repo.AddDelta(ctx, "acme/deltas/x", "acme/0.9.0/firmware.bin", to, bytes.NewReader(good))
	assert.ErrorIs(t, err, ErrNoTarget)
	require.NoError(t, tr.repo.Publish(ctx, allSigners(t)))
}

func (r *Repository) mustTarget(t testing.TB, p string) *manifest.TargetFile {
	tf, _, ok := r.findTarget(p)
	require.True(t, ok, p)
	return tf
}
