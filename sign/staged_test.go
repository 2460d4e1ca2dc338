package sign

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/delta"
	"github.com/otaseal/otaseal/manifest"
)

// reopen opens the repository in dir afresh, as another machine would,
// with its clock at now.
func reopen(t testing.TB, dir string, now time.Time) *Repository {
	t.Helper()
	store, err := NewDirStorage(dir)
	require.NoError(t, err)
	repo, err := OpenRepository(context.Background(), store, RepositoryOptions{Now: func() time.Time { return now }, TempDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { repo.Close() })
	return repo
}

func assertNothingStaged(t *testing.T, repo *Repository) {
	t.Helper()
	s := repo.StagedChanges()
	assert.Empty(t, s.Targets)
	assert.Empty(t, s.Roles)
	assert.False(t, s.Root)
	assert.True(t, s.PinnedAt.IsZero())
}

// stagedPlain2 is a test repository with plain2.bin staged, and its
// saved form.
func stagedPlain2(t *testing.T) (*testRepo, []byte) {
	tr := newTestRepo(t, true)
	tr.add(t, "plain2.bin", image("p2", 50), firmware("0.2.0", 0))
	return tr, save(t, tr.repo)
}

func save(t testing.TB, repo *Repository) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, repo.SaveStaged(&buf))
	return buf.Bytes()
}

// stageCeremony stages a release in a delegated role, a delta, a target
// in the top-level role, exports acme and imports it signed, and exports
// targets for holders who have not signed yet.
func stageCeremony(t *testing.T, tr *testRepo) (targetsDoc []byte) {
	ctx := context.Background()
	repo := tr.repo
	tr.add(t, "acme/1.2.0/firmware.bin", image("a3", 3200), firmware("1.2.0", 3))
	patch := makePatch(t, tr.images["acme/1.1.0/firmware.bin"], tr.images["acme/1.2.0/firmware.bin"], delta.FormatStream)
	require.NoError(t, repo.AddDelta(ctx, "acme/deltas/1.1.0-1.2.0.bsdiff", "acme/1.1.0/firmware.bin", "acme/1.2.0/firmware.bin", bytes.NewReader(patch)))
	tr.images["acme/deltas/1.1.0-1.2.0.bsdiff"] = patch
	tr.add(t, "plain2.bin", image("p2", 50), firmware("0.2.0", 0))
	require.NoError(t, repo.RemoveTarget("plain.bin"))
	acme, err := repo.ExportRole("acme")
	require.NoError(t, err)
	sig, err := SignDetached(ctx, acme, "acme", testSigner(t, "ed25519-6"))
	require.NoError(t, err)
	p, err := repo.Policy()
	require.NoError(t, err)
	signed, rep, err := Merge(p, "acme", acme, []*DetachedSignature{sig})
	require.NoError(t, err)
	require.True(t, rep.Met)
	require.NoError(t, repo.ImportSigned("acme", signed))
	targetsDoc, err = repo.ExportRole(manifest.RoleTargets)
	require.NoError(t, err)
	return targetsDoc
}

// Staged on one machine, resumed on another an hour later: the same
// documents to sign, the same changes, and a publish that clients read.
func TestSaveResumeStaged(t *testing.T) {
	ctx := context.Background()
	tr := newTestRepo(t, true)
	doc := stageCeremony(t, tr)
	rotate(t, tr.repo, []string{"ed25519-1", "ed25519-2"}, func(spec RootSpec) {
		spec.Roles[manifest.RoleSnapshot] = RoleKeys{Threshold: 1, Keys: keysOf(t, "ed25519-9")}
	})
	saved := save(t, tr.repo)
	assert.Equal(t, saved, save(t, tr.repo), "saving is deterministic and changes nothing")

	later := tr.now.Add(time.Hour)
	other := reopen(t, tr.dir, later)
	require.NoError(t, other.ResumeStaged(ctx, bytes.NewReader(saved)))
	assert.Equal(t, tr.repo.StagedChanges(), other.StagedChanges())
	assert.Equal(t, tr.now, other.StagedChanges().PinnedAt)
	assert.Equal(t, []string{"acme/1.2.0/firmware.bin", "acme/deltas/1.1.0-1.2.0.bsdiff", "plain2.bin"}, other.StagedChanges().Targets)
	assert.True(t, other.StagedChanges().Root)
	again, err := other.ExportRole(manifest.RoleTargets)
	require.NoError(t, err)
	assert.Equal(t, doc, again, "the pinned clock makes the same document on every machine")
	assert.Equal(t, saved, save(t, other), "a resumed repository saves what it resumed")

	// The targets holder signs the document exported on the first machine;
	// the second imports it and publishes with the online keys (and the
	// old snapshot key, to bridge the rotation).
	sig, err := SignDetached(ctx, doc, manifest.RoleTargets, testSigner(t, "p256"))
	require.NoError(t, err)
	p, err := other.Policy()
	require.NoError(t, err)
	signed, _, err := Merge(p, manifest.RoleTargets, doc, []*DetachedSignature{sig})
	require.NoError(t, err)
	require.NoError(t, other.ImportSigned(manifest.RoleTargets, signed))
	require.NoError(t, other.Publish(ctx, signersOf(t, "ed25519-4", "ed25519-5", "ed25519-9")))
	assertNothingStaged(t, other)

	client := newGoTUFClient(t, serveDir(t, tr.dir), rootBytesOf(t, tr.root), later)
	for _, p := range []string{"acme/1.2.0/firmware.bin", "acme/deltas/1.1.0-1.2.0.bsdiff", "plain2.bin", "acme/1.0.0/firmware.bin"} {
		got, _, err := client.fetch(p)
		require.NoError(t, err, p)
		assert.Equal(t, tr.images[p], got, p)
	}
	_, _, err = client.fetch("plain.bin")
	assert.Error(t, err, "the removal was resumed too")
	targets, _ := other.Targets(manifest.RoleTargets)
	assert.Equal(t, tr.now.Add(DefaultTargetsExpiry), targets.Signed.Expires, "targets expiry counts from the pinned clock")
	assert.Equal(t, later.Add(DefaultTimestampExpiry), other.Timestamp().Signed.Expires, "the timestamp from the current one")
	assert.EqualValues(t, 2, other.Root().Signed.Version)
}

// Delegations and revoked delegated keys survive a save and resume.
func TestResumeStagedDelegations(t *testing.T) {
	ctx := context.Background()
	tr := newTestRepo(t, true)
	require.NoError(t, tr.repo.AddDelegation("acme", Delegation{Name: "acme-beta", Paths: []string{"acme/beta/*"}, Keys: RoleKeys{Threshold: 1, Keys: keysOf(t, "ed25519-9")}}))
	require.NoError(t, tr.repo.SetDelegationKeys("catalog-bin", RoleKeys{Threshold: 1, Keys: keysOf(t, "ed25519-3")}))
	tr.add(t, "acme/beta/fw.bin", image("b", 10), firmware("0.9.0", 0))
	other := reopen(t, tr.dir, tr.now)
	require.NoError(t, other.ResumeStaged(ctx, bytes.NewReader(save(t, tr.repo))))
	assert.Equal(t, tr.repo.StagedChanges(), other.StagedChanges())
	p, err := other.Policy()
	require.NoError(t, err)
	assert.ErrorIs(t, p.Authorize("catalog-bin-0", testSigner(t, "ed25519-8").KeyID()), ErrRevokedKey)
	require.NoError(t, other.Publish(ctx, signersOf(t, "ed25519-6", "ed25519-9", "ed25519-3", "p256", "ed25519-7", "ed25519-4", "ed25519-5")))
	got, _, err := newGoTUFClient(t, serveDir(t, tr.dir), rootBytesOf(t, tr.root), tr.now).fetch("acme/beta/fw.bin")
	require.NoError(t, err)
	assert.Equal(t, image("b", 10), got)
}

// Changes staged against one published state do not resume onto another,
// nor onto a repository with changes of its own.
func TestResumeStagedConflict(t *testing.T) {
	ctx := context.Background()
	tr, saved := stagedPlain2(t)

	busy := reopen(t, tr.dir, tr.now)
	require.NoError(t, busy.AddFirmware(ctx, "plain3.bin", bytes.NewReader([]byte("3")), firmware("0.3.0", 0)))
	assert.ErrorIs(t, busy.ResumeStaged(ctx, bytes.NewReader(saved)), ErrConflict)

	// The update server refreshes snapshot and timestamp meanwhile: the
	// ceremony goes on.
	require.NoError(t, reopen(t, tr.dir, tr.now).Publish(ctx, onlineSigners(t)))
	refreshed := reopen(t, tr.dir, tr.now)
	require.NoError(t, refreshed.ResumeStaged(ctx, bytes.NewReader(saved)))
	assert.NotEmpty(t, refreshed.StagedChanges().Targets)

	// Someone else publishes a release meanwhile: the targets role moved,
	// and the saved changes no longer apply.
	other := reopen(t, tr.dir, tr.now)
	require.NoError(t, other.AddFirmware(ctx, "plain3.bin", bytes.NewReader([]byte("3")), firmware("0.3.0", 0)))
	require.NoError(t, other.Publish(ctx, allSigners(t)))
	moved := reopen(t, tr.dir, tr.now)
	err := moved.ResumeStaged(ctx, bytes.NewReader(saved))
	require.ErrorIs(t, err, ErrConflict)
	assert.Contains(t, err.Error(), "staged against targets version")
	assert.Empty(t, moved.StagedChanges().Targets)
}

// Every truncation and every flipped byte of a target file's content is
// refused, and the repository is left with nothing staged.
func TestResumeStagedCorrupt(t *testing.T) {
	ctx := context.Background()
	tr, saved := stagedPlain2(t)
	repo := reopen(t, tr.dir, tr.now)
	content := bytes.LastIndex(saved, image("p2", 50))
	require.Positive(t, content)
	for n := range len(saved) {
		require.Error(t, repo.ResumeStaged(ctx, bytes.NewReader(saved[:n])), "truncated to %d bytes", n)
		require.Empty(t, repo.StagedChanges().Roles)
	}
	for i := content; i < len(saved); i++ {
		bad := bytes.Clone(saved)
		bad[i] ^= 0x01
		require.ErrorIs(t, repo.ResumeStaged(ctx, bytes.NewReader(bad)), ErrMalformedStaged, "byte %d flipped", i)
		require.Empty(t, repo.StagedChanges().Targets)
	}
	require.NoError(t, repo.ResumeStaged(ctx, bytes.NewReader(saved)))
}

func TestResumeStagedMalformed(t *testing.T) {
	ctx := context.Background()
	tr, raw := stagedPlain2(t)
	saved := string(raw)
	lines := strings.SplitN(saved, "\n", 3)
	header, files := lines[2][:len(lines[2])-50], lines[2][len(lines[2])-50:]
	frame := func(h, files string) string { return fmt.Sprintf("%s\n%d\n%s%s", StagedFormat, len(h), h, files) }
	edit := func(old, new string) string {
		require.Contains(t, header, old)
		return frame(strings.Replace(header, old, new, 1), files)
	}
	for _, tc := range []struct {
		name, in string
		want     error
	}{
		{"empty", "", ErrMalformedStaged},
		{"other format", "otaseal-staged-changez\n2\n{}", ErrMalformedStaged},
		{"length with a leading zero", fmt.Sprintf("%s\n0%d\n%s%s", StagedFormat, len(header), header, files), ErrMalformedStaged},
		{"negative length", StagedFormat + "\n-5\n", ErrMalformedStaged},
		{"huge length", fmt.Sprintf("%s\n%d\n", StagedFormat, int64(MaxStagedHeaderSize)+1), ErrTooLarge},
		{"length overflow", StagedFormat + "\n99999999999999999999\n", ErrMalformedStaged},
		{"endless length line", StagedFormat + "\n" + strings.Repeat("1", 100), ErrMalformedStaged},
		{"version 2", edit(`"version":1`, `"version":2`), ErrMalformedStaged},
		{"unknown field", edit(`"version":1`, `"version":1,"extra":true`), ErrMalformedStaged},
		{"data after the header", frame(header+"{}", files), ErrMalformedStaged},
		{"data after the files", frame(header, files+"x"), ErrMalformedStaged},
		{"file missing", edit(`"files":[{"path":"plain2.bin","length":50}]`, `"files":[]`), ErrMalformedStaged},
		{"file length differs", edit(`"length":50`, `"length":49`), ErrMalformedStaged},
		{"file path escapes", edit(`"path":"plain2.bin"`, `"path":"../plain2.bin"`), ErrMalformedStaged},
		{"file in no role", edit(`"path":"plain2.bin"`, `"path":"plain3.bin"`), ErrMalformedStaged},
		{"role document of another type", edit(`"_type":"targets"`, `"_type":"snapshot"`), ErrMalformedStaged},
		{"role name", edit(`"roles":{"targets"`, `"roles":{"../x"`), ErrMalformedStaged},
		{"role not delegated", edit(`"roles":{"targets"`, `"roles":{"stranger"`), ErrMalformedStaged},
		{"exported role unchanged", edit(`"files"`, `"exported":["acme"],"files"`), ErrUnknownRole},
		{"base root", edit(`"root_version":1`, `"root_version":2`), ErrConflict},
		{"root not a root", edit(`"files"`, `"root":{"signed":{"_type":"timestamp"}},"files"`), ErrMalformedDocument},
		{"revoked keyid", edit(`"files"`, `"revoked":{"acme":["zz"]},"files"`), ErrMalformedStaged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo := reopen(t, tr.dir, tr.now)
			err := repo.ResumeStaged(ctx, strings.NewReader(tc.in))
			require.ErrorIs(t, err, tc.want)
			assertNothingStaged(t, repo)
		})
	}
}

// FuzzResumeStaged feeds saved staging files, valid and damaged, to
// ResumeStaged: it must never panic, and whatever it accepts must save and
// resume again to the same thing.
func FuzzResumeStaged(f *testing.F) {
	ctx := context.Background()
	store := newMemStorage()
	now := testEpoch
	root := signedRoot(f, true, now)
	opts := RepositoryOptions{Now: func() time.Time { return now }, TempDir: f.TempDir()}
	repo, err := CreateRepository(ctx, store, root, opts)
	require.NoError(f, err)
	require.NoError(f, repo.AddDelegation(manifest.RoleTargets, Delegation{Name: "acme", Paths: []string{"acme/*"}, Keys: RoleKeys{Threshold: 1, Keys: keysOf(f, "ed25519-6")}}))
	require.NoError(f, repo.Publish(ctx, allSigners(f)))
	open := func(t testing.TB) *Repository {
		r, err := OpenRepository(ctx, store, opts)
		require.NoError(t, err)
		return r
	}
	seed := open(f)
	require.NoError(f, seed.AddFirmware(ctx, "acme/fw.bin", strings.NewReader("firmware"), firmware("1.0.0", 1)))
	require.NoError(f, seed.AddFirmware(ctx, "top.bin", strings.NewReader("top"), firmware("1.0.0", 1)))
	var buf bytes.Buffer
	require.NoError(f, seed.SaveStaged(&buf))
	f.Add(buf.Bytes())
	_, err = seed.ExportRole("acme")
	require.NoError(f, err)
	buf.Reset()
	require.NoError(f, seed.SaveStaged(&buf))
	f.Add(buf.Bytes())
	seed.Close()
	f.Add([]byte(StagedFormat + "\n2\n{}"))
	f.Add([]byte(StagedFormat + "\n13\n{\"version\":1}"))

	f.Fuzz(func(t *testing.T, data []byte) {
		r := open(t)
		defer r.Close()
		if r.ResumeStaged(ctx, bytes.NewReader(data)) != nil {
			return
		}
		var once, twice bytes.Buffer
		require.NoError(t, r.SaveStaged(&once))
		r2 := open(t)
		defer r2.Close()
		require.NoError(t, r2.ResumeStaged(ctx, bytes.NewReader(once.Bytes())))
		require.NoError(t, r2.SaveStaged(&twice))
		assert.Equal(t, once.Bytes(), twice.Bytes())
	})
}
