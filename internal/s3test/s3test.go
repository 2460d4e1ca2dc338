// Package s3test gives tests buckets on a real S3-compatible server
// (versitygw in CI, see .ci/run), found through the environment:
//
//	OTASEAL_TEST_S3_ENDPOINT   http://127.0.0.1:PORT
//	OTASEAL_TEST_S3_ACCESS_KEY root access key
//	OTASEAL_TEST_S3_SECRET_KEY root secret key
//
// Without them a test is skipped, unless the CI environment variable is
// set: there a missing server fails the test, since CI starts one.
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"
	"gocloud.dev/blob/s3blob"
)

// Server is the S3 server of the test environment.
type Server struct {
	Endpoint, AccessKey, SecretKey string
	client                         *s3.Client
}

// Bucket is one fresh bucket.
type Bucket struct {
	Name string
	// URL opens the bucket with gocloud.dev/blob.OpenBucket, given
	// credentials in the environment (Server.SetCredentialsEnv).
	URL string
	// HTTP is the bucket's own path-style HTTP endpoint
	// (ENDPOINT/NAME), for anonymous readers once it is public.
	HTTP string
	// Blob is the bucket opened with the root credentials; closed when
	// the test ends.
	Blob *blob.Bucket
}

// Require returns the test environment's S3 server, or skips (fails under
// CI) when there is none.
func Require(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		Endpoint:  os.Getenv("OTASEAL_TEST_S3_ENDPOINT"),
		AccessKey: os.Getenv("OTASEAL_TEST_S3_ACCESS_KEY"),
		SecretKey: os.Getenv("OTASEAL_TEST_S3_SECRET_KEY"),
	}
	if s.Endpoint == "" || s.AccessKey == "" || s.SecretKey == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("an S3 server is required in CI (OTASEAL_TEST_S3_ENDPOINT, _ACCESS_KEY, _SECRET_KEY; .ci/run starts versitygw)")
		}
		t.Skip("no S3 server (set OTASEAL_TEST_S3_ENDPOINT, _ACCESS_KEY, _SECRET_KEY; .ci/run starts versitygw)")
	}
	s.client = s3.New(s3.Options{
		BaseEndpoint: aws.String(s.Endpoint),
		Region:       "us-east-1",
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	})
	return s
}

// SetCredentialsEnv puts the root credentials where the AWS SDK's default
// chain finds them, for programs that open Bucket.URL (not with
// t.Parallel).
func (s *Server) SetCredentialsEnv(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", s.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s.SecretKey)
	t.Setenv("AWS_REGION", "us-east-1")
}

// NewBucket creates a bucket of a random name, deleted never (the server's
// directory is temporary). With public, anonymous clients may read objects
// and list the bucket, so a missing object is answered 404 rather than 403
// (the policy a bucket served straight to TUF clients needs).
func (s *Server) NewBucket(t testing.TB, public bool) *Bucket {
	t.Helper()
	ctx := context.Background()
	var rnd [6]byte
	rand.Read(rnd[:])
	name := "otaseal-" + hex.EncodeToString(rnd[:])
	if _, err := s.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("creating bucket %s: %v", name, err)
	}
	if public {
		if _, err := s.client.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(name), Policy: aws.String(PublicReadPolicy(name))}); err != nil {
			t.Fatalf("bucket policy: %v", err)
		}
	}
	b, err := s3blob.OpenBucket(ctx, s.client, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	q := url.Values{"endpoint": {s.Endpoint}, "use_path_style": {"true"}, "region": {"us-east-1"}}
	return &Bucket{
		Name: name,
		URL:  fmt.Sprintf("s3://%s?%s", name, q.Encode()),
		HTTP: s.Endpoint + "/" + name,
		Blob: b,
	}
}

// PublicReadPolicy is the bucket policy for a repository bucket that TUF
// clients read directly: anyone may get objects, and anyone may list the
// bucket, without which S3 answers a missing object 403 instead of 404.
func PublicReadPolicy(bucket string) string {
	return fmt.Sprintf(`{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::%[1]s/*"]},
    {"Effect": "Allow", "Principal": "*", "Action": ["s3:ListBucket"], "Resource": ["arn:aws:s3:::%[1]s"]}
  ]
}`, bucket)
}
