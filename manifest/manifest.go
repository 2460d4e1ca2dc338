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
//	 "notes": "fixes remote unlock"}     optional: text, <=4096 bytes
//
// A delta (a patch that is itself a signed TUF target):
//
//	{"kind": "delta",
//	 "format": "bsdiff40",               bsdiff40 or otaseal-zstd
//	 "from": {"path": "...", "length": N, "sha256": "64 lowercase hex digits"},
//	 "to":   {"path": "...", "length": N, "sha256": "64 lowercase hex digits"}}
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
// over its limit (RuleTooManyItems); a value of the wrong JSON type
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
// members they understand.
//
// The security version only ever rises across the releases of a hardware
// ID; a device refuses an image below its committed floor (package
// rollback). A timestamp document may carry its signing time in the extra
// signed field SignedAtField, a lower bound on the time for devices without
// a real-time clock.
package manifest
