// Package sign is the server side of trust: role-separated signing keys
// and thresholds, offline k-of-n signing, root rotation and key
// revocation, and the publishing workflow of an update server. What it
// writes is standard TUF 1.0 metadata that go-tuf, python-tuf and tuf-js
// clients read as is.
//
// The risk it addresses first is a stolen or misused signing key. Every
// role is signed only by its own keys (Policy.Authorize refuses a key of
// another role by name), thresholds count distinct keys and are checked
// before anything is written, offline keys (root, targets, delegations)
// are needed only when what they vouch for changes, and an update server
// that holds just the snapshot and timestamp keys cannot forge firmware.
// [CheckRoleSeparation] refuses a root that gives a root or targets key to
// snapshot or timestamp as well (the release tool applies it at init and
// rotate, the update server at start), and Publish refuses to publish
// under an expired root or targets document ([ErrExpired]); [Repository.Expiries]
// and [ExpiryWarning] tell an operator what expires when.
//
// Five calls to start from; their docs lead to the rest:
//
//   - [NewRoot]: the root document naming each role's keys and threshold.
//   - [LoadPEMSignerFile]: a signing key (HSM, KMS and any sigstore signer
//     fit too; [GenerateKey] and [GeneratePKCS11Key] make new ones).
//   - [CreateRepository]: a repository on a Storage, to stage firmware,
//     deltas and delegations on (or open a published one).
//   - [Repository.Publish]: sign and write what is staged; an update server
//     calls it with only its online keys to keep snapshot and timestamp
//     fresh.
//   - [Merge]: collect k-of-n detached signatures made on other machines.
//
// Large catalogues: hash bins are the default. A repository that lists
// more than a few thousand images should put them in succinct hash bins
// ([Repository.AddHashBins], TAP 15) from the start, with the top-level
// targets role delegating to the bins and listing no images itself.
// Without bins every device downloads and verifies the whole catalogue
// whenever any image changes: 43 MB for 100,000 firmware targets. With
// 2^11 bins a device that looks up its image downloads about 94 KB
// (timestamp, a snapshot that names every bin, a small top-level targets
// and one bin of some 50 images), and publishing an image re-signs one
// bin (BenchmarkHashBins in package verify measures both). Choose bits so
// that a bin holds tens to a few hundred images: the snapshot grows by
// about 40 bytes per bin. Bins serve lookups of known paths (verify's
// FindTarget); to let devices search them by hardware ID (verify's
// Select), keep a release index per hardware ID
// ([Repository.UpdateReleaseIndexes], manifest.ReleaseIndex), signed
// through the bins like any target. Per-model path delegations
// ([Repository.AddDelegation] with "MODEL/*") are the other way.
//
// Storage: a directory ([DirStorage]) or a bucket ([BlobStorage] on
// gocloud.dev/blob: S3 and S3-compatible servers, GCS, Azure; the program
// imports the driver, so this package links no cloud SDK). Both are a
// [ConditionalStorage] (a directory creates by hard link), on which
// Publish is a compare-and-swap: of two publishers, or update server
// replicas renewing the timestamp, exactly one commits and the other gets
// ErrConflict. gocloud.dev's fileblob (file:// URLs) only checks before
// it renames: use DirStorage for a directory that several publishers
// share.
//
// Errors carry evidence: a refused signature is a *[KeyError] naming the
// role and key (ErrWrongRole, ErrUnknownKey, ErrRevokedKey,
// ErrBadSignature, ErrDuplicateSignature), a short document a
// *[manifest.ThresholdError] listing who signed and who did not.
//
// Interoperability: go-tuf and tuf-js both read every scheme this package
// signs with: ed25519, ECDSA P-256 and P-384, and RSA-PSS. tuf-js verifies
// ecdsa-sha2-nistp384 from version 6.0.2 on (the version pinned in the
// tests); earlier versions hash every ECDSA signature with SHA-256 and
// refuse P-384 roles, so use ed25519, P-256 or RSA-PSS for roles that
// older tuf-js (or sigstore-js) clients must read.
//
// Deltas: [Repository.AddDelta] applies a patch once, with package delta,
// to check that it rebuilds the signed image before staging it, so a
// broken or mislabelled patch never reaches a device. That is sign's one
// otaseal import beside manifest; delta imports nothing of otaseal's, so
// the layers still point down.
//
// What it does not do: it does not verify updates on devices (package
// verify), keep a device's trusted state (package rollback), compute
// deltas (package delta), serve HTTP, or garbage-collect target files
// that no metadata lists any more. It keeps no global state and no
// logger; time comes from [RepositoryOptions].Now.
package sign
