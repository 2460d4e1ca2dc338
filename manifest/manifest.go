// Package manifest is otaseal's metadata model: standard TUF 1.0 documents,
// readable by any TUF client, plus the typed firmware facts otaseal keeps in
// each target's "custom" object.
//
// Entry points:
//
//   - ParseUnverified reads a metadata document from untrusted bytes with a
//     size limit per role and the shape checks that go-tuf skips. It does not
//     verify signatures: that is package verify's job.
//   - ParseTargetsUnverified does the same for targets documents in one
//     pass, for catalogues of 100,000 images, and returns the canonical
//     bytes their signatures sign (go-tuf's exactly).
//   - ReadEntry reads the firmware schema of a target (FirmwareOf and
//     DeltaOf for one kind); SetEntry writes it.
//   - FirmwareFor answers a device's question: which releases exist for my
//     hardware (DeltasTo then finds the patches that lead to one).
//
// The package does no I/O, verifies no signature and keeps no state.
//
// # TUF types
//
// The document types (Metadata, Root, Targets, TargetFile, ...) are aliases
// of go-tuf's metadata types, not wrappers; see types.go for why. Errors that
// go-tuf returns are translated to this package's sentinels by
// TranslateError, so callers never branch on go-tuf's error structs.
//
// # Firmware schema, version 1
//
// A target's "custom" object may hold one member "otaseal" (CustomKey);
// other members belong to other tools and are kept. Its value is an object
// whose "kind" selects one of two shapes.
//
// A firmware image:
//
//	{"kind": "firmware",
//	 "version": "2.4.1",                 strict SemVer 2.0.0, at most 128 bytes
//	 "security_version": 7,              integer 0..2^53-1, canonical spelling
//	 "hardware_ids": ["acme-gw-r2"],     1..256 unique IDs, visible ASCII, <=128 bytes
//	 "severity": "security",             optional: feature, bugfix, security, critical
//	 "advisories": ["CVE-2026-0001"],    optional: 1..64 single-line texts, <=128 bytes
//	 "notes": "fixes remote unlock",     optional: text, <=4096 bytes
//	 "rollout": {...},                   optional: staged schedule, below
//	 "withdrawn": {...},                 optional: the release is withdrawn, below
//	 "encryption": {...}}                optional: the target is encrypted, below
//
// A rollout is the release's staged schedule, signed with it by the
// offline targets role (type Rollout). A release without one is for every
// device at once, as documents written before rollouts existed are read:
//
//	{"start": "2026-03-01T00:00:00Z",    RFC 3339 in UTC, whole seconds, "Z": one spelling
//	 "waves": [                          1..32 (MaxWaves), in order
//	   {"offset_seconds": 0,      "basis_points": 100},
//	   {"offset_seconds": 86400,  "basis_points": 1000},
//	   {"offset_seconds": 604800, "basis_points": 10000}]}
//
// A wave's offset is whole seconds after the start (0..MaxWaveOffset) and
// its share is in basis points, 1/100 of a percent (0..FullShare, which is
// 10000): 100 is 1% of the fleet, and a first wave can be as small as 0.01%.
// Offsets rise strictly, shares never fall (RuleWaveOrder), and the last
// wave reaches every device (RuleLastWaveNotFull). A device's place in the
// order of a release is RolloutBucket(path, rolloutID); it may take the
// release from Rollout.EligibleFrom on, judged by a trusted clock.
//
// A withdrawal marks a published release that devices must not install;
// devices running it log the notice and move to the next newer release
// they may take. The image stays published. It is set by the offline
// targets role, like the release (type Withdrawal):
//
//	{"reason": "bricks units with flash rev B",   one line, <=1024 bytes
//	 "advisories": ["OTS-2026-7"]}                optional: 1..64 single-line texts
//
// # Rollout control
//
// An update server may narrow rollouts with an online key, never widen
// them. The top-level targets role delegates the reserved role
// RoleRolloutControl with "paths": [] and the control keys; its document
// lists no targets and no delegations (RuleControlWidens otherwise, the
// whole document refused) and holds one signed member beside the TUF
// ones, ControlField, read by ControlOf and ParseControl (type Control):
//
//	"custom": {"otaseal-control": {
//	  "acme-gw-r2/2.4.1/firmware.bin": {
//	    "state": "capped",                paused, stopped or capped
//	    "cap_basis_points": 2500,         with capped only: 0..10000
//	    "reason": "error rate 2%"}}}      optional: one line, <=1024 bytes
//
// At most MaxControlEntries releases. paused and stopped hold a release
// back from every device; capped lowers its share to the cap at most
// (immediate releases included). A device takes the stricter of the
// signed schedule and the control (Control.Narrow): a cap above the
// schedule changes nothing, and no member can name a start, an offset or a
// share (RuleUnknownField). Snapshot lists the control role, so an older
// control document cannot be replayed over a newer one.
//
// A delta (a patch that is itself a signed TUF target):
//
//	{"kind": "delta",
//	 "format": "bsdiff40",               bsdiff40 or otaseal-zstd
//	 "from": {"path": "...", "length": N, "sha256": "64 lowercase hex digits"},
//	 "to":   {"path": "...", "length": N, "sha256": "64 lowercase hex digits"},
//	 "encryption": {...}}                optional: the patch is encrypted, below
//
// # Encryption
//
// An encrypted target's bytes are package encrypt's stream: TUF's length
// and hashes cover the ciphertext, so every TUF client still verifies the
// download and the targets role signs everything below (type Encryption):
//
//	"encryption": {
//	  "cipher": "aes-256-gcm",           or chacha20-poly1305: the chunks' AEAD
//	  "chunk_size": 65536,               plaintext bytes per chunk, 64..1048576
//	  "plaintext": {"length": N, "sha256": "64 lowercase hex digits"},
//	  "recipients": [                    firmware: 1..256; delta: absent
//	    {"keyid": "64 lowercase hex digits",
//	     "kem": "mlkem768-x25519",       or x25519
//	     "wrapped_key": "base64"}],      padded standard base64, 1168 or 80 bytes
//	  "envelopes": ["acme-gw-r2/2.4.1/keys/eu.json"]}   firmware, optional: 1..64 paths
//
// One hybrid recipient takes 1678 bytes of the entry, so at most 38 fit in
// MaxOtasealSize. Fleets that wrap per device put their recipients in key
// envelopes instead: plain TUF targets (no otaseal object, so every
// client fetches and hash-checks them as opaque files) named by
// "envelopes", whose content is a KeyEnvelope (ParseKeyEnvelope), at most
// MaxEnvelopeSize bytes:
//
//	{"otaseal_key_envelope": 1, "target": "acme-gw-r2/2.4.1/firmware.bin",
//	 "version": "2.4.1", "recipients": [...]}
//
// A firmware entry needs at least one recipient or envelope; an envelope
// names its release, and a device refuses one of another release.
//
// A release's content key is wrapped with HPKE for each recipient, bound
// to the target path and version; a delta is encrypted with the content
// key of its "to" release and lists no recipients. The ends of a delta,
// the image a device records and the delta base it looks up, are
// plaintexts (ImageOf). The target's length must equal the ciphertext
// length the plaintext length and chunk size give
// (Encryption.CiphertextLength); package verify refuses it otherwise. An
// unknown cipher or KEM is RuleUnknownAlgorithm, checked before anything
// else in its object, and any other fault of the member is
// RuleMalformedEncryption or one of the general rules, so a device too
// old for a new algorithm says so. A device built before encryption
// refuses the member as an unknown field, as it does a rollout.
//
// An object that breaks the schema is refused with a *FieldError naming the
// field, the rule and the offending value; it unwraps to ErrSchema, and its
// Rule tells the rules apart: an unknown kind (RuleUnknownKind), format
// (RuleUnknownFormat) or severity (RuleUnknownSeverity); a malformed
// version (RuleMalformedVersion); an empty (RuleNoHardwareIDs), blank
// (RuleEmptyHardwareID) or repeated (RuleDuplicateHardwareID) hardware ID;
// text that is empty, too long, not UTF-8 or holds control characters
// (RuleInvalidText); a negative (RuleNegativeNumber), fractional or
// non-canonical (RuleFractionalNumber) or too large (RuleNumberOverflow)
// number; a delta whose from and to are one image (RuleDeltaSameEnds); a
// missing (RuleMissingHash) or malformed (RuleMalformedHash) hash; a list
// over its limit (RuleTooManyItems); a rollout start that is not one
// spelled RFC 3339 UTC time (RuleMalformedTime), waves out of order
// (RuleWaveOrder), a share above FullShare (RuleShareOutOfRange), a
// schedule that never reaches every device (RuleLastWaveNotFull); a value
// of the wrong JSON type
// (RuleWrongJSONType); a missing (RuleMissingField), unknown
// (RuleUnknownField) or repeated (RuleDuplicateField) field. Three
// refusals are not schema errors: a custom object over MaxOtasealSize
// (ErrTooLarge), bytes that are not JSON (ErrMalformed), and a target
// without an otaseal object (ErrNoOtaseal), which is a plain TUF target.
//
// Unknown fields are refused rather than ignored because they are signed:
// a device that skips a constraint it cannot read would act on less than
// the publisher said. A later schema version will therefore use a new
// member name beside "otaseal", so that version-1 devices keep reading the
// members they understand. "rollout" and "withdrawn" are the exception:
// they are optional members of version 1, and a device built before they
// existed refuses a release that carries one. That refusal is the safe
// failure (such a device would otherwise ignore the schedule and install
// a withdrawn image), but it stops the device's updates from that role:
// publish schedules only once the fleet reads them.
//
// The security version only ever rises across the releases of a hardware
// ID; a device refuses an image below its committed floor (package
// rollback). A timestamp document may carry its signing time in the extra
// signed field SignedAtField, a lower bound on the time for devices without
// a real-time clock.
package manifest
