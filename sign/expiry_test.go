package sign

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/manifest"
)

// treeHash hashes every file name, mode and content under dir.
func treeHash(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		h.Write([]byte(rel + "\x00" + info.Mode().String() + "\x00"))
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Write(b)
		}
		return nil
	}))
	return hex.EncodeToString(h.Sum(nil))
}

// A root or targets that has expired blocks every publish that would leave
// it in place, writing nothing; a root rotation and a new targets version
// renew them.
func TestPublishRefusesExpired(t *testing.T) {
	ctx := context.Background()
	tr := newTestRepo(t, true)
	start := tr.now

	// The targets role (90 days) has expired, the root (365 days) not.
	tr.now = start.Add(DefaultTargetsExpiry + time.Hour)
	before := treeHash(t, tr.dir)
	err := tr.repo.Publish(ctx, onlineSigners(t))
	var ee *ExpiredError
	require.True(t, errors.As(err, &ee), "%v", err)
	assert.ErrorIs(t, err, ErrExpired)
	assert.Equal(t, manifest.RoleTargets, ee.Role)
	assert.Equal(t, time.Hour, ee.Now.Sub(ee.Expires))
	assert.Contains(t, err.Error(), "targets version")
	assert.Equal(t, before, treeHash(t, tr.dir), "nothing written")

	// Now the root has expired as well: it is reported first.
	tr.now = start.Add(DefaultRootExpiry + time.Minute)
	err = tr.repo.Publish(ctx, onlineSigners(t))
	require.True(t, errors.As(err, &ee), "%v", err)
	assert.Equal(t, manifest.RoleRoot, ee.Role)
	assert.Contains(t, err.Error(), "root key holders")
	assert.Equal(t, before, treeHash(t, tr.dir), "nothing written")

	// A new root version renews the root; targets is still expired.
	next, err := tr.repo.StageRoot(SpecOf(&tr.repo.Root().Signed))
	require.NoError(t, err)
	p, err := RotationPolicy(&tr.repo.Root().Signed, &next.Signed)
	require.NoError(t, err)
	_, err = SignRole(ctx, p, manifest.RoleRoot, next, signersOf(t, "ed25519-1", "ed25519-2"))
	require.NoError(t, err)
	require.NoError(t, tr.repo.SetRoot(next))
	err = tr.repo.Publish(ctx, onlineSigners(t))
	require.True(t, errors.As(err, &ee), "%v", err)
	assert.Equal(t, manifest.RoleTargets, ee.Role)
	assert.Equal(t, before, treeHash(t, tr.dir), "nothing written")

	// A new targets version renews targets: the publish goes through.
	assert.ErrorIs(t, tr.repo.RenewTargets("no-such-role"), ErrUnknownRole)
	require.NoError(t, tr.repo.RenewTargets(manifest.RoleTargets))
	err = tr.repo.Publish(ctx, onlineSigners(t))
	assert.ErrorAs(t, err, new(*manifest.ThresholdError), "the renewal needs the targets key")
	assert.Equal(t, before, treeHash(t, tr.dir), "nothing written")
	require.NoError(t, tr.repo.Publish(ctx, signersOf(t, "ed25519-1", "ed25519-2", "p256", "ed25519-4", "ed25519-5")))
	for _, e := range tr.repo.Expiries() {
		if e.Role == manifest.RoleRoot || e.Role == manifest.RoleTargets {
			assert.Equal(t, ExpiryOK, e.State(tr.now, ExpiryWarning(e.Role)), e.Role)
		}
	}
}

func TestExpiries(t *testing.T) {
	tr := newTestRepo(t, true)
	got := tr.repo.Expiries()
	var roles []string
	for _, e := range got {
		roles = append(roles, e.Role)
	}
	assert.Equal(t, []string{manifest.RoleRoot, manifest.RoleTargets, "acme", "catalog"}, roles[:4])
	assert.Equal(t, []string{manifest.RoleSnapshot, manifest.RoleTimestamp}, roles[len(roles)-2:])
	assert.Equal(t, tr.repo.Root().Signed.Expires, got[0].Expires)
	assert.False(t, got[0].Online)
	assert.True(t, got[len(got)-1].Online)

	e := RoleExpiry{Role: manifest.RoleRoot, Expires: testEpoch}
	for _, tc := range []struct {
		now  time.Time
		want ExpiryState
	}{
		{testEpoch.Add(-31 * 24 * time.Hour), ExpiryOK},
		{testEpoch.Add(-30 * 24 * time.Hour), ExpirySoon},
		{testEpoch.Add(-time.Second), ExpirySoon},
		{testEpoch, ExpiryExpired},
		{testEpoch.Add(time.Hour), ExpiryExpired},
	} {
		assert.Equal(t, tc.want, e.State(tc.now, ExpiryWarning(manifest.RoleRoot)), "%v", tc.now)
	}
	assert.Less(t, ExpiryWarning(manifest.RoleTimestamp), DefaultTimestampExpiry)
	assert.Less(t, ExpiryWarning(manifest.RoleSnapshot), DefaultSnapshotExpiry)
	assert.Less(t, ExpiryWarning(manifest.RoleTargets), DefaultTargetsExpiry)
	assert.Less(t, ExpiryWarning(manifest.RoleRoot), DefaultRootExpiry)
}
