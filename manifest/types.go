package manifest

import "github.com/theupdateframework/go-tuf/v2/metadata"

// The TUF document types are go-tuf's, re-exported as aliases rather than
// wrapped. An alias is the same type, so a document parsed here goes straight
// into go-tuf's trustedmetadata and updater and into sigstore-based signing
// without a copy or conversion, and any TUF tooling built on go-tuf reads
// otaseal's values as its own. What go-tuf lacks (strict size and shape
// checks, the firmware schema, errors to branch on) is added by this
// package's functions around the types, not by a parallel model.
type (
	// Metadata is a signed TUF document of role type T.
	Metadata[T metadata.Roles] = metadata.Metadata[T]

	Root      = metadata.RootType      // signed part of root.json
	Timestamp = metadata.TimestampType // signed part of timestamp.json
	Snapshot  = metadata.SnapshotType  // signed part of snapshot.json
	Targets   = metadata.TargetsType   // signed part of targets.json and delegated roles

	TargetFile    = metadata.TargetFiles // one entry of Targets.Targets
	MetaFile      = metadata.MetaFiles   // one entry of Timestamp.Meta or Snapshot.Meta
	Key           = metadata.Key
	Role          = metadata.Role
	Signature     = metadata.Signature
	Hashes        = metadata.Hashes
	HexBytes      = metadata.HexBytes
	Delegations   = metadata.Delegations
	DelegatedRole = metadata.DelegatedRole
	SuccinctRoles = metadata.SuccinctRoles
)

// Top-level role names.
const (
	RoleRoot      = metadata.ROOT
	RoleTimestamp = metadata.TIMESTAMP
	RoleSnapshot  = metadata.SNAPSHOT
	RoleTargets   = metadata.TARGETS
)
