package sign

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/otaseal/otaseal/manifest"
)

// MaxDocumentSize bounds a metadata document handed to ParseDocument or
// Merge (32 MiB: a targets role with 100k entries fits).
const MaxDocumentSize = 32 << 20

// Payload returns the bytes a signature on md covers: the canonical JSON of
// its signed part, exactly as TUF clients recompute it.
func Payload[T metadata.Roles](md *manifest.Metadata[T]) ([]byte, error) {
	b, err := cjson.EncodeCanonical(md.Signed)
	if err != nil {
		return nil, fmt.Errorf("%w: canonical JSON: %v", ErrMalformedDocument, err)
	}
	return b, nil
}

// SignRole signs md as role with each signer and returns who has signed
// it so far. Before anything is signed, every signer must be allowed for
// the role by p: a key of another role is a *KeyError and md is unchanged.
// A signer's earlier signature on md is replaced, never duplicated.
// Falling short of the threshold is not an error here (an offline
// ceremony collects signatures one holder at a time): read Report.Met, and
// note that publishing checks the threshold again.
func SignRole[T metadata.Roles](ctx context.Context, p *Policy, role string, md *manifest.Metadata[T], signers []*Signer) (Report, error) {
	for _, s := range signers {
		if err := p.Authorize(role, s.KeyID()); err != nil {
			return Report{}, err
		}
	}
	payload, err := Payload(md)
	if err != nil {
		return Report{}, err
	}
	sigs := make([]manifest.Signature, 0, len(signers))
	for _, s := range signers {
		sig, err := s.SignPayload(ctx, payload)
		if err != nil {
			return Report{}, err
		}
		sigs = append(sigs, sig)
	}
	for _, sig := range sigs {
		md.Signatures = replaceSignature(md.Signatures, sig)
	}
	rep, err := p.Check(role, payload, md.Signatures)
	if err != nil {
		if _, below := err.(*manifest.ThresholdError); below {
			return rep, nil
		}
		return rep, err
	}
	return rep, nil
}

func replaceSignature(sigs []manifest.Signature, sig manifest.Signature) []manifest.Signature {
	out := sigs[:0:0]
	for _, s := range sigs {
		if s.KeyID != sig.KeyID {
			out = append(out, s)
		}
	}
	return append(out, sig)
}

// Document is a TUF metadata document of any role type, as exchanged in an
// offline signing ceremony. Parsing it checks shape only: nothing in it is
// trusted until a Policy has checked its signatures.
type Document struct {
	Type    string // "root", "targets", "snapshot" or "timestamp"
	Version int64
	payload []byte
	md      any // *manifest.Metadata[T] of the matching T
}

// ParseDocument parses a metadata document of at most MaxDocumentSize bytes.
// Errors wrap ErrMalformedDocument (or ErrTooLarge); it never panics.
func ParseDocument(data []byte) (*Document, error) {
	if len(data) > MaxDocumentSize {
		return nil, fmt.Errorf("%w: document of %d bytes (limit %d)", ErrTooLarge, len(data), MaxDocumentSize)
	}
	var head struct {
		Signed struct {
			Type string `json:"_type"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedDocument, err)
	}
	d := &Document{Type: head.Signed.Type}
	var err error
	switch d.Type {
	case manifest.RoleRoot:
		err = parseAs[manifest.Root](d, data)
	case manifest.RoleTargets:
		err = parseTargets(d, data)
	case manifest.RoleSnapshot:
		err = parseAs[manifest.Snapshot](d, data)
	case manifest.RoleTimestamp:
		err = parseAs[manifest.Timestamp](d, data)
	default:
		return nil, fmt.Errorf("%w: unknown _type %q", ErrMalformedDocument, clipText(d.Type))
	}
	if err != nil {
		return nil, err
	}
	return d, nil
}

func parseAs[T metadata.Roles](d *Document, data []byte) (err error) {
	// go-tuf's decoders are not written for hostile input; a panic in one
	// must surface as a malformed document, not a crashed release tool.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrMalformedDocument, r)
		}
	}()
	md, err := manifest.ParseUnverified[T](d.Type, data, documentLimits)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformedDocument, err)
	}
	payload, err := Payload(md)
	if err != nil {
		return err
	}
	d.md, d.payload, d.Version = md, payload, versionOf(md)
	return nil
}

// parseTargets reads a targets document with the one-pass decoder, the one
// every targets document in production goes through; the canonical bytes it
// computes are the payload signatures cover. It works on a copy, since the
// decoded document shares memory with its input.
func parseTargets(d *Document, data []byte) error {
	p, err := manifest.ParseTargetsUnverified(d.Type, bytes.Clone(data), documentLimits)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformedDocument, err)
	}
	d.md, d.payload, d.Version = p.Metadata, p.Canonical, p.Metadata.Signed.Version
	return nil
}

// documentLimits lets every role's document be as large as MaxDocumentSize:
// a ceremony handles what the publisher wrote, not what a device fetches.
var documentLimits = manifest.Limits{Root: MaxDocumentSize, Timestamp: MaxDocumentSize, Snapshot: MaxDocumentSize, Targets: MaxDocumentSize}

func versionOf(md any) int64 {
	switch m := md.(type) {
	case *manifest.Metadata[manifest.Root]:
		return m.Signed.Version
	case *manifest.Metadata[manifest.Targets]:
		return m.Signed.Version
	case *manifest.Metadata[manifest.Snapshot]:
		return m.Signed.Version
	case *manifest.Metadata[manifest.Timestamp]:
		return m.Signed.Version
	}
	return 0
}

// Payload returns the canonical bytes that signatures on d cover.
func (d *Document) Payload() []byte { return append([]byte(nil), d.payload...) }

// Signatures returns the signatures d carries (unverified).
func (d *Document) Signatures() []manifest.Signature {
	return append([]manifest.Signature(nil), *d.sigs()...)
}

func (d *Document) sigs() *[]manifest.Signature {
	switch m := d.md.(type) {
	case *manifest.Metadata[manifest.Root]:
		return &m.Signatures
	case *manifest.Metadata[manifest.Targets]:
		return &m.Signatures
	case *manifest.Metadata[manifest.Snapshot]:
		return &m.Signatures
	case *manifest.Metadata[manifest.Timestamp]:
		return &m.Signatures
	}
	panic("sign: Document without metadata") // only ParseDocument makes one
}

// Bytes returns the document as JSON, with its signatures.
func (d *Document) Bytes() ([]byte, error) {
	var (
		b   []byte
		err error
	)
	switch m := d.md.(type) {
	case *manifest.Metadata[manifest.Root]:
		b, err = m.ToBytes(true)
	case *manifest.Metadata[manifest.Targets]:
		b, err = m.ToBytes(true)
	case *manifest.Metadata[manifest.Snapshot]:
		b, err = m.ToBytes(true)
	case *manifest.Metadata[manifest.Timestamp]:
		b, err = m.ToBytes(true)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedDocument, err)
	}
	return b, nil
}

// Root returns the document as root metadata, or false for another type.
func (d *Document) Root() (*manifest.Metadata[manifest.Root], bool) {
	m, ok := d.md.(*manifest.Metadata[manifest.Root])
	return m, ok
}

// Targets returns the document as targets metadata, or false.
func (d *Document) Targets() (*manifest.Metadata[manifest.Targets], bool) {
	m, ok := d.md.(*manifest.Metadata[manifest.Targets])
	return m, ok
}

func clipText(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

func clone[T metadata.Roles](md *manifest.Metadata[T]) (*manifest.Metadata[T], error) {
	b, err := md.ToBytes(false)
	if err != nil {
		return nil, err
	}
	return (&manifest.Metadata[T]{}).FromBytes(b)
}
