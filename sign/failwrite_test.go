package sign

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/delta"
	"github.com/otaseal/otaseal/internal/s3test"
	"github.com/otaseal/otaseal/manifest"
)

var errInjected = errors.New("injected storage failure")

// failingStorage wraps a Storage and fails its Nth Put (1-based) without
// writing anything; N = 0 never fails. It counts Puts either way.
// It keeps what each successful Put wrote.
type failingStorage struct {
	Storage
	failAt  int
	puts    int
	names   []string
	written map[string][]byte
}

func (f *failingStorage) Put(ctx context.Context, name string, r io.Reader) error {
	f.puts++
	f.names = append(f.names, name)
	if f.puts == f.failAt {
		return fmt.Errorf("put %s: %w", name, errInjected)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if f.written == nil {
		f.written = map[string][]byte{}
	}
	f.written[name] = data
	return f.Storage.Put(ctx, name, bytes.NewReader(data))
}

// openFailing opens the repository in dir on a failingStorage.
func openFailing(t *testing.T, dir string, failAt int, now time.Time) (*Repository, *failingStorage) {
	t.Helper()
	ds, err := NewDirStorage(dir)
	require.NoError(t, err)
	fs := &failingStorage{Storage: ds, failAt: failAt}
	repo, err := OpenRepository(context.Background(), fs, RepositoryOptions{Now: func() time.Time { return now }, TempDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { repo.Close() })
	return repo, fs
}

// A publish that fails at any single storage write leaves the repository
// clients see exactly as it was, and a retry completes it: in a directory,
// and in a bucket on a real S3 server, where clients read the bucket's own
// HTTP endpoint and the commit point is the timestamp's claim.
func TestPublishFailingNthWrite(t *testing.T) {
	t.Run("directory", func(t *testing.T) {
		testPublishFailingNthWrite(t, func(t *testing.T, base string) (Storage, string) {
			dir := t.TempDir()
			require.NoError(t, os.CopyFS(dir, os.DirFS(base)))
			ds, err := NewDirStorage(dir)
			require.NoError(t, err)
			return ds, serveDir(t, dir)
		})
	})
	t.Run("s3", func(t *testing.T) {
		srv := s3test.Require(t)
		testPublishFailingNthWrite(t, func(t *testing.T, base string) (Storage, string) {
			b := srv.NewBucket(t, true)
			store := NewBlobStorage(b.Blob, BlobStorageOptions{})
			copyToStorage(t, base, store)
			return store, b.HTTP
		})
	})
}

// wrapFailing wraps store so that its failAt-th write fails.
func wrapFailing(store Storage, failAt int) (Storage, *failingStorage) {
	fs := &failingStorage{Storage: store, failAt: failAt}
	if cs, ok := store.(ConditionalStorage); ok {
		return &failingCondStorage{failingStorage: fs, cond: cs}, fs
	}
	return fs, fs
}

func testPublishFailingNthWrite(t *testing.T, copyRepo func(t *testing.T, base string) (Storage, string)) {
	ctx := context.Background()
	base := newTestRepo(t, true)
	// The old timestamp key is still at hand, so the rotation is bridged.
	signers := append(allSigners(t), testSigner(t, "p384"))
	oldImages := base.images

	// The change under test: a root key rotation, a new firmware image in
	// a delegated role, one in a hash bin, and a delta to it.
	stage := func(t *testing.T, repo *Repository) {
		// Open adopts the new root of a crashed publish: rotate only once.
		if repo.Root().Signed.Version == 1 {
			rotate(t, repo, []string{"ed25519-1", "ed25519-2", "ed25519-3"}, func(spec RootSpec) {
				spec.Roles[manifest.RoleRoot] = RoleKeys{Threshold: 2, Keys: keysOf(t, "ed25519-2", "ed25519-3", "ed25519-9")}
				spec.Roles[manifest.RoleTimestamp] = RoleKeys{Threshold: 1, Keys: keysOf(t, "p384")}
			})
		}
		require.NoError(t, repo.AddFirmware(ctx, "acme/1.2.0/firmware.bin", bytes.NewReader(image("new", 777)), firmware("1.2.0", 3)))
		require.NoError(t, repo.AddFirmware(ctx, "catalog/gw/2.1.0/firmware.bin", bytes.NewReader(image("new2", 55)), firmware("2.1.0", 1)))
		patch := makePatch(t, oldImages["acme/1.1.0/firmware.bin"], image("new", 777), delta.FormatBSDIFF40)
		require.NoError(t, repo.AddDelta(ctx, "acme/deltas/1.1.0-1.2.0.bsdiff", "acme/1.1.0/firmware.bin", "acme/1.2.0/firmware.bin", bytes.NewReader(patch)))
	}
	open := func(t *testing.T, store Storage, failAt int) (*Repository, *failingStorage) {
		t.Helper()
		wrapped, fs := wrapFailing(store, failAt)
		repo, err := OpenRepository(context.Background(), wrapped, RepositoryOptions{Now: func() time.Time { return base.now.Add(time.Minute) }, TempDir: t.TempDir()})
		require.NoError(t, err)
		t.Cleanup(func() { repo.Close() })
		return repo, fs
	}

	// Count the writes of a successful publish.
	store, _ := copyRepo(t, base.dir)
	repo, fs := open(t, store, 0)
	stage(t, repo)
	require.NoError(t, repo.Publish(ctx, signers))
	total := fs.puts
	require.Greater(t, total, 6)
	// The timestamp is the commit point: only the (bridged) root follows.
	tsAt := slices.Index(fs.names, MetadataDir+"/timestamp.json") + 1
	assert.Equal(t, []string{MetadataDir + "/2.root.json", MetadataDir + "/root.json"}, fs.names[tsAt:])

	for n := 1; n <= total; n++ {
		t.Run(fmt.Sprintf("fail write %d of %d", n, total), func(t *testing.T) {
			store, url := copyRepo(t, base.dir)
			repo, fs := open(t, store, n)
			stage(t, repo)
			err := repo.Publish(ctx, signers)
			require.ErrorIs(t, err, errInjected)
			t.Logf("failed at %s", fs.names[n-1])

			// A client sees the previous repository before the timestamp
			// lands and the new one after; whole either way.
			client := newGoTUFClient(t, url, rootBytesOf(t, base.root), base.now)
			up, err := client.refresh()
			require.NoError(t, err)
			for p, want := range oldImages {
				got, _, err := client.download(up, p)
				require.NoError(t, err, p)
				assert.Equal(t, want, got)
			}
			_, _, err = client.download(up, "acme/1.2.0/firmware.bin")
			if n <= tsAt {
				assert.Error(t, err, "the new image is not visible before the timestamp is written")
			} else {
				assert.NoError(t, err)
			}

			// Retrying completes the publish: with the same Repository, or
			// (odd N) with a fresh one, as after a crash.
			fs.failAt = 0
			if n%2 == 1 {
				repo, _ = open(t, store, 0)
				stage(t, repo)
			}
			require.NoError(t, repo.Publish(ctx, signers))
			assert.Equal(t, int64(2), repo.Root().Signed.Version)
			got, _, err := client.fetch("acme/1.2.0/firmware.bin")
			require.NoError(t, err)
			assert.Equal(t, image("new", 777), got)
		})
	}
}
