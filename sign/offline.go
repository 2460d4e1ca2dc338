package sign

import (
	"bytes"
	"fmt"
	"time"

	"github.com/otaseal/otaseal/manifest"
)

// Offline signing of targets roles through a Repository. When the targets
// key (or a delegated role's key) lives on an air-gapped machine or with
// several holders, the publisher:
//
//  1. stages changes (AddFirmware, ...) and calls ExportRole for each
//     changed offline role;
//  2. has the holders sign the exported bytes (SignDetached on their
//     machines, Merge back here, or any TUF tool);
//  3. calls ImportSigned with the signed document;
//  4. calls Publish with only the online keys.

func (r *Repository) markDirty(role string) {
	r.dirty[role] = true
	delete(r.staged, role)
	delete(r.presigned, role)
}

// ExportRole returns the next version of the changed targets role, as it
// will be published but unsigned, for an offline ceremony. Its expiry
// counts from the pinned staging clock (pinned now if it was not; see
// SaveStaged), so exporting again, here or after ResumeStaged elsewhere,
// gives the same bytes. A change to the role after the export discards
// the ceremony: signatures always cover exactly what gets published.
func (r *Repository) ExportRole(role string) ([]byte, error) {
	if !r.dirty[role] {
		return nil, fmt.Errorf("%w %q: no staged changes to sign", ErrUnknownRole, role)
	}
	md, err := r.nextTargets(role, r.pinClock())
	if err != nil {
		return nil, err
	}
	payload, err := Payload(md)
	if err != nil {
		return nil, err
	}
	r.staged[role] = payload
	delete(r.presigned, role)
	return md.ToBytes(true)
}

// nextTargets is the unsigned next version of a targets role.
func (r *Repository) nextTargets(role string, now time.Time) (*manifest.Metadata[manifest.Targets], error) {
	md, err := clone(r.targets[role])
	if err != nil {
		return nil, err
	}
	md.Signed.Version = r.published[role] + 1
	md.Signed.Expires = now.Add(orDefault(r.opts.TargetsExpiry, DefaultTargetsExpiry)).Truncate(time.Second)
	md.Signatures = []manifest.Signature{} // "signatures": [] even when unsigned
	return md, nil
}

// ImportSigned takes back the signed document of an exported role. It must
// be exactly the exported document (ErrDocumentMismatch otherwise: nobody
// can slip in a different target list between export and publish) and
// meet the role's threshold with keys the role allows; a bad signature is
// a *KeyError naming the key, too few a *manifest.ThresholdError.
func (r *Repository) ImportSigned(role string, doc []byte) error {
	staged, ok := r.staged[role]
	if !ok {
		return fmt.Errorf("%w: role %q was not exported, or changed since", ErrDocumentMismatch, role)
	}
	d, err := ParseDocument(doc)
	if err != nil {
		return err
	}
	md, ok := d.Targets()
	if !ok {
		return fmt.Errorf("%w: %s document for targets role %q", ErrMalformedDocument, d.Type, role)
	}
	if !bytes.Equal(d.payload, staged) {
		return fmt.Errorf("%w: role %q", ErrDocumentMismatch, role)
	}
	p, err := r.policy()
	if err != nil {
		return err
	}
	if _, err := p.Check(role, d.payload, md.Signatures); err != nil {
		return err
	}
	r.presigned[role] = md
	return nil
}
