package sign

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/otaseal/otaseal/internal/atomicfile"
)

// Storage holds a repository's named blobs: metadata files and target
// files, named by slash-separated relative paths ("timestamp.json",
// "targets/acme/1.0.0/fw.bin"). A web server serving the blobs under their
// names is a TUF repository.
//
// Contract:
//   - Put stores all of r under name atomically: a reader sees the old blob
//     or the new one, never a mix or a prefix. When Put returns nil the blob
//     is durable. On error the old blob (if any) is unchanged.
//   - Get returns the blob or an error wrapping ErrBlobNotFound.
//   - List returns the names under prefix ("" for all), sorted.
//
// Repository writes blobs in an order that keeps clients safe between any
// two Puts (targets, then delegated and top-level targets metadata, then
// snapshot, then root, then timestamp last), so Put need not be
// transactional across names.
type Storage interface {
	Put(ctx context.Context, name string, r io.Reader) error
	Get(ctx context.Context, name string) (io.ReadCloser, error)
	List(ctx context.Context, prefix string) ([]string, error)
}

// CheckName refuses names that could escape a storage root or mean two
// things on different systems: absolute paths, "." or ".." segments, empty
// segments, backslashes and control characters. A target path comes from
// the release engineer, but a storage must not trust it to stay inside.
func CheckName(name string) error {
	if name == "" || len(name) > 4096 || strings.HasPrefix(name, "/") {
		return fmt.Errorf("%w: %q", ErrBadName, clipText(name))
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w: %q", ErrBadName, clipText(name))
		}
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return fmt.Errorf("%w: %q has a control character or backslash", ErrBadName, clipText(name))
		}
	}
	return nil
}

// DirStorage is a Storage in a local directory, e.g. the document root of
// a web server.
type DirStorage struct {
	root string
}

// NewDirStorage returns a DirStorage rooted at dir, creating it if needed.
func NewDirStorage(dir string) (*DirStorage, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return &DirStorage{root: dir}, nil
}

// Put writes r to a temporary file in the target directory, fsyncs it,
// renames it over name and fsyncs the directory: after a crash the name
// holds the old or the new content, and once Put returns the new content
// survives power loss.
func (d *DirStorage) Put(ctx context.Context, name string, r io.Reader) error {
	return d.write(ctx, name, r, false)
}

// Create is Put only when name holds no file (ErrBlobExists otherwise):
// the complete temporary file is hard-linked to name, which the file
// system does atomically and refuses when name exists, so of two
// publishers creating one name exactly one succeeds and a reader never
// sees a prefix. DirStorage is therefore a ConditionalStorage and two
// publishers on one directory are as safe as on a bucket. The directory
// must support hard links (any POSIX file system; not FAT).
func (d *DirStorage) Create(ctx context.Context, name string, r io.Reader) error {
	return d.write(ctx, name, r, true)
}

func (d *DirStorage) write(ctx context.Context, name string, r io.Reader, create bool) (err error) {
	if err := CheckName(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	final := filepath.Join(d.root, filepath.FromSlash(name))
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	linked := false
	defer func() {
		if err != nil {
			tmp.Close()
		}
		// After a link (or on error) the temporary name must go; after a
		// rename it no longer exists.
		if err != nil || linked {
			os.Remove(tmp.Name())
		}
	}()
	if _, err = io.Copy(tmp, ctxReader{ctx, r}); err != nil {
		return fmt.Errorf("sign: writing %s: %w", name, err)
	}
	if err = tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	if create {
		err = os.Link(tmp.Name(), final)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s", ErrBlobExists, name)
		}
		linked = err == nil
	} else {
		err = os.Rename(tmp.Name(), final)
	}
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	return atomicfile.SyncDir(dir)
}

// ModTime returns the modification time of the file name.
func (d *DirStorage) ModTime(ctx context.Context, name string) (time.Time, error) {
	if err := CheckName(name); err != nil {
		return time.Time{}, err
	}
	fi, err := os.Stat(filepath.Join(d.root, filepath.FromSlash(name)))
	if errors.Is(err, fs.ErrNotExist) {
		return time.Time{}, fmt.Errorf("%w: %s", ErrBlobNotFound, name)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("sign: %w", err)
	}
	return fi.ModTime(), nil
}

// Get opens the blob name.
func (d *DirStorage) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(d.root, filepath.FromSlash(name)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrBlobNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return f, nil
}

// List returns the names of all blobs under prefix, skipping temporary
// files of writes in progress.
func (d *DirStorage) List(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(d.root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() || strings.HasPrefix(e.Name(), ".tmp-") {
			return nil
		}
		rel, err := filepath.Rel(d.root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if strings.HasPrefix(rel, prefix) {
			out = append(out, rel)
		}
		return ctx.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("sign: listing: %w", err)
	}
	sort.Strings(out)
	return out, nil
}

// ctxReader stops a long copy when the context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func getBlob(ctx context.Context, store Storage, name string, limit int64) ([]byte, error) {
	rc, err := store.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return readLimited(rc, limit)
}

// readLimited reads all of r, refusing more than max bytes: the extra byte
// read proves the input was too long without ever holding more than max+1.
func readLimited(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("sign: reading: %w", err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, max)
	}
	return b, nil
}

// Remove deletes the file name; a missing one is not an error.
func (d *DirStorage) Remove(ctx context.Context, name string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	final := filepath.Join(d.root, filepath.FromSlash(name))
	if err := os.Remove(final); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sign: %w", err)
	}
	return atomicfile.SyncDir(filepath.Dir(final))
}

var (
	_ ConditionalStorage = (*DirStorage)(nil)
	_ RemovableStorage   = (*DirStorage)(nil)
)
