package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"

	"github.com/otaseal/otaseal/verify"
)

// Exit statuses of a run with -once. A fleet manager (or a shell loop)
// branches on them: a network failure is retried later as it is, a refusal
// is a security event to report, a usage error or a hardware ID without
// releases needs a person.
const (
	exitOK         = 0 // updated, up to date, or newer releases not yet rolled out to the device, held back by the rollout control, or withdrawn
	exitRefused    = 1 // update refused (verification failed) or failed (install, health check)
	exitUsage      = 2 // bad flags, or the device cannot start (state, slots, root)
	exitNetwork    = 3 // the server was unreachable, too slow, or answered with an HTTP error
	exitNoReleases = 4 // the repository has no release for this hardware ID
)

// exitCodes is the table -help prints.
const exitCodes = `
Exit status (with -once):
  0  the device runs the newest release it may take: updated, already up to date,
     or newer releases are not yet rolled out to it (logged with "until"), held back
     by the rollout control (paused, capped, stopped), or withdrawn
  1  update refused or failed: metadata, image or server certificate failed
     verification (a security event), or the install or its health check failed;
     the running image stays
  2  usage error, or the device cannot start (state, slot files, trusted root)
  3  network failure, retryable: the server could not be reached, timed out,
     was too slow, or answered with an HTTP error; the running image stays
  4  the repository has no release for this hardware ID (check -hardware-id)
`

// exitCode maps the error of one update cycle to the exit status.
func exitCode(err error) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, verify.ErrNoReleases):
		return exitNoReleases
	case isNetwork(err):
		return exitNetwork
	}
	return exitRefused
}

// isNetwork reports whether err is a failure to get bytes from the server,
// which a later cycle may not meet again, as opposed to bytes that arrived
// and were refused. A server certificate or TLS alert is a refusal: it
// does not go away by retrying, and it is what a man in the middle looks
// like. Refusals of the bytes themselves (bad signature, wrong hash, an
// endless document: verify.ErrTooLong) are never network failures.
func isNetwork(err error) bool {
	var (
		certErr    *tls.CertificateVerificationError
		opErr      *net.OpError
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
		netErr     net.Error
	)
	switch {
	case errors.As(err, &certErr), errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &invalidErr):
		return false
	case errors.As(err, &opErr) && opErr.Op == "remote error":
		// crypto/tls's report of an alert the server sent: it refused our
		// certificate (or none), a refusal, not an outage.
		return false
	case errors.Is(err, verify.ErrTooLong):
		return false
	}
	return errors.Is(err, verify.ErrFetchTransient) || errors.Is(err, verify.ErrSlowRetrieval) ||
		errors.Is(err, verify.ErrHTTPStatus) || errors.Is(err, verify.ErrNotFound) ||
		errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr)
}

// report logs the end of a failed cycle in words that say what happened
// and what to do about it, and returns the exit status.
func (a *agent) report(err error) int {
	code := exitCode(err)
	switch code {
	case exitNoReleases:
		a.log.Error("the repository has no releases for this hardware ID; check -hardware-id", "hardware_id", a.cfg.hardwareID)
	case exitNetwork:
		a.log.Error("network failure (retryable): the update server is unreachable or failing; the running image stays", "err", err)
	case exitRefused:
		a.log.Error("update refused or failed; the running image stays", "err", err)
	}
	return code
}
