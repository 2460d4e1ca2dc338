package sign

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"time"

	gcblob "gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// ConditionalStorage is a Storage that can also create a blob only where
// none exists. Publish uses it to make two publishers, or several update
// servers renewing one timestamp, safe against each other (see Publish).
//
// Contract, in addition to Storage's:
//   - Create stores all of r under name, atomically and durably like Put,
//     only if name holds no blob; otherwise it returns an error wrapping
//     ErrBlobExists and changes nothing. Of two concurrent Creates of one
//     name exactly one succeeds.
//   - ModTime returns when the blob name was last written, by the store's
//     clock, or an error wrapping ErrBlobNotFound.
type ConditionalStorage interface {
	Storage
	Create(ctx context.Context, name string, r io.Reader) error
	ModTime(ctx context.Context, name string) (time.Time, error)
}

// RemovableStorage is a Storage that can also remove a blob. Publish uses
// it, when the store has it, to remove claims (see Publish) that no
// publisher or reader can need any more, so that they do not pile up at
// one per publish and timestamp renewal.
//
// Remove deletes name; removing a name that holds nothing is not an error.
type RemovableStorage interface {
	Storage
	Remove(ctx context.Context, name string) error
}

// DefaultTimestampMaxAge is how long caches may keep timestamp.json (and
// the other unversioned metadata) when BlobStorageOptions leaves it zero.
const DefaultTimestampMaxAge = time.Minute

// BlobStorageOptions configure a BlobStorage. The zero value is the safe
// choice: a one-minute cache for timestamp.json.
type BlobStorageOptions struct {
	// TimestampMaxAge is the max-age of the Cache-Control header stored
	// with unversioned metadata (timestamp.json, root.json). A cache in
	// front of the bucket may serve a timestamp this old, so it must stay
	// well below the timestamp's re-sign margin. Zero means
	// DefaultTimestampMaxAge.
	TimestampMaxAge time.Duration
}

// BlobStorage is a ConditionalStorage in a gocloud.dev/blob bucket: S3 or
// any S3-compatible server, Google Cloud Storage, Azure Blob Storage or a
// directory, chosen by the URL the program opens the bucket with
// (blob.OpenBucket). This package links no cloud SDK: the program imports
// the driver it needs (gocloud.dev/blob/s3blob, gcsblob, azureblob,
// fileblob).
//
// Every object is written with a Cache-Control header (CacheControl):
// versioned metadata and target files never change under their name and
// are immutable; timestamp.json and root.json get a short max-age. Create
// maps to the store's conditional write (S3 "If-None-Match: *", GCS
// generation 0, Azure "If-None-Match: *", an exclusive link in a
// directory).
//
// Serving the bucket directly to TUF clients needs misses answered 404,
// not 403: a client reads a 404 on "N+1.root.json" as "no newer root". On
// S3 that means granting the readers s3:ListBucket as well as
// s3:GetObject (README of examples/updateserver has the policy); the update
// server answers 404 for a missing object whatever the bucket says.
type BlobStorage struct {
	b      *gcblob.Bucket
	maxAge time.Duration
}

// NewBlobStorage returns a BlobStorage on b. The caller keeps ownership of
// b and closes it.
func NewBlobStorage(b *gcblob.Bucket, opts BlobStorageOptions) *BlobStorage {
	return &BlobStorage{b: b, maxAge: orDefault(opts.TimestampMaxAge, DefaultTimestampMaxAge)}
}

// versionedMeta matches consistent-snapshot metadata names
// ("metadata/12.snapshot.json", "metadata/3.root.json").
var versionedMeta = regexp.MustCompile(`^` + MetadataDir + `/[0-9]+\.[^/]+\.json$`)

// hashedTarget matches the file name of a target under consistent
// snapshots: its SHA-256 or SHA-512 in hex, a dot, the name.
var hashedTarget = regexp.MustCompile(`^` + TargetsDir + `/(.*/)?([0-9a-f]{64}|[0-9a-f]{128})\.[^/]+$`)

// CacheControl returns the Cache-Control header for the repository blob
// name: "public, max-age=31536000, immutable" for the names that never
// change content, versioned metadata ("N.ROLE.json") and hash-prefixed
// target files (consistent snapshots), and "public, max-age=N" with N the
// seconds of maxAge for everything else: timestamp.json, root.json, and
// without consistent snapshots the metadata and target files replaced in
// place (a release index, a target removed and added again).
func CacheControl(name string, maxAge time.Duration) string {
	if versionedMeta.MatchString(name) || hashedTarget.MatchString(name) {
		return "public, max-age=31536000, immutable"
	}
	return fmt.Sprintf("public, max-age=%d", int64(maxAge/time.Second))
}

func (s *BlobStorage) writerOptions(name string, ifNotExist bool) *gcblob.WriterOptions {
	ct := "application/octet-stream"
	if strings.HasPrefix(name, MetadataDir+"/") {
		ct = "application/json"
	}
	return &gcblob.WriterOptions{
		CacheControl:                CacheControl(name, s.maxAge),
		ContentType:                 ct,
		DisableContentTypeDetection: true,
		IfNotExist:                  ifNotExist,
	}
}

// Put writes r to name. The store makes the object visible only when the
// upload completes, so readers see the old object or the new one.
func (s *BlobStorage) Put(ctx context.Context, name string, r io.Reader) error {
	return s.write(ctx, name, r, false)
}

// Create writes r to name only when name holds no object (ErrBlobExists).
func (s *BlobStorage) Create(ctx context.Context, name string, r io.Reader) error {
	return s.write(ctx, name, r, true)
}

func (s *BlobStorage) write(ctx context.Context, name string, r io.Reader, ifNotExist bool) (err error) {
	if err := CheckName(name); err != nil {
		return err
	}
	// A cancelled context aborts the upload: nothing becomes visible.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := s.b.NewWriter(wctx, name, s.writerOptions(name, ifNotExist))
	if err != nil {
		return blobError("writing "+name, err)
	}
	if _, err := io.Copy(w, ctxReader{ctx, r}); err != nil {
		cancel()
		w.Close()
		return fmt.Errorf("sign: writing %s: %w", name, err)
	}
	if err := w.Close(); err != nil {
		return blobError("writing "+name, err)
	}
	return nil
}

// Get opens the object name.
func (s *BlobStorage) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	r, err := s.b.NewReader(ctx, name, nil)
	if err != nil {
		return nil, blobError("reading "+name, err)
	}
	return r, nil
}

// Remove deletes the object name; a missing one is not an error.
func (s *BlobStorage) Remove(ctx context.Context, name string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	err := s.b.Delete(ctx, name)
	if err == nil || gcerrors.Code(err) == gcerrors.NotFound {
		return nil
	}
	return blobError("removing "+name, err)
}

// ModTime returns the object's last write time.
func (s *BlobStorage) ModTime(ctx context.Context, name string) (time.Time, error) {
	if err := CheckName(name); err != nil {
		return time.Time{}, err
	}
	a, err := s.b.Attributes(ctx, name)
	if err != nil {
		return time.Time{}, blobError("reading "+name, err)
	}
	return a.ModTime, nil
}

// List returns the names of all objects under prefix, sorted.
func (s *BlobStorage) List(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	it := s.b.List(&gcblob.ListOptions{Prefix: prefix})
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, blobError("listing", err)
		}
		if !obj.IsDir {
			out = append(out, obj.Key)
		}
	}
	sort.Strings(out)
	return out, nil
}

// blobError translates a gocloud error: a missing object becomes
// ErrBlobNotFound and a failed IfNotExist precondition ErrBlobExists.
func blobError(what string, err error) error {
	switch gcerrors.Code(err) {
	case gcerrors.NotFound:
		return fmt.Errorf("%w: %s: %v", ErrBlobNotFound, what, err)
	case gcerrors.FailedPrecondition:
		return fmt.Errorf("%w: %s: %v", ErrBlobExists, what, err)
	}
	return fmt.Errorf("sign: %s: %w", what, err)
}
