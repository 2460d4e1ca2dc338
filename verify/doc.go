// Package verify is the device side of otaseal: it decides whether an
// update is genuine, fresh, meant for this hardware and not a rollback, and
// installs it without trusting a byte before it is checked.
//
// Entry points, in the order a device calls them:
//
//   - Bootstrap stores the root shipped with the device as the first
//     trusted root, once, at the factory.
//   - New opens a Client on a TrustStore (StateTrustStore on package
//     rollback's crash-safe state) with a Clock (rollback.TrustedClock on
//     devices without a trustworthy real-time clock).
//   - Client.Refresh runs the TUF client workflow (specification 5.3 to
//     5.6): the root chain, timestamp, snapshot and targets, each checked
//     for threshold signatures, expiry and rollback, and stored before the
//     next step. A refresh that finds nothing new downloads only the
//     timestamp.
//   - Client.Select picks the newest release for the device that its
//     rollback.State allows (the state owns the policy and the floors; see
//     DeviceState), and a delta from the installed image if there is one.
//   - Client.Install streams the release, or builds it from the delta,
//     into the inactive slot, checking length and every hash on the way.
//
// The package example is this sequence end to end. Most agents need not
// write it: Cycle binds these calls to the device's rollback.State and its
// A/B Slots, in the steps an agent takes at each start (Resume, Check,
// Begin, Install, then Confirm or Revert after the reboot), each safe to
// repeat after a power cut. It refuses to write a slot the state has no
// pending record for, falls back from a failed delta to the full image by
// itself, and tells "up to date" (ErrNoUpdate) from "nothing published for
// this hardware" (ErrNoReleases). Its example is a whole agent.
//
// Encrypted releases (manifest.Encryption) install the same way: Install
// unwraps the release's content key with one of Config.DecryptionKeys (a
// key file, or a TPM or secure element behind the DecryptionKey
// interface), checks the ciphertext against its signed length and hashes
// while it streams, decrypts it chunk by chunk into the slot, and accepts
// the image only when the plaintext matches its signed length and sha256;
// patches are decrypted on the way into the applier. A device that holds
// none of the release's recipient keys is refused by Cycle.Begin
// (ErrNoDecryptionKey) before its state or a slot changes, and a wrapped
// key copied from another release does not open (ErrEncryption).
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
// # Attacks and what stops them
//
// Each attack a device must survive, what the device does, and where that
// is enforced. Rows enforced outside this package say so; rows not yet
// enforced say that too.
//
//   - Arbitrary image (tampered bytes, wrong length or hash): Install and
//     Download write only through a CheckedWriter (checked.go), which stops
//     at the signed length and reports a hash mismatch at the end; the
//     caller sees success only after every hash matched. The slot written
//     is the inactive one: rollback.State.Begin refuses the active slot.
//   - Rollback of metadata: Refresh (refresh.go) refuses a document whose
//     version is below the trusted one (manifest.ErrMetadataVersionLower)
//     and stores each accepted one before the next step. Rollback of
//     firmware: Select asks rollback.State.Choose, and Begin checks again,
//     so an image below the security floor is neither offered nor begun;
//     the floor rises only in Confirm and is mirrored in a hardware
//     rollback.Counter (package rollback).
//   - Indefinite freeze (stale but validly signed metadata, clock reset to
//     1970): Refresh checks every expiry against the Clock; with
//     rollback.TrustedClock that clock never goes below the newest signing
//     time a verified timestamp proved (the TimeObserver hand-over in
//     refresh.go, the floor in package rollback).
//   - Endless data: metadata is read with the role's manifest.Limits or its
//     signed length (fetchMeta in refresh.go), targets with their signed
//     length (Fetcher contract, HTTPFetcher in fetch.go): ErrTooLong after
//     that many bytes, never more written.
//   - Mix-and-match (targets not in the snapshot): Refresh loads targets
//     and delegated roles only at the version and hashes the trusted
//     snapshot lists (refresh.go, lookup.go).
//   - Fast-forward (versions inflated with a stolen online key): after a
//     root rotation of the timestamp or snapshot keys, Refresh forgets the
//     documents those keys signed (TUF 5.3.11, refresh.go), so the
//     inflated versions stop blocking updates.
//   - Key compromise below threshold: every document needs its delegator's
//     threshold (fastverify.go for targets, go-tuf for the rest); a refusal
//     is a manifest.ThresholdError naming the keys that signed and the
//     ones missing (evidence.go).
//   - Wrong hardware: Select looks only at releases for
//     DeviceState.HardwareID and the state refuses any other hardware ID
//     (rollback.ErrWrongHardware at Choose and Begin).
//   - Malicious delta (bad offsets, overlong output, wrong base): Install
//     (install.go) hashes the installed image against the patch's signed
//     base first (ErrBaseMismatch), checks the patch bytes against their
//     own signed entry, caps the output at the release's signed length
//     (package delta bounds every offset), and checks the output like a
//     full image. Nothing is written outside the writer the caller passed.
//   - Power loss during install or a state write: package rollback (one
//     compare-and-swap per transition, two checksummed copies per record);
//     here, each accepted document is stored before the next step, so a
//     cut refresh resumes from what was verified. Booting the old image is
//     the device agent's job.
//   - Silent or slow server: HTTPFetcher bounds every try itself, whatever
//     http.Client it was given: HeaderTimeout until the response headers
//     (connect and TLS included), then a transfer slower than MinSpeed over
//     any SpeedWindow fails (guard.go), and TotalTimeout, by default derived
//     from the length limit and MinSpeed, caps the whole try. Each ends in
//     ErrSlowRetrieval (fetch.go).
//   - Online key stolen (snapshot, timestamp, rollout control): these keys
//     cannot sign a release, which needs the offline targets keys (or a
//     delegation from them), so at worst updates are delayed. The
//     rollout-control role is delegated with no paths and its document may
//     list no target; Select takes the stricter of the offline-signed
//     schedule and the control (manifest.Control.Narrow), so a stolen
//     control key can pause, cap or stop a release but never widen or
//     start one early (rollout.go). Waves are judged by the
//     proven time (ProvenClock), never by a clock set ahead.
//   - A second agent on the same state, a damaged state file: package
//     rollback. rollback.OpenFileStore locks the state directory until
//     Close, so a second agent fails at start with rollback.ErrLocked;
//     Cycle.Install re-reads the state before every slot write and refuses
//     a slot that became the installed one (ErrStateChanged). Every record
//     is kept in two checksummed copies and a damaged one is rewritten
//     from the other; a lost clock floor comes back from the stored
//     timestamp's signing time, a lost root from Config.ShippedRoot, after
//     which Refresh walks the root chain forward again. Floors never drop:
//     the hardware Counter holds them.
//   - Server under pressure answering 404: a 404 on the next root ends the
//     rotation walk (ErrNotFound), so the device relies on the server
//     answering 5xx for its own faults. The update server example answers
//     404 only for a file that does not exist (503 when out of descriptors,
//     500 otherwise) and drops stalled downloads. A lying 404 only delays a
//     rotation to the next Refresh; it cannot lower trust.
//   - Reading the firmware (reverse engineering, lifting IP, a download
//     recorded now and decrypted by a quantum computer later): an
//     encrypted release is ciphertext to everyone without a recipient key,
//     and the default KEM is the ML-KEM-768 + X25519 hybrid (package
//     encrypt). Chunks altered, moved, repeated, dropped or appended fail
//     their AEAD check before a byte of them is written (decrypt.go);
//     recipients and wrapped keys are signed by the targets role, so a man
//     in the middle cannot substitute a key, and the HPKE info binds each
//     wrap to its target path and version.
//
// It does not reboot, switch slots or run health checks: the device agent
// does, around Cycle's steps (or rollback.State's Begin, Confirm and
// Revert). rollback.Image.Matches answers the health check's first
// question, whether a slot holds the image its record describes.
package verify
