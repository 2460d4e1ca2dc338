package blobdrivers

import (
	"context"
	"strings"
	"testing"

	"gocloud.dev/blob"
)

// TestSchemesRegistered opens a URL of every scheme the programs document.
// Without credentials or a server the cloud ones fail, but with the
// driver's own error: "unknown scheme" means a driver is not linked.
func TestSchemesRegistered(t *testing.T) {
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AZURE_STORAGE_ACCOUNT", "")
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "")
	for _, u := range []string{
		"s3://bucket?endpoint=http://127.0.0.1:1&use_path_style=true",
		"gs://bucket",
		"azblob://container",
		"file://" + t.TempDir(),
	} {
		b, err := blob.OpenBucket(context.Background(), u)
		if err == nil {
			b.Close()
			continue
		}
		if strings.Contains(err.Error(), "no driver registered") || strings.Contains(err.Error(), "unknown scheme") {
			t.Errorf("%s: %v", u, err)
		}
	}
}
