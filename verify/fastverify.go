package verify

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/otaseal/otaseal/manifest"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"
)

// Targets documents are verified here rather than by go-tuf's
// trustedmetadata, because a fleet's catalogue lists tens of thousands of
// images: go-tuf re-encodes the whole document through generic maps once
// per key (seconds and about a gigabyte of garbage for 100,000 targets),
// where manifest.ParseTargetsUnverified decodes it once and computes the
// signed bytes once. The rules are go-tuf's, kept exactly (the
// differential test and FuzzVerifyTargetsDifferential hold them to it):
// the same documents are accepted and refused.

// verifyTargets parses data as role's targets document and checks its
// signatures against the threshold that delegator (a root or targets
// document) sets for role, as go-tuf's FromBytes and VerifyDelegate do.
// The result may share memory with data.
func verifyTargets(delegator any, role string, data []byte, lim manifest.Limits) (*metadata.Metadata[metadata.TargetsType], error) {
	p, err := manifest.ParseTargetsUnverified(role, data, lim)
	if err != nil {
		return nil, err
	}
	if err := verifySigned(delegator, role, p.Metadata.Signatures, p.Canonical); err != nil {
		return nil, err
	}
	return p.Metadata, nil
}

// verifyParsed is verifyTargets for a parsed document.
func verifyParsed(delegator any, role string, p *manifest.ParsedTargets) error {
	return verifySigned(delegator, role, p.Metadata.Signatures, p.Canonical)
}

// delegatedKeys returns the keys, keyids and threshold delegator gives
// role, with go-tuf's refusals: no delegation, no keyids, threshold below 1.
// Like go-tuf, a succinct delegation applies its keys to any role name;
// callers only ask for names its bins produce.
func delegatedKeys(delegator any, role string) (map[string]*metadata.Key, []string, int, error) {
	var keys map[string]*metadata.Key
	var ids []string
	var threshold int
	switch d := delegator.(type) {
	case *metadata.Metadata[metadata.RootType]:
		r, ok := d.Signed.Roles[role]
		if !ok || r == nil {
			return nil, nil, 0, fmt.Errorf("%w: no delegation found for %s", manifest.ErrMalformed, role)
		}
		keys, ids, threshold = d.Signed.Keys, r.KeyIDs, r.Threshold
	case *metadata.Metadata[metadata.TargetsType]:
		dl := d.Signed.Delegations
		if dl == nil {
			return nil, nil, 0, fmt.Errorf("%w: no delegations found", manifest.ErrMalformed)
		}
		keys = dl.Keys
		switch {
		case dl.Roles != nil:
			found := false
			for _, r := range dl.Roles {
				if r.Name == role {
					ids, threshold, found = r.KeyIDs, r.Threshold, true
					break
				}
			}
			if !found {
				return nil, nil, 0, fmt.Errorf("%w: no delegation found for %s", manifest.ErrMalformed, role)
			}
		case dl.SuccinctRoles != nil:
			ids, threshold = dl.SuccinctRoles.KeyIDs, dl.SuccinctRoles.Threshold
		}
	default:
		return nil, nil, 0, fmt.Errorf("%w: delegator is %T, not root or targets metadata", manifest.ErrMalformed, delegator)
	}
	if len(ids) == 0 {
		return nil, nil, 0, fmt.Errorf("%w: no delegation found for %s", manifest.ErrMalformed, role)
	}
	if threshold < 1 {
		return nil, nil, 0, fmt.Errorf("%w: insufficient threshold (%d) configured for %s", manifest.ErrMalformed, threshold, role)
	}
	return keys, ids, threshold, nil
}

// verifySigned checks sigs over the canonical signed bytes against role's
// keys in delegator. Keys count once per distinct public key (go-tuf
// fingerprints the PKIX form), so one key listed under two keyids cannot
// meet a threshold of two. A key that is missing or unusable refuses the
// document, as in go-tuf; a signature that does not verify only fails to
// count. Too few signatures give a *manifest.ThresholdError naming who signed.
func verifySigned(delegator any, role string, sigs []metadata.Signature, canonical []byte) error {
	keys, ids, threshold, err := delegatedKeys(delegator, role)
	if err != nil {
		return err
	}
	signing := map[[sha256.Size]byte]bool{}
	e := &manifest.ThresholdError{Role: role, Threshold: threshold}
	for _, id := range ids {
		key, ok := keys[id]
		if !ok {
			return fmt.Errorf("%w: key with ID %s not found in %s keyids", manifest.ErrMalformed, id, role)
		}
		if key == nil {
			// go-tuf v2.4.2 crashes on it; the shape checks refuse it
			// in the delegator already.
			return fmt.Errorf("%w: key with ID %s is null", manifest.ErrMalformed, id)
		}
		ok, fingerprint, err := verifyOne(key, sigFor(sigs, id), canonical)
		if err != nil {
			return fmt.Errorf("%w: key %s of %s: %v", manifest.ErrMalformed, id, role, err)
		}
		// Evidence lists a key under a second keyid as not counted, so
		// that len(SignedBy) is what was held against the threshold.
		if ok && !signing[fingerprint] {
			signing[fingerprint] = true
			e.SignedBy = append(e.SignedBy, id)
		} else {
			e.Missing = append(e.Missing, id)
		}
	}
	if len(signing) < threshold {
		return e
	}
	return nil
}

// sigFor returns the signature by keyid id, the last one as in go-tuf.
func sigFor(sigs []metadata.Signature, id string) []byte {
	var sig []byte
	for _, s := range sigs {
		if s.KeyID == id {
			sig = s.Signature
		}
	}
	return sig
}

// verifyOne checks one signature as go-tuf's VerifyDelegate does for one
// key, but hands ed25519 the message itself: sigstore's verifier would
// copy the whole document first.
func verifyOne(key *metadata.Key, sig, msg []byte) (bool, [sha256.Size]byte, error) {
	var fp [sha256.Size]byte
	pub, err := key.ToPublicKey()
	if err != nil {
		return false, fp, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return false, fp, err
	}
	fp = sha256.Sum256(der)
	if key.Type == metadata.KeyTypeEd25519 {
		edPub, ok := pub.(ed25519.PublicKey)
		if !ok || len(edPub) != ed25519.PublicKeySize {
			return false, fp, errors.New("invalid size for ED25519 key")
		}
		return ed25519.Verify(edPub, msg, sig), fp, nil
	}
	hash := crypto.SHA256
	if key.Scheme == metadata.KeySchemeECDSA_SHA2_P384 {
		hash = crypto.SHA384
	}
	var v signature.Verifier
	if key.Type == metadata.KeyTypeRSASSA_PSS_SHA256 {
		rsaPub, ok := pub.(*rsa.PublicKey)
		if !ok {
			return false, fp, errors.New("failed to convert public key to RSA PSS key")
		}
		v, err = signature.LoadRSAPSSVerifier(rsaPub, hash, &rsa.PSSOptions{Hash: crypto.SHA256})
	} else {
		v, err = signature.LoadVerifier(pub, hash)
	}
	if err != nil {
		return false, fp, err
	}
	return v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(msg)) == nil, fp, nil
}

// acceptTargets does what trustedmetadata's UpdateDelegatedTargets does,
// in its order, with the one-pass verification: the final snapshot must be
// fresh and the one the timestamp names; the document must match the
// snapshot's length and hashes, be of type targets, be signed by
// delegator's threshold for role, have the snapshot's version and not be
// expired. It then becomes tm.Targets[role]; the result keeps the
// canonical bytes that were verified.
func acceptTargets(tm *trustedmetadata.TrustedMetadata, role, delegator string, data []byte, lim manifest.Limits) (*manifest.ParsedTargets, error) {
	if tm.Snapshot == nil || tm.Timestamp == nil {
		return nil, fmt.Errorf("%w: cannot load targets before snapshot", ErrNotRefreshed)
	}
	if tm.Snapshot.Signed.IsExpired(tm.RefTime) {
		return nil, fmt.Errorf("%w: snapshot.json is expired", manifest.ErrExpired)
	}
	if want := tm.Timestamp.Signed.Meta["snapshot.json"]; want == nil || tm.Snapshot.Signed.Version != want.Version {
		return nil, fmt.Errorf("%w: snapshot is not the version the timestamp names", manifest.ErrMetadataVersionLower)
	}
	var parent any
	if delegator == manifest.RoleRoot {
		if tm.Root != nil {
			parent = tm.Root
		}
	} else if p, ok := tm.Targets[delegator]; ok && p != nil {
		parent = p
	}
	if parent == nil {
		return nil, fmt.Errorf("%w: cannot load targets before delegator %s", ErrNotRefreshed, delegator)
	}
	meta := tm.Snapshot.Signed.Meta[role+".json"]
	if meta == nil {
		return nil, fmt.Errorf("%w: snapshot does not contain information for %s", manifest.ErrRepository, role)
	}
	if err := meta.VerifyLengthHashes(data); err != nil {
		return nil, manifest.TranslateError(err)
	}
	p, err := manifest.ParseTargetsUnverified(role, data, lim)
	if err != nil {
		return nil, err
	}
	if err := verifyParsed(parent, role, p); err != nil {
		return nil, err
	}
	md := p.Metadata
	if md.Signed.Type != metadata.TARGETS {
		return nil, fmt.Errorf("%w: expected %s, got %s", manifest.ErrRepository, metadata.TARGETS, md.Signed.Type)
	}
	if md.Signed.Version != meta.Version {
		return nil, fmt.Errorf("%w: expected %s version %d, got %d", manifest.ErrMetadataVersionLower, role, meta.Version, md.Signed.Version)
	}
	if md.Signed.IsExpired(tm.RefTime) {
		return nil, fmt.Errorf("%w: new %s expired %s", manifest.ErrExpired, role, md.Signed.Expires.Format(time.RFC3339))
	}
	tm.Targets[role] = md
	return p, nil
}
