package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"gocloud.dev/blob"

	// The drivers --repo URLs may name: s3://, gs://, azblob://, file://.
	_ "github.com/otaseal/otaseal/internal/blobdrivers"
	"github.com/otaseal/otaseal/sign"
)

// isBucketURL reports whether --repo names a bucket (s3://BUCKET?...,
// file:///DIR) rather than a directory.
func isBucketURL(repo string) bool { return strings.Contains(repo, "://") }

// openStorage opens the repository storage --repo names: a directory, or
// a bucket through gocloud.dev/blob with credentials from the environment
// (for S3: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile). On
// a bucket, publishing is a compare-and-swap (sign.ConditionalStorage):
// of two release runs at once one publishes and the other fails with
// "repository changed since it was opened, retry". The returned function
// closes the bucket.
func openStorage(ctx context.Context, repo string) (sign.Storage, func(), error) {
	if !isBucketURL(repo) {
		st, err := sign.NewDirStorage(repo)
		return st, func() {}, err
	}
	b, err := blob.OpenBucket(ctx, repo)
	if err != nil {
		return nil, nil, fmt.Errorf("opening bucket %s: %w", redactURL(repo), err)
	}
	return sign.NewBlobStorage(b, sign.BlobStorageOptions{}), func() { b.Close() }, nil
}

// redactURL is a bucket URL without its query, for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable bucket URL)"
	}
	return u.Scheme + "://" + u.Host + u.Path
}

// bucketStagingFile is where the staged changes of a bucket repository
// wait: in the current directory, named after the bucket, since nothing
// unpublished may go into the bucket that devices read.
func bucketStagingFile(repo string) string {
	u, err := url.Parse(repo)
	name := "bucket"
	if err == nil && u.Host != "" {
		name = u.Host
	}
	return filepath.Join(".", name+".staged")
}

// repoExists reports whether repo holds a published repository.
func repoExists(ctx context.Context, repo string) error {
	if !isBucketURL(repo) {
		if _, err := os.Stat(filepath.Join(repo, sign.MetadataDir)); err != nil {
			return fmt.Errorf("%s is not a repository (run release init): %w", repo, err)
		}
	}
	return nil
}
