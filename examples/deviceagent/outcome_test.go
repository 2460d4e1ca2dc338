package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/verify"
)

// Each failure has the exit status of what it means: bytes that never
// came (network), bytes or peers refused (security), or a hardware ID the
// repository does not know.
func TestExitCode(t *testing.T) {
	dial := &url.Error{Op: "Get", URL: "http://127.0.0.1:1/metadata/timestamp.json",
		Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}}
	badCert := &url.Error{Op: "Get", URL: "https://mirror/metadata/timestamp.json", Err: x509.UnknownAuthorityError{}}
	certRequired := &url.Error{Op: "Get", URL: "https://mirror/metadata/timestamp.json",
		Err: &net.OpError{Op: "remote error", Err: errors.New("tls: certificate required")}}
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"success", nil, exitOK},
		{"connection refused", fmt.Errorf("fetching metadata: verify: GET: %w", dial), exitNetwork},
		{"connection refused after retries", fmt.Errorf("%w: %w", verify.ErrFetchTransient, dial), exitNetwork},
		{"slow retrieval", fmt.Errorf("target: %w", verify.ErrSlowRetrieval), exitNetwork},
		{"server error", &verify.HTTPError{URL: "u", StatusCode: 503}, exitNetwork},
		{"not found", &verify.HTTPError{URL: "u", StatusCode: 404}, exitNetwork},
		{"server certificate refused", badCert, exitRefused},
		{"server certificate refused after retries", fmt.Errorf("%w: %w", verify.ErrFetchTransient, badCert), exitRefused},
		{"client certificate refused by the server", certRequired, exitRefused},
		{"endless document", fmt.Errorf("%w: timestamp.json", verify.ErrTooLong), exitRefused},
		{"expired metadata", fmt.Errorf("metadata refused: %w", manifest.ErrExpired), exitRefused},
		{"tampered image", &verify.TargetError{Path: "p", Err: verify.ErrHashMismatch}, exitRefused},
		{"no releases", fmt.Errorf("%w: %q", verify.ErrNoReleases, "acme-lock"), exitNoReleases},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, exitCode(tc.err), "%v", tc.err)
		})
	}
}
