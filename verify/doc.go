// Package verify is the device side of otaseal: the TUF client workflow,
// firmware selection for this device, and the streaming verified install of
// a firmware image or delta.
//
// Its building blocks so far are the transport (Fetcher, with HTTPFetcher
// guarding length, speed and retries) and CheckedWriter, which streams a
// target into its destination while checking every byte against the signed
// length and hashes. The TUF workflow lands next; see the project's issues.
package verify
