package manifest

import (
	"errors"
	"fmt"

	"github.com/otaseal/otaseal/internal/tufjson"
)

// ParsedTargets is a targets document decoded by ParseTargetsUnverified,
// with the canonical form of its signed part.
type ParsedTargets struct {
	// Metadata is the document in go-tuf's types. It may share memory with
	// the bytes it was parsed from; they must not change afterwards.
	Metadata *Metadata[Targets]
	// Canonical is the canonical JSON of the signed part as go-tuf computes
	// it (cjson.EncodeCanonical of the decoded value): the bytes that the
	// signatures sign. It is often a slice of the parsed bytes themselves.
	Canonical []byte
}

// ParseTargetsUnverified parses a targets or delegated targets document
// like ParseUnverified[Targets] (same size limit, same shape checks, same
// documents refused) in one pass, and computes the canonical bytes its
// signatures are checked over. See ParsedTargets for memory sharing.
//
// It is stricter than go-tuf in one documented case: an envelope whose
// last "signed" member is not the last member whose name matches "signed"
// case-insensitively (go-tuf then checks the type of one and uses the
// other) is refused as ErrMalformed.
func ParseTargetsUnverified(role string, data []byte, lim Limits) (*ParsedTargets, error) {
	wrap := func(err error) error { return &MetadataError{Role: clip(role), Err: err} }
	if max := lim.For(role); int64(len(data)) > max {
		return nil, wrap(fmt.Errorf("%w: %d bytes (limit %d)", ErrTooLarge, len(data), max))
	}
	doc, err := tufjson.DecodeTargets(data)
	if err != nil {
		return nil, wrap(fromCodec(err))
	}
	if err := checkShape(&doc.Metadata.Signed); err != nil {
		return nil, wrap(err)
	}
	canon, err := doc.Canonical()
	if err != nil {
		return nil, wrap(fmt.Errorf("%w: %w", ErrMalformed, err))
	}
	return &ParsedTargets{Metadata: doc.Metadata, Canonical: canon}, nil
}

// fromCodec gives an error of the JSON codec this package's sentinel.
func fromCodec(err error) error {
	switch {
	case errors.Is(err, tufjson.ErrWrongType):
		return fmt.Errorf("%w: expected metadata type %s", ErrWrongType, RoleTargets)
	case errors.Is(err, tufjson.ErrEmptyHashes):
		return ErrEmptyHashes
	}
	return fmt.Errorf("%w: %w", ErrMalformed, err)
}
