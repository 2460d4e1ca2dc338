package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"math/rand"
	"strings"
	"testing"

	"github.com/otaseal/otaseal/delta"
	"github.com/otaseal/otaseal/manifest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// firmwarePair returns an old image and a new one that shares most of it.
func firmwarePair() (old, new []byte) {
	rng := rand.New(rand.NewSource(7))
	old = make([]byte, 256<<10)
	rng.Read(old)
	new = bytes.Clone(old)
	for i := 0; i < 50; i++ { // scattered edits, as a rebuild makes
		new[rng.Intn(len(new))] ^= byte(rng.Intn(255) + 1)
	}
	new = append(new[:1000], append([]byte("inserted block of a new feature"), new[1000:]...)...)
	return old, new
}

func encodePatch(t *testing.T, old, new []byte, f delta.Format) []byte {
	d, err := delta.Diff(old, new)
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, d.Encode(&buf, f))
	return buf.Bytes()
}

// patchRepo publishes 1.0.0 and 1.1.0 of acme-gw-r2 and a real patch
// between them in the given format.
func patchRepo(t *testing.T, format manifest.DeltaFormat, patch []byte, old, new []byte) *repo {
	r := newRepo(t)
	r.AddTarget("targets", "acme-gw-r2/1.0.0/fw.bin", old, firmwareSetter(t, "1.0.0", 1, "acme-gw-r2"))
	r.AddTarget("targets", "acme-gw-r2/1.1.0/fw.bin", new, firmwareSetter(t, "1.1.0", 1, "acme-gw-r2"))
	from, to := sha256.Sum256(old), sha256.Sum256(new)
	r.AddTarget("targets", "acme-gw-r2/deltas/1.0.0-1.1.0."+string(format), patch, func(tf *metadata.TargetFiles) {
		require.NoError(t, manifest.SetDelta(tf, manifest.Delta{Format: format,
			From: manifest.DeltaEnd{Path: "acme-gw-r2/1.0.0/fw.bin", Length: int64(len(old)), SHA256: from[:]},
			To:   manifest.DeltaEnd{Path: "acme-gw-r2/1.1.0/fw.bin", Length: int64(len(new)), SHA256: to[:]}}))
	})
	return r
}

func TestInstallFullImage(t *testing.T) {
	ctx := context.Background()
	for _, consistent := range []bool{false, true} {
		r, img := releaseRepo(t)
		r.Root.Signed.ConsistentSnapshot = consistent
		r.PublishRoot()
		c := refreshed(t, r)
		u, err := c.Select(ctx, gateway(t, installedImage("1.1.0", 1, img["1.1.0"])))
		require.NoError(t, err)
		var slot bytes.Buffer
		require.NoError(t, c.Install(ctx, u, &slot, InstallOptions{}))
		assert.Equal(t, img["1.2.0"], slot.Bytes())

		// The attacks on the image itself.
		tampered := bytes.Clone(img["1.2.0"])
		tampered[100] ^= 1
		for name, tc := range map[string]struct {
			body []byte
			want error
		}{
			"tampered":  {tampered, ErrHashMismatch},
			"truncated": {img["1.2.0"][:len(img["1.2.0"])-1], ErrLengthMismatch},
			"endless":   {append(bytes.Clone(img["1.2.0"]), bytes.Repeat([]byte("x"), 1<<20)...), ErrTooLong},
		} {
			r.SetOverride(func(string) ([]byte, bool) { return tc.body, true })
			slot.Reset()
			err := c.Install(ctx, u, &slot, InstallOptions{})
			assert.ErrorIs(t, err, tc.want, "%s consistent=%v", name, consistent)
			assert.LessOrEqual(t, slot.Len(), len(img["1.2.0"]), "never past the signed length")
			r.SetOverride(nil)
		}
	}
}

func TestInstallThroughPatch(t *testing.T) {
	ctx := context.Background()
	old, new := firmwarePair()
	for _, tc := range []struct {
		format manifest.DeltaFormat
		codec  delta.Format
	}{{manifest.FormatZstdStream, delta.FormatStream}, {manifest.FormatBSDIFF40, delta.FormatBSDIFF40}} {
		t.Run(string(tc.format), func(t *testing.T) {
			patch := encodePatch(t, old, new, tc.codec)
			require.Less(t, len(patch), len(new)/4, "the pair must be worth a patch")
			r := patchRepo(t, tc.format, patch, old, new)
			c := refreshed(t, r)
			installed := installedImage("1.0.0", 1, old)
			u, err := c.Select(ctx, gateway(t, installed))
			require.NoError(t, err)
			require.NotNil(t, u.Patch)
			opts := InstallOptions{Installed: bytes.NewReader(old), InstalledSize: int64(len(old)), ScratchDir: t.TempDir()}

			var slot bytes.Buffer
			require.NoError(t, c.Install(ctx, u, &slot, opts))
			assert.Equal(t, new, slot.Bytes())
			reqs := r.Requests()
			assert.Contains(t, reqs, "targets/"+u.Patch.Path)
			assert.NotContains(t, reqs, "targets/acme-gw-r2/1.1.0/fw.bin", "the full image is not downloaded")

			// The slot holds something else than the record says.
			slot.Reset()
			other := bytes.Clone(old)
			other[5] ^= 1
			err = c.Install(ctx, u, &slot, InstallOptions{Installed: bytes.NewReader(other), InstalledSize: int64(len(other))})
			assert.ErrorIs(t, err, ErrBaseMismatch)
			assert.Zero(t, slot.Len(), "nothing written from a wrong base")

			// The patch is damaged in transit: refused, then the full
			// image is the fallback.
			bad := bytes.Clone(patch)
			bad[len(bad)/2] ^= 0x40
			r.SetOverride(func(p string) ([]byte, bool) {
				if p == "targets/"+u.Patch.Path {
					return bad, true
				}
				return nil, false
			})
			slot.Reset()
			assert.Error(t, c.Install(ctx, u, &slot, opts))
			r.SetOverride(nil)
			full := *u
			full.Patch = nil
			slot.Reset()
			require.NoError(t, c.Install(ctx, &full, &slot, opts))
			assert.Equal(t, new, slot.Bytes())
		})
	}
}

// A signed patch that produces the wrong image (made from other bytes, or
// by a buggy release tool) never yields a slot that counts.
func TestInstallPatchWrongOutput(t *testing.T) {
	ctx := context.Background()
	old, new := firmwarePair()
	wrongNew := bytes.Clone(new)
	wrongNew[len(wrongNew)-1] ^= 1
	for _, tc := range []struct {
		format manifest.DeltaFormat
		codec  delta.Format
	}{{manifest.FormatZstdStream, delta.FormatStream}, {manifest.FormatBSDIFF40, delta.FormatBSDIFF40}} {
		patch := encodePatch(t, old, wrongNew, tc.codec)
		r := patchRepo(t, tc.format, patch, old, new)
		c := refreshed(t, r)
		u, err := c.Select(ctx, gateway(t, installedImage("1.0.0", 1, old)))
		require.NoError(t, err)
		require.NotNil(t, u.Patch)
		var slot bytes.Buffer
		err = c.Install(ctx, u, &slot, InstallOptions{Installed: bytes.NewReader(old), InstalledSize: int64(len(old))})
		assert.ErrorIs(t, err, ErrHashMismatch, "%s", tc.format)
		var te *TargetError
		require.ErrorAs(t, err, &te)
		assert.Equal(t, "acme-gw-r2/1.1.0/fw.bin", te.Path)
		assert.Equal(t, u.Patch.Path, te.Via)
		assert.Equal(t, 1, strings.Count(err.Error(), "verify:"), "one package prefix: %v", err)
		assert.LessOrEqual(t, slot.Len(), len(new))
	}
}
