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
//
// Entry points:
//
//   - Keys: [LoadPEMSignerFile] (ed25519, ECDSA P-256/P-384, RSA-PSS,
//     encrypted PEM with [PassphraseFromEnv] or [PassphraseFromTerminal]),
//     [OpenPKCS11] for HSMs, [LoadKMSSigner] for cloud KMS, and
//     [NewSigner] for any sigstore signature.Signer. A [Signer] knows its
//     TUF keyid and scheme and verifies each signature it makes, so a
//     misconfigured signer (P-384 hashed with SHA-256, RSA PKCS#1 v1.5,
//     the mistakes go-tuf's Metadata.Sign makes) is refused up front.
//   - Publishing: [CreateRepository] or [OpenRepository] a [Repository] on a [Storage]
//     ([NewDirStorage] for a web server's document root), then
//     [Repository.AddFirmware], [Repository.AddDelta],
//     [Repository.AddDelegation], [Repository.AddHashBins] and
//     [Repository.Publish]. The update server calls Publish with only its
//     online keys to keep snapshot and timestamp fresh.
//   - Ceremonies: [NewRoot] / [Repository.StageRoot] give an unsigned
//     document; key holders call [SignDetached] on their own machines;
//     [Merge] checks and combines the detached signatures and reports who
//     signed; [Repository.SetRoot] installs a rotated root after
//     [VerifyRootRotation].
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
// FindTarget); a device that searches by hardware ID (verify's Select)
// only searches roles delegated by path pattern, so per-model path
// delegations ([Repository.AddDelegation] with "MODEL/*") suit that use.
//
// Errors carry evidence: a refused signature is a *[KeyError] naming the
// role and key (ErrWrongRole, ErrUnknownKey, ErrRevokedKey,
// ErrBadSignature, ErrDuplicateSignature), a short document a
// *[manifest.ThresholdError] listing who signed and who did not.
//
// Interoperability: go-tuf and tuf-js both read every scheme this package
// signs with except one: tuf-js (4.1.0, pinned in the tests) cannot verify
// ecdsa-sha2-nistp384 signatures. Use ed25519, ECDSA P-256 or RSA-PSS for
// roles that tuf-js (or sigstore-js) clients must read.
//
// What it does not do: it does not verify updates on devices (package
// verify), keep a device's trusted state (package rollback), compute
// deltas (package delta), serve HTTP, or garbage-collect target files
// that no metadata lists any more. It keeps no global state and no
// logger; time comes from [RepositoryOptions].Now.
package sign
