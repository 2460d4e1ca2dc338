package rollback

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stores returns a fresh instance of every Store implementation.
func stores(t *testing.T) map[string]Store {
	t.Helper()
	fs, err := OpenFileStore(t.TempDir(), FileStoreOptions{})
	require.NoError(t, err)
	return map[string]Store{"mem": NewMemStore(), "file": fs}
}

func TestStoreContract(t *testing.T) {
	ctx := context.Background()
	for kind, s := range stores(t) {
		t.Run(kind, func(t *testing.T) {
			r, err := s.Load(ctx, "a")
			require.NoError(t, err)
			assert.Equal(t, Record{}, r, "never written")
			assert.False(t, r.Exists())

			seq, err := s.CompareAndSwap(ctx, "a", 0, []byte("one"))
			require.NoError(t, err)
			assert.Equal(t, uint64(1), seq)

			_, err = s.CompareAndSwap(ctx, "a", 0, []byte("lost"))
			var ce *ConflictError
			require.ErrorAs(t, err, &ce)
			assert.ErrorIs(t, err, ErrConflict)
			assert.Equal(t, ConflictError{Name: "a", Expected: 0, Current: 1}, *ce)

			seq, err = s.CompareAndSwap(ctx, "a", 1, []byte{})
			require.NoError(t, err)
			r, err = s.Load(ctx, "a")
			require.NoError(t, err)
			assert.Equal(t, Record{Seq: 2, Data: []byte{}}, r, "empty data exists")
			assert.True(t, r.Exists())

			seq, err = s.CompareAndSwap(ctx, "a", seq, nil)
			require.NoError(t, err)
			r, err = s.Load(ctx, "a")
			require.NoError(t, err)
			assert.Equal(t, Record{Seq: 3}, r, "deleted keeps its sequence")

			_, err = s.CompareAndSwap(ctx, "a", seq, []byte("back"))
			require.NoError(t, err)
			r, err = s.Load(ctx, "a")
			require.NoError(t, err)
			assert.Equal(t, Record{Seq: 4, Data: []byte("back")}, r)

			// Loaded data does not alias the store.
			r.Data[0] = 'X'
			r2, err := s.Load(ctx, "a")
			require.NoError(t, err)
			assert.Equal(t, "back", string(r2.Data))

			// Names and limits.
			for _, name := range []string{"", strings.Repeat("n", MaxNameLength+1), "a\x00b", "a\nb", "\xff"} {
				_, err := s.Load(ctx, name)
				assert.ErrorIs(t, err, ErrInvalidName, "%q", name)
				_, err = s.CompareAndSwap(ctx, name, 0, []byte("x"))
				assert.ErrorIs(t, err, ErrInvalidName, "%q", name)
			}
			_, err = s.CompareAndSwap(ctx, "big", 0, make([]byte, DefaultMaxRecordSize+1))
			assert.ErrorIs(t, err, ErrRecordTooLarge)

			cancelled, cancel := context.WithCancel(ctx)
			cancel()
			_, err = s.Load(cancelled, "a")
			assert.ErrorIs(t, err, context.Canceled)
			_, err = s.CompareAndSwap(cancelled, "a", 4, nil)
			assert.ErrorIs(t, err, context.Canceled)
		})
	}
}

func TestFileStorePersistsAndEscapes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenFileStore(dir, FileStoreOptions{})
	require.NoError(t, err)
	names := []string{
		"metadata/root", "../../etc/passwd", "/abs", ".", "..", "A", "a",
		"metadata/acme/gw-r2", "ünïcode", strings.Repeat("long/", 50),
	}
	for i, n := range names {
		_, err := s.CompareAndSwap(ctx, n, 0, []byte{byte(i)})
		require.NoError(t, err, n)
	}
	// Everything stayed inside dir, as regular files, one per record.
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 2*len(names)+1, "two copies of each record and the lock file")
	for _, e := range entries {
		assert.True(t, e.Type().IsRegular(), e.Name())
		assert.NotContains(t, e.Name(), "/")
		assert.LessOrEqual(t, len(e.Name()), 255)
	}
	assert.NoFileExists(t, filepath.Join(filepath.Dir(dir), "abs.1"))

	// The next store on the directory sees the same records, and removes
	// leftovers of interrupted writes.
	require.NoError(t, s.Close())
	leftover := filepath.Join(dir, ".atomicfile-a.1-123")
	require.NoError(t, os.WriteFile(leftover, []byte("torn"), 0o600))
	s2, err := OpenFileStore(dir, FileStoreOptions{})
	require.NoError(t, err)
	assert.NoFileExists(t, leftover)
	for i, n := range names {
		r, err := s2.Load(ctx, n)
		require.NoError(t, err)
		assert.Equal(t, Record{Seq: 1, Data: []byte{byte(i)}}, r, n)
	}
}

func TestFileStoreOptions(t *testing.T) {
	ctx := context.Background()
	_, err := OpenFileStore(t.TempDir(), FileStoreOptions{MaxRecordSize: -1})
	assert.Error(t, err)
	_, err = OpenFileStore(t.TempDir(), FileStoreOptions{MaxRecordSize: MaxRecordSizeLimit + 1})
	assert.Error(t, err)
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	_, err = OpenFileStore(filepath.Join(file, "sub"), FileStoreOptions{})
	assert.Error(t, err)

	dir := t.TempDir()
	s, err := OpenFileStore(dir, FileStoreOptions{MaxRecordSize: 16})
	require.NoError(t, err)
	_, err = s.CompareAndSwap(ctx, "r", 0, make([]byte, 17))
	assert.ErrorIs(t, err, ErrRecordTooLarge)
	require.NoError(t, s.Close())
	// A record written under a larger limit is refused on read, before it
	// is read into memory, as corrupt (never trusted).
	big, err := OpenFileStore(dir, FileStoreOptions{MaxRecordSize: 1 << 20})
	require.NoError(t, err)
	_, err = big.CompareAndSwap(ctx, "r", 0, make([]byte, 1000))
	require.NoError(t, err)
	_, err = big.CompareAndSwap(ctx, "q", 0, make([]byte, 10))
	require.NoError(t, err)
	require.NoError(t, big.Close())
	for _, f := range []string{"q.0", "q.1"} {
		require.NoError(t, os.Truncate(filepath.Join(dir, f), 200)) // in limit, bad size field
	}
	s, err = OpenFileStore(dir, FileStoreOptions{MaxRecordSize: 16})
	require.NoError(t, err)
	defer s.Close()
	_, err = s.Load(ctx, "r")
	assert.ErrorIs(t, err, ErrCorrupt)
	assert.ErrorContains(t, err, "larger than its limit")
	_, err = s.Load(ctx, "q")
	assert.ErrorIs(t, err, ErrCorrupt)
}

// writeTwo leaves record "r" written twice: "old" at sequence 1, then
// "new" at sequence 2, in both copies.
func writeTwo(t *testing.T) (*FileStore, string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenFileStore(dir, FileStoreOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	_, err = s.CompareAndSwap(ctx, "r", 0, []byte("old"))
	require.NoError(t, err)
	_, err = s.CompareAndSwap(ctx, "r", 1, []byte("new"))
	require.NoError(t, err)
	return s, dir
}

// TestFileStoreCorruption damages the stored files in every way we can
// think of and checks the result is an intact copy or ErrCorrupt, never a
// damaged value, and that a record read from one copy is rewritten to the
// other.
func TestFileStoreCorruption(t *testing.T) {
	ctx := context.Background()
	const c0, c1 = "r.0", "r.1"

	type probe struct {
		name   string
		damage func(t *testing.T, dir string)
		want   string // "" means ErrCorrupt
	}
	flip := func(file string, i int) func(*testing.T, string) {
		return func(t *testing.T, dir string) {
			p := filepath.Join(dir, file)
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			b[i%len(b)] ^= 0x01
			require.NoError(t, os.WriteFile(p, b, 0o600))
		}
	}
	truncate := func(file string, n int64) func(*testing.T, string) {
		return func(t *testing.T, dir string) {
			require.NoError(t, os.Truncate(filepath.Join(dir, file), n))
		}
	}
	remove := func(files ...string) func(*testing.T, string) {
		return func(t *testing.T, dir string) {
			for _, f := range files {
				require.NoError(t, os.Remove(filepath.Join(dir, f)))
			}
		}
	}
	put := func(file, name string, seq uint64, data string) func(*testing.T, string) {
		return func(t *testing.T, dir string) {
			b := encodeEnvelope(envelope{name: name, seq: seq, present: true, data: []byte(data)})
			require.NoError(t, os.WriteFile(filepath.Join(dir, file), b, 0o600))
		}
	}
	both := func(a, b func(*testing.T, string)) func(*testing.T, string) {
		return func(t *testing.T, d string) { a(t, d); b(t, d) }
	}
	probes := []probe{
		{"truncate copy 0 to 0", truncate(c0, 0), "new"},
		{"truncate copy 0 by one", truncate(c0, int64(envelopeMin+1+3-1)), "new"},
		{"truncate copy 1", truncate(c1, 10), "new"},
		{"truncate both", both(truncate(c0, 5), truncate(c1, 5)), ""},
		{"delete copy 0", remove(c0), "new"},
		{"delete copy 1", remove(c1), "new"},
		{"flip both", both(flip(c0, 20), flip(c1, 20)), ""},
		{"write cut between copies", put(c0, "r", 1, "old"), "new"},
		{"cut write, then newer copy damaged", both(put(c0, "r", 1, "old"), flip(c1, 3)), "old"},
		{"other record's files", both(put(c0, "s", 2, "foreign"), put(c1, "s", 2, "foreign")), ""},
		{"old copy put back", put(c1, "r", 1, "old"), "new"},
		{"copies differ at one sequence", put(c0, "r", 2, "evil"), ""},
		{"garbage file", func(t *testing.T, d string) {
			require.NoError(t, os.WriteFile(filepath.Join(d, c0), []byte("{\"floors\":{}}"), 0o600))
		}, "new"},
	}
	// Every single byte of either copy flipped.
	size := envelopeSize("r", 3)
	for i := 0; i < size; i++ {
		probes = append(probes, probe{fmt.Sprintf("flip copy 0 byte %d", i), flip(c0, i), "new"})
		probes = append(probes, probe{fmt.Sprintf("flip copy 1 byte %d", i), flip(c1, i), "new"})
	}
	for _, p := range probes {
		t.Run(p.name, func(t *testing.T) {
			s, dir := writeTwo(t)
			p.damage(t, dir)
			var damaged []string
			s.onDamage = func(name, detail string) { damaged = append(damaged, name+": "+detail) }
			var logged strings.Builder
			s.log = slog.New(slog.NewTextHandler(&logged, nil))
			got, err := s.Load(ctx, "r")
			if p.want == "" {
				assert.ErrorIs(t, err, ErrCorrupt)
				var ce *CorruptError
				require.ErrorAs(t, err, &ce)
				assert.Equal(t, "r", ce.Name)
				assert.Nil(t, got.Data)
				// A record with no intact copy cannot be overwritten blind,
				// only started afresh on purpose with sequence 0.
				_, err = s.CompareAndSwap(ctx, "r", 2, []byte("x"))
				assert.ErrorIs(t, err, ErrCorrupt)
				seq, err := s.CompareAndSwap(ctx, "r", 0, []byte("fresh"))
				require.NoError(t, err)
				got, err = s.Load(ctx, "r")
				require.NoError(t, err)
				assert.Equal(t, Record{Seq: seq, Data: []byte("fresh")}, got)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, p.want, string(got.Data))
			if !strings.HasPrefix(p.name, "delete") && !strings.Contains(p.name, "cut") && !strings.Contains(p.name, "put back") {
				assert.NotEmpty(t, damaged, "damage reported")
			}
			assert.Contains(t, logged.String(), "level=WARN msg=\"state recovered\" record=r from=r.")
			// Load rewrote the bad copy: both are intact copies again.
			for _, f := range []string{c0, c1} {
				b, err := os.ReadFile(filepath.Join(dir, f))
				require.NoError(t, err, f)
				e, err := decodeEnvelope(b, DefaultMaxRecordSize)
				require.NoError(t, err, f)
				assert.Equal(t, Record{Seq: got.Seq, Data: got.Data}, Record{Seq: e.seq, Data: e.data}, f)
			}
			// The next write goes to both copies and is read back.
			_, err = s.CompareAndSwap(ctx, "r", got.Seq, []byte("next"))
			require.NoError(t, err)
			got, err = s.Load(ctx, "r")
			require.NoError(t, err)
			assert.Equal(t, "next", string(got.Data))
		})
	}
}

func TestFileStoreIOError(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads unreadable files")
	}
	s, dir := writeTwo(t)
	require.NoError(t, os.Chmod(filepath.Join(dir, "r.0"), 0))
	_, err := s.Load(context.Background(), "r")
	assert.Error(t, err)
	assert.False(t, errors.Is(err, ErrCorrupt))
}

// TestFileStoreConcurrentCAS: many goroutines share one FileStore (a
// directory admits only one) and increment a counter record; every
// increment survives.
func TestFileStoreConcurrentCAS(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	const writers, increments = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	shared, err := OpenFileStore(dir, FileStoreOptions{})
	require.NoError(t, err)
	for w := 0; w < writers; w++ {
		s := shared
		wg.Go(func() {
			for done := 0; done < increments; {
				r, err := s.Load(ctx, "n")
				if err != nil {
					errs <- err
					return
				}
				n := 0
				if r.Exists() {
					n, _ = strconv.Atoi(string(r.Data))
				}
				_, err = s.CompareAndSwap(ctx, "n", r.Seq, []byte(strconv.Itoa(n+1)))
				if errors.Is(err, ErrConflict) {
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				done++
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, shared.Close())
	s, err := OpenFileStore(dir, FileStoreOptions{})
	require.NoError(t, err)
	r, err := s.Load(ctx, "n")
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(writers*increments), string(r.Data))
	assert.Equal(t, uint64(writers*increments), r.Seq)
}
