package sign

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/manifest"
)

// plannedWrites runs Publish's steps up to the write order and returns the
// names it would write, each target file as "target".
func plannedWrites(t *testing.T, repo *Repository, signers []*Signer) []string {
	t.Helper()
	pub, err := repo.newPublisher(context.Background(), signers)
	require.NoError(t, err)
	require.NoError(t, pub.planTargets())
	require.NoError(t, pub.nextSnapshot())
	require.NoError(t, pub.nextTimestamp())
	var names []string
	for _, w := range repo.writeOrder(pub.next) {
		if strings.HasPrefix(w.name, TargetsDir+"/") {
			require.NotEmpty(t, w.file, w.name)
			w.name = "target"
		}
		names = append(names, w.name)
	}
	return names
}

func TestPublishWriteOrder(t *testing.T) {
	ctx := context.Background()
	withoutOldTimestampKey := signersOf(t, "ed25519-1", "ed25519-2", "p256", "ed25519-4", "ed25519-6", "ed25519-7", "ed25519-8", "p384")
	rotateTimestampKey := func(t *testing.T, repo *Repository) {
		rotate(t, repo, []string{"ed25519-1", "ed25519-2"}, func(spec RootSpec) {
			spec.Roles[manifest.RoleTimestamp] = RoleKeys{Threshold: 1, Keys: keysOf(t, "p384")}
		})
	}
	for _, tc := range []struct {
		name    string
		stage   func(t *testing.T, repo *Repository)
		signers []*Signer
		want    []string
	}{{
		name:    "refresh",
		stage:   func(*testing.T, *Repository) {},
		signers: onlineSigners(t),
		want:    []string{"metadata/timestamp.json"},
	}, {
		name: "release in a delegated and the top-level role",
		stage: func(t *testing.T, repo *Repository) {
			require.NoError(t, repo.AddFirmware(ctx, "acme/1.2.0/firmware.bin", bytes.NewReader(image("new", 10)), firmware("1.2.0", 3)))
			require.NoError(t, repo.AddFirmware(ctx, "plain2.bin", bytes.NewReader(image("p2", 10)), firmware("0.2.0", 0)))
		},
		signers: allSigners(t),
		want: []string{"target", "target", "target", "target",
			"metadata/2.acme.json", "metadata/2.targets.json", "metadata/2.snapshot.json", "metadata/timestamp.json"},
	}, {
		name:    "bridged rotation: the root goes last",
		stage:   rotateTimestampKey,
		signers: append(allSigners(t), testSigner(t, "p384")),
		want:    []string{"metadata/2.snapshot.json", "metadata/timestamp.json", "metadata/2.root.json", "metadata/root.json"},
	}, {
		name:    "rotation without the old key: the root goes before the timestamp",
		stage:   rotateTimestampKey,
		signers: withoutOldTimestampKey,
		want:    []string{"metadata/2.snapshot.json", "metadata/2.root.json", "metadata/root.json", "metadata/timestamp.json"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			repo := newTestRepo(t, true).repo
			tc.stage(t, repo)
			assert.Equal(t, tc.want, plannedWrites(t, repo, tc.signers))
		})
	}
}

// The steps before the writes change nothing: a plan that fails on a
// threshold leaves the Repository as it was, and planning twice gives the
// same writes.
func TestPublishStepsLeaveRepositoryAlone(t *testing.T) {
	repo := newTestRepo(t, true).repo
	require.NoError(t, repo.AddFirmware(context.Background(), "acme/1.2.0/firmware.bin", bytes.NewReader(image("new", 10)), firmware("1.2.0", 3)))
	pub, err := repo.newPublisher(context.Background(), onlineSigners(t))
	require.NoError(t, err)
	var te *manifest.ThresholdError
	require.ErrorAs(t, pub.planTargets(), &te)
	assert.Equal(t, "acme", te.Role)
	assert.True(t, repo.dirty["acme"])
	assert.EqualValues(t, 1, repo.Timestamp().Signed.Version)
	first := plannedWrites(t, repo, allSigners(t))
	assert.Equal(t, first, plannedWrites(t, repo, allSigners(t)))
}

// readTree returns every file under dir by slash-separated name.
func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		out[filepath.ToSlash(rel)], err = os.ReadFile(p)
		return err
	}))
	return out
}

// After a publish fails at write N, storage holds exactly the first N-1
// writes on top of the old repository, and the Repository has committed
// the new state only if the timestamp was among them. Two orders are
// tried: a bridged root rotation (root after the timestamp) and one
// without the old timestamp key (root before it).
func TestPublishStorageAfterFailedWrite(t *testing.T) {
	ctx := context.Background()
	base := newTestRepo(t, true)
	for _, bridged := range []bool{true, false} {
		signers := append(allSigners(t), testSigner(t, "p384"))
		if !bridged {
			signers = slices.DeleteFunc(slices.Clone(signers), func(s *Signer) bool { return s.KeyID() == testSigner(t, "ed25519-5").KeyID() })
		}
		stageAndOpen := func(t *testing.T, failAt int) (*Repository, *failingStorage, string) {
			dir := t.TempDir()
			require.NoError(t, os.CopyFS(dir, os.DirFS(base.dir)))
			repo, fs := openFailing(t, dir, failAt, base.now.Add(time.Minute))
			rotate(t, repo, []string{"ed25519-1", "ed25519-2"}, func(spec RootSpec) {
				spec.Roles[manifest.RoleTimestamp] = RoleKeys{Threshold: 1, Keys: keysOf(t, "p384")}
			})
			require.NoError(t, repo.AddFirmware(ctx, "acme/1.2.0/firmware.bin", bytes.NewReader(image("new", 777)), firmware("1.2.0", 3)))
			return repo, fs, dir
		}
		repo, fs, _ := stageAndOpen(t, 0)
		require.NoError(t, repo.Publish(ctx, signers))
		total := len(fs.names)
		tsAt := slices.Index(fs.names, timestampName)
		rootAt := slices.Index(fs.names, MetadataDir+"/root.json")
		assert.Equal(t, bridged, rootAt > tsAt, "root after the timestamp exactly when bridged")

		for n := 1; n <= total; n++ {
			t.Run(fmt.Sprintf("bridged=%v fail write %d of %d", bridged, n, total), func(t *testing.T) {
				repo, fs, dir := stageAndOpen(t, n)
				before := readTree(t, dir)
				require.ErrorIs(t, repo.Publish(ctx, signers), errInjected)
				after := readTree(t, dir)
				for i, name := range fs.names {
					if i < n-1 {
						assert.Equal(t, fs.written[name], after[name], "write %d, %s, landed", i+1, name)
					} else {
						assert.Equal(t, before[name], after[name], "write %d, %s, did not land", i+1, name)
					}
				}
				assert.Len(t, fs.names, n, "no write after the failed one")
				for name := range after {
					if !slices.Contains(fs.names[:n-1], name) {
						assert.Equal(t, before[name], after[name], "%s was not written", name)
					}
				}
				committed := n-1 > tsAt
				assert.Equal(t, committed, repo.Timestamp().Signed.Version == 2, "in-memory state commits with the timestamp")
				assert.Equal(t, !committed, repo.dirty["acme"], "staged changes stay until the timestamp lands")
			})
		}
	}
}
