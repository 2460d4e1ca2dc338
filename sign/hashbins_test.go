package sign

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/manifest"
)

// A catalogue of a thousand images in 32 hash bins (TAP 15): every image
// lands in the bin its path hash names, and adding one image re-signs one
// bin, not the catalogue.
func TestHashBinCatalogue(t *testing.T) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	store := newMemStorage()
	root := signedRoot(t, true, now)
	repo, err := CreateRepository(ctx, store, root, RepositoryOptions{Now: func() time.Time { return now }, TempDir: t.TempDir()})
	require.NoError(t, err)
	defer repo.Close()
	require.NoError(t, repo.AddHashBins(manifest.RoleTargets, "bin", 5, RoleKeys{Threshold: 1, Keys: keysOf(t, "ed25519-8")}))

	const n = 1000
	for i := 0; i < n; i++ {
		p := fmt.Sprintf("fleet/model-%04d/1.0.0/firmware.bin", i)
		require.NoError(t, repo.AddFirmware(ctx, p, bytes.NewReader([]byte(p)), firmware("1.0.0", 1)))
	}
	require.NoError(t, repo.Publish(ctx, allSigners(t)))

	top, _ := repo.Targets(manifest.RoleTargets)
	sr := top.Signed.Delegations.SuccinctRoles
	bins := sr.GetRoles()
	require.Len(t, bins, 32)
	assert.Equal(t, "bin-00", bins[0])
	assert.Equal(t, "bin-1f", bins[31])
	total := 0
	for _, b := range bins {
		md, ok := repo.Targets(b)
		require.True(t, ok)
		for p := range md.Signed.Targets {
			assert.Equal(t, b, sr.GetRolesForTarget(p)[0].Name)
		}
		total += len(md.Signed.Targets)
	}
	assert.Equal(t, n, total)

	// One more image: one bin and snapshot/timestamp change, nothing else.
	versions := map[string]int64{}
	for _, b := range bins {
		md, _ := repo.Targets(b)
		versions[b] = md.Signed.Version
	}
	p := "fleet/model-new/1.0.0/firmware.bin"
	require.NoError(t, repo.AddFirmware(ctx, p, bytes.NewReader([]byte(p)), firmware("1.0.0", 1)))
	require.NoError(t, repo.Publish(ctx, signersOf(t, "ed25519-8", "ed25519-4", "ed25519-5")))
	changed := 0
	for _, b := range bins {
		md, _ := repo.Targets(b)
		if md.Signed.Version != versions[b] {
			changed++
			assert.Equal(t, sr.GetRolesForTarget(p)[0].Name, b)
		}
	}
	assert.Equal(t, 1, changed)
	top2, _ := repo.Targets(manifest.RoleTargets)
	assert.Equal(t, top.Signed.Version, top2.Signed.Version, "the offline targets role was not needed")

	// A go-tuf client finds an image through its bin.
	client := newGoTUFClient(t, serveStorage(t, store), rootBytesOf(t, root), now)
	got, _, err := client.fetch("fleet/model-0777/1.0.0/firmware.bin")
	require.NoError(t, err)
	assert.Equal(t, "fleet/model-0777/1.0.0/firmware.bin", string(got))
}
