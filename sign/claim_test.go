package sign

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/manifest"
)

// pausingStorage lets a test stop one publisher at a chosen write while
// another publishes, and records every version written to timestamp.json.
type pausingStorage struct {
	ConditionalStorage
	// pauseAfterCreate / pauseBeforePut name the write to stop at (once).
	pauseAfterCreate, pauseBeforePut string
	paused, resume                   chan struct{}

	mu      sync.Mutex
	written []int64 // versions written to timestamp.json, in order
}

func (p *pausingStorage) pause(name *string) {
	*name = ""
	close(p.paused)
	<-p.resume
}

func (p *pausingStorage) Create(ctx context.Context, name string, r io.Reader) error {
	err := p.ConditionalStorage.Create(ctx, name, r)
	if err == nil && name == p.pauseAfterCreate {
		p.pause(&p.pauseAfterCreate)
	}
	return err
}

func (p *pausingStorage) Put(ctx context.Context, name string, r io.Reader) error {
	if name != timestampName {
		return p.ConditionalStorage.Put(ctx, name, r)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if name == p.pauseBeforePut {
		p.pause(&p.pauseBeforePut)
	}
	md, err := manifest.ParseUnverified[manifest.Timestamp](manifest.RoleTimestamp, data, documentLimits)
	if err != nil {
		return err
	}
	if err := p.ConditionalStorage.Put(ctx, name, bytes.NewReader(data)); err != nil {
		return err
	}
	p.mu.Lock()
	p.written = append(p.written, md.Signed.Version)
	p.mu.Unlock()
	return nil
}

// A publisher that commits version V and is then overtaken by one that
// commits V+1 before V's copy to timestamp.json: stopped after its claim,
// it sees the newer claim and never writes V over V+1; stopped inside the
// copy (no store can refuse that write), its late write of V is followed
// by its own repair to V+1. Either way timestamp.json ends at the newest
// version, on memory and on a directory.
func TestOvertakenTimestampCopy(t *testing.T) {
	stores := map[string]func(t *testing.T) ConditionalStorage{
		"memory": func(t *testing.T) ConditionalStorage { return newCondMemStorage() },
		"dir": func(t *testing.T) ConditionalStorage {
			d, err := NewDirStorage(t.TempDir())
			require.NoError(t, err)
			return d
		},
	}
	for storeName, newStore := range stores {
		for _, stop := range []string{"after claim", "inside copy"} {
			t.Run(storeName+"/"+stop, func(t *testing.T) {
				ctx := context.Background()
				now := time.Now().UTC().Truncate(time.Second)
				base := newStore(t)
				repo, err := CreateRepository(ctx, base, signedRoot(t, true, now), RepositoryOptions{Now: func() time.Time { return now }, TempDir: t.TempDir()})
				require.NoError(t, err)
				require.NoError(t, repo.Publish(ctx, allSigners(t)))
				repo.Close()

				ps := &pausingStorage{ConditionalStorage: base, paused: make(chan struct{}), resume: make(chan struct{})}
				if stop == "after claim" {
					ps.pauseAfterCreate = claimName(2)
				} else {
					ps.pauseBeforePut = timestampName
				}
				slow := openOn(t, ps, now)
				require.NoError(t, slow.AddFirmware(ctx, "a/1.0.0/fw.bin", bytes.NewReader([]byte("one")), firmware("1.0.0", 1)))
				done := make(chan error, 1)
				go func() { done <- slow.Publish(ctx, allSigners(t)) }()
				<-ps.paused

				// The other publisher opens (finishing the slow one's copy
				// of version 2) and commits version 3.
				fast := openOn(t, ps, now)
				require.NoError(t, fast.AddFirmware(ctx, "a/2.0.0/fw.bin", bytes.NewReader([]byte("two")), firmware("2.0.0", 1)))
				require.NoError(t, fast.Publish(ctx, allSigners(t)))
				require.Equal(t, int64(3), fast.Timestamp().Signed.Version)
				close(ps.resume)
				require.NoError(t, <-done)

				got, err := getBlob(ctx, base, timestampName, MaxDocumentSize)
				require.NoError(t, err)
				md, err := manifest.ParseUnverified[manifest.Timestamp](manifest.RoleTimestamp, got, documentLimits)
				require.NoError(t, err)
				assert.Equal(t, int64(3), md.Signed.Version, "timestamp.json ends at the newest claim")
				ps.mu.Lock()
				defer ps.mu.Unlock()
				require.NotEmpty(t, ps.written)
				assert.Equal(t, int64(3), ps.written[len(ps.written)-1])
				if stop == "after claim" {
					for i := 1; i < len(ps.written); i++ {
						assert.GreaterOrEqual(t, ps.written[i], ps.written[i-1], "timestamp.json went back: %v", ps.written)
					}
				} else {
					assert.Equal(t, []int64{2, 3, 2, 3}, ps.written, "the late copy of 2 is repaired by its own writer")
				}
			})
		}
	}
}

// Of many concurrent Creates of one name on a directory exactly one wins,
// and the file holds the winner's bytes whole.
func TestDirStorageCreateRace(t *testing.T) {
	d, err := NewDirStorage(t.TempDir())
	require.NoError(t, err)
	ctx := context.Background()
	const n = 16
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = d.Create(ctx, "metadata/7.timestamp.json", bytes.NewReader(bytes.Repeat([]byte{byte('a' + i)}, 64<<10)))
		})
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		if err == nil {
			require.Equal(t, -1, winner, "two Creates succeeded")
			winner = i
			continue
		}
		require.ErrorIs(t, err, ErrBlobExists)
	}
	require.NotEqual(t, -1, winner)
	got, err := getBlob(ctx, d, "metadata/7.timestamp.json", 1<<20)
	require.NoError(t, err)
	assert.Equal(t, bytes.Repeat([]byte{byte('a' + winner)}, 64<<10), got)
	names, err := d.List(ctx, "")
	require.NoError(t, err)
	assert.Equal(t, []string{"metadata/7.timestamp.json"}, names, "no temporary file is left")
	_, err = d.ModTime(ctx, "metadata/8.timestamp.json")
	assert.ErrorIs(t, err, ErrBlobNotFound)
	mt, err := d.ModTime(ctx, "metadata/7.timestamp.json")
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now(), mt, time.Minute)
	assert.ErrorIs(t, d.Create(ctx, "../x", bytes.NewReader(nil)), ErrBadName)
}

// Claims do not pile up: once a claim is keptClaims versions behind and
// older than two publish leases, a later publish removes it; younger ones
// stay, since a stale publisher could still contest them.
func TestClaimsPruned(t *testing.T) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	dir := t.TempDir()
	d, err := NewDirStorage(dir)
	require.NoError(t, err)
	opts := RepositoryOptions{Now: func() time.Time { return now }, TempDir: t.TempDir()}
	repo, err := CreateRepository(ctx, d, signedRoot(t, true, now), opts)
	require.NoError(t, err)
	require.NoError(t, repo.Publish(ctx, allSigners(t)))
	repo.Close()

	claims := func() []string {
		names, err := d.List(ctx, MetadataDir+"/")
		require.NoError(t, err)
		var out []string
		for _, n := range names {
			if strings.HasSuffix(n, ".timestamp.json") {
				out = append(out, n)
			}
		}
		return out
	}
	age := func() { // every claim so far was written three leases ago
		for _, c := range claims() {
			old := time.Now().Add(-3 * DefaultPublishLease)
			require.NoError(t, os.Chtimes(filepath.Join(dir, filepath.FromSlash(c)), old, old))
		}
	}
	publish := func(i int) {
		repo, err := OpenRepository(ctx, d, opts)
		require.NoError(t, err)
		defer repo.Close()
		p := fmt.Sprintf("a/%d.0.0/fw.bin", i)
		require.NoError(t, repo.AddFirmware(ctx, p, bytes.NewReader([]byte(p)), firmware(fmt.Sprintf("%d.0.0", i), 1)))
		require.NoError(t, repo.Publish(ctx, allSigners(t)))
	}
	const rounds = 30
	for i := range rounds {
		age()
		publish(i)
	}
	v := int64(1 + rounds)
	var want []string
	for k := v - keptClaims + 1; k <= v; k++ {
		want = append(want, claimName(k))
	}
	assert.ElementsMatch(t, want, claims(), "the newest %d claims stay", keptClaims)

	// Claims younger than two leases stay however old their version: 20
	// more publishes without aging remove the 15 aged claims (v-15..v-1)
	// and neither v's, written after the last aging, nor their own.
	for i := range 20 {
		publish(rounds + i)
	}
	want = nil
	for k := v; k <= v+20; k++ {
		want = append(want, claimName(k))
	}
	assert.ElementsMatch(t, want, claims())
}
