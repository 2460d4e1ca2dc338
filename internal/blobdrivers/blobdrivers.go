// Package blobdrivers links the gocloud.dev/blob drivers that the example
// programs' --repo URLs may name: s3:// (and S3-compatible servers), gs://,
// azblob:// and file://.
package blobdrivers

import (
	_ "gocloud.dev/blob/azureblob"
	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/gcsblob"
	_ "gocloud.dev/blob/s3blob"
)
