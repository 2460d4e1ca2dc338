// Package verify is the device side of otaseal: it decides whether an
// update is genuine, fresh, meant for this hardware and not a rollback, and
// installs it without trusting a byte before it is checked.
//
// Entry points:
//
//   - Bootstrap stores the first trusted root; New opens a Client on a
//     TrustStore (StateTrustStore on package rollback's crash-safe state, or
//     DirTrustStore on plain files) with a Clock (rollback's trusted clock on
//     devices without a real-time clock).
//   - Client.Refresh runs the TUF client workflow (specification 5.3 to
//     5.6): the root chain, timestamp, snapshot and targets, each checked
//     for threshold signatures, expiry and rollback, and stored before the
//     next step. A refresh that finds nothing new downloads only the
//     timestamp. Client.FindTarget walks delegations for one path.
//   - Client.Select picks the newest release for this hardware that the
//     rollback policy allows, and a delta from the installed image if there
//     is one; Client.Install and Client.Download stream a target into a
//     slot through CheckedWriter, which checks length and every hash.
//
// Transport is the Fetcher interface; HTTPFetcher bounds every download by
// its signed or configured length, retries transient failures with backoff,
// refuses slow retrieval, and never touches process-wide HTTP state.
//
// Where go-tuf v2.4.2 is wrong, this package does its own: a delegated role
// cached through one delegator is verified again against the delegator of
// each later lookup; path_hash_prefixes are matched in hex, as the
// specification says; shapes that make go-tuf panic are refused by
// package manifest before go-tuf parses them; and the client can refresh
// any number of times in one long-running process.
//
// Targets documents, which list every image of a fleet, are decoded once
// and their signed bytes canonicalised once per document rather than once
// per key (manifest.ParseTargetsUnverified): a 100,000-target catalogue
// verifies in a fraction of a second with a tenth of go-tuf's memory or
// less (BenchmarkVerifyTargets), accepting and refusing exactly what go-tuf
// does (FuzzVerifyTargetsDifferential). Large repositories should still
// use hash bins, so that a device downloads one bin, not the catalogue
// (BenchmarkHashBins; see package sign).
//
// The package example is a device agent's whole update check.
//
// It does not reboot, switch slots or run health checks: the device agent
// does, around rollback.State's Begin, Confirm and Revert.
package verify
