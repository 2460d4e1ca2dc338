package sign

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/otaseal/otaseal/manifest"
)

func requireKeyError(t *testing.T, err error, want error, role, keyID string) {
	t.Helper()
	require.ErrorIs(t, err, want)
	var ke *KeyError
	require.True(t, errors.As(err, &ke), "want *KeyError, got %T: %v", err, err)
	assert.Equal(t, role, ke.Role)
	assert.Equal(t, keyID, ke.KeyID)
	assert.Contains(t, err.Error(), keyID[:16])
	assert.Contains(t, err.Error(), role)
}

func TestSignRoleRefusesOtherRolesKeys(t *testing.T) {
	ctx := context.Background()
	root := testRoot(t)
	p, err := PolicyFromRoot(&root.Signed)
	require.NoError(t, err)
	ts := testSigner(t, "ed25519-5") // the timestamp key
	stranger := testSigner(t, "ed25519-9")

	tests := []struct {
		name   string
		role   string
		signer *Signer
		want   error
	}{
		{"timestamp key on targets", manifest.RoleTargets, ts, ErrWrongRole},
		{"timestamp key on root", manifest.RoleRoot, ts, ErrWrongRole},
		{"unknown key on targets", manifest.RoleTargets, stranger, ErrUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			md := metadata.Targets(testEpoch)
			_, err := SignRole(ctx, p, tt.role, md, []*Signer{tt.signer})
			requireKeyError(t, err, tt.want, tt.role, tt.signer.KeyID())
			assert.Empty(t, md.Signatures, "nothing is signed when one signer is refused")
		})
	}
	_, err = SignRole(ctx, p, "no-such-role", metadata.Targets(testEpoch), []*Signer{ts})
	assert.ErrorIs(t, err, ErrUnknownRole)
}

func TestCheckThreshold(t *testing.T) {
	ctx := context.Background()
	root := testRoot(t)
	p, err := PolicyFromRoot(&root.Signed)
	require.NoError(t, err)

	// One of the 2-of-3 root keys: signed but below threshold.
	rep, err := SignRole(ctx, p, manifest.RoleRoot, root, signersOf(t, "ed25519-1"))
	require.NoError(t, err)
	assert.False(t, rep.Met)
	payload, err := Payload(root)
	require.NoError(t, err)
	_, err = p.Check(manifest.RoleRoot, payload, root.Signatures)
	var te *manifest.ThresholdError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, manifest.RoleRoot, te.Role)
	assert.Equal(t, 2, te.Threshold)
	assert.Equal(t, []string{testSigner(t, "ed25519-1").KeyID()}, te.SignedBy)
	assert.Len(t, te.Missing, 2)

	// Signing again with the same key does not count twice.
	rep, err = SignRole(ctx, p, manifest.RoleRoot, root, signersOf(t, "ed25519-1"))
	require.NoError(t, err)
	assert.False(t, rep.Met)
	assert.Len(t, root.Signatures, 1)

	// A second distinct key meets it, and go-tuf agrees.
	rep, err = SignRole(ctx, p, manifest.RoleRoot, root, signersOf(t, "ed25519-2"))
	require.NoError(t, err)
	assert.True(t, rep.Met)
	require.NoError(t, root.VerifyDelegate(manifest.RoleRoot, root))

	// A duplicated signature entry is refused by name, not counted.
	dup := append(root.Signatures[:len(root.Signatures):len(root.Signatures)], root.Signatures[0])
	_, err = p.Check(manifest.RoleRoot, payload, dup)
	requireKeyError(t, err, ErrDuplicateSignature, manifest.RoleRoot, root.Signatures[0].KeyID)
}

func TestPolicyRejectsBadRoles(t *testing.T) {
	k := keysOf(t, "ed25519-1")
	good := RoleKeys{Threshold: 1, Keys: k}
	tests := []struct {
		name  string
		roles map[string]RoleKeys
	}{
		{"zero threshold", map[string]RoleKeys{"root": {Threshold: 0, Keys: k}, "targets": good, "snapshot": good, "timestamp": good}},
		{"threshold above keys", map[string]RoleKeys{"root": {Threshold: 2, Keys: k}, "targets": good, "snapshot": good, "timestamp": good}},
		{"missing role", map[string]RoleKeys{"root": good, "targets": good, "snapshot": good}},
		{"extra role", map[string]RoleKeys{"root": good, "targets": good, "snapshot": good, "timestamp": good, "mirror": good}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewRoot(RootSpec{Roles: tt.roles}, testEpoch)
			assert.ErrorIs(t, err, ErrBadPolicy)
		})
	}

	// A root that files one key under another key's id.
	root := testRoot(t)
	a, b := testSigner(t, "ed25519-1").KeyID(), testSigner(t, "ed25519-2").KeyID()
	root.Signed.Keys[a] = root.Signed.Keys[b]
	_, err := PolicyFromRoot(&root.Signed)
	assert.ErrorIs(t, err, ErrBadPolicy)
}

func TestCeremonyMerge(t *testing.T) {
	ctx := context.Background()
	root := testRoot(t)
	p, err := PolicyFromRoot(&root.Signed)
	require.NoError(t, err)
	doc, err := root.ToBytes(true)
	require.NoError(t, err)

	// Two holders sign on their own machines; the files travel as bytes.
	detached := func(name string) *DetachedSignature {
		ds, err := SignDetached(ctx, doc, manifest.RoleRoot, testSigner(t, name))
		require.NoError(t, err)
		b, err := ds.Marshal()
		require.NoError(t, err)
		back, err := ParseDetachedSignature(b)
		require.NoError(t, err)
		return back
	}
	d1, d2 := detached("ed25519-1"), detached("ed25519-3")

	partial, rep, err := Merge(p, manifest.RoleRoot, doc, []*DetachedSignature{d1})
	require.NoError(t, err)
	assert.False(t, rep.Met)
	assert.Equal(t, []string{d1.KeyID}, rep.SignedBy)

	full, rep, err := Merge(p, manifest.RoleRoot, partial, []*DetachedSignature{d2})
	require.NoError(t, err)
	assert.True(t, rep.Met)
	assert.ElementsMatch(t, []string{d1.KeyID, d2.KeyID}, rep.SignedBy)
	signed, err := (&manifest.Metadata[manifest.Root]{}).FromBytes(full)
	require.NoError(t, err)
	require.NoError(t, signed.VerifyDelegate(manifest.RoleRoot, signed))

	tampered := *d2
	raw, _ := hex.DecodeString(tampered.Sig)
	raw[len(raw)-1] ^= 0x01
	tampered.Sig = hex.EncodeToString(raw)

	wrongRole, err := SignDetached(ctx, mustBytes(t, metadata.Targets(testEpoch)), manifest.RoleTargets, testSigner(t, "p256"))
	require.NoError(t, err)

	otherDoc := testRoot(t)
	otherDoc.Signed.Expires = otherDoc.Signed.Expires.Add(time.Hour)
	mismatch, err := SignDetached(ctx, mustBytes(t, otherDoc), manifest.RoleRoot, testSigner(t, "ed25519-2"))
	require.NoError(t, err)

	stranger, err := SignDetached(ctx, doc, manifest.RoleRoot, testSigner(t, "ed25519-9"))
	require.NoError(t, err)
	tsKey, err := SignDetached(ctx, doc, manifest.RoleRoot, testSigner(t, "ed25519-5"))
	require.NoError(t, err)

	tests := []struct {
		name  string
		doc   []byte
		sig   *DetachedSignature
		want  error
		keyID string
	}{
		{"tampered", doc, &tampered, ErrBadSignature, d2.KeyID},
		{"duplicate", partial, d1, ErrDuplicateSignature, d1.KeyID},
		{"unknown key", doc, stranger, ErrUnknownKey, stranger.KeyID},
		{"other role's key", doc, tsKey, ErrWrongRole, tsKey.KeyID},
		{"signature for another role", doc, wrongRole, ErrWrongRole, wrongRole.KeyID},
		{"signature for another document", doc, mismatch, ErrDocumentMismatch, mismatch.KeyID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := Merge(p, manifest.RoleRoot, tt.doc, []*DetachedSignature{tt.sig})
			requireKeyError(t, err, tt.want, manifest.RoleRoot, tt.keyID)
			assert.Nil(t, out)
		})
	}
}

func mustBytes[T metadata.Roles](t *testing.T, md *manifest.Metadata[T]) []byte {
	t.Helper()
	b, err := md.ToBytes(true)
	require.NoError(t, err)
	return b
}

func TestRootRotationAndRevocation(t *testing.T) {
	ctx := context.Background()
	prev := testRoot(t)
	pp, err := PolicyFromRoot(&prev.Signed)
	require.NoError(t, err)
	_, err = SignRole(ctx, pp, manifest.RoleRoot, prev, signersOf(t, "ed25519-1", "ed25519-2"))
	require.NoError(t, err)

	// ed25519-1 (root) and the timestamp key ed25519-5 are compromised:
	// replace them with ed25519-6 and ed25519-7.
	spec := SpecOf(&prev.Signed)
	rootKeys := spec.Roles[manifest.RoleRoot].Without(testSigner(t, "ed25519-1").KeyID())
	rootKeys.Keys = append(rootKeys.Keys, testSigner(t, "ed25519-6").Key())
	spec.Roles[manifest.RoleRoot] = rootKeys
	spec.Roles[manifest.RoleTimestamp] = RoleKeys{Threshold: 1, Keys: keysOf(t, "ed25519-7")}
	next, err := NextRoot(prev, spec, testEpoch.Add(365*24*time.Hour))
	require.NoError(t, err)
	assert.Equal(t, int64(2), next.Signed.Version)

	rp, err := RotationPolicy(&prev.Signed, &next.Signed)
	require.NoError(t, err)

	// Only new keys: the old threshold is not met.
	rep, err := SignRole(ctx, rp, manifest.RoleRoot, next, signersOf(t, "ed25519-6", "ed25519-2"))
	require.NoError(t, err)
	assert.False(t, rep.Met)
	_, err = VerifyRootRotation(prev, next)
	var te *manifest.ThresholdError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, "root (previous)", te.Role)

	// The old key ed25519-1 may still sign the rotation (it is how the old
	// threshold is met) and then both thresholds are.
	rep, err = SignRole(ctx, rp, manifest.RoleRoot, next, signersOf(t, "ed25519-1"))
	require.NoError(t, err)
	assert.True(t, rep.Met)
	require.NotNil(t, rep.Previous)
	assert.True(t, rep.Previous.Met)
	_, err = VerifyRootRotation(prev, next)
	require.NoError(t, err)

	// After the rotation, the rotated-out timestamp key is refused by name.
	after, err := PolicyFromRoot(&next.Signed)
	require.NoError(t, err)
	after.NoteRevoked(&prev.Signed)
	_, err = SignRole(ctx, after, manifest.RoleTimestamp, metadata.Timestamp(testEpoch), signersOf(t, "ed25519-5"))
	requireKeyError(t, err, ErrRevokedKey, manifest.RoleTimestamp, testSigner(t, "ed25519-5").KeyID())
	_, err = SignRole(ctx, after, manifest.RoleRoot, next, signersOf(t, "ed25519-1"))
	requireKeyError(t, err, ErrRevokedKey, manifest.RoleRoot, testSigner(t, "ed25519-1").KeyID())

	// A version gap is not a rotation.
	next.Signed.Version = 3
	_, err = VerifyRootRotation(prev, next)
	assert.ErrorIs(t, err, ErrRootRotation)
}

func FuzzParseDetachedSignature(f *testing.F) {
	ctx := context.Background()
	root := testRoot(f)
	doc := mustBytesTB(f, root)
	ds, err := SignDetached(ctx, doc, manifest.RoleRoot, testSigner(f, "ed25519-1"))
	require.NoError(f, err)
	b, err := ds.Marshal()
	require.NoError(f, err)
	f.Add(b)
	f.Add([]byte(`{"format":"otaseal-detached-signature-v1"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseDetachedSignature(data)
		if err != nil {
			return
		}
		// Round trip: what parses re-encodes to something that parses the same.
		again, err := d.Marshal()
		require.NoError(t, err)
		d2, err := ParseDetachedSignature(again)
		require.NoError(t, err)
		require.Equal(t, d, d2)
	})
}

func FuzzParseDocument(f *testing.F) {
	// Small seeds: the fuzzer's minimizer stalls on multi-kilobyte inputs,
	// and small documents reach the same parser paths.
	f.Add([]byte(`{"signed":{"_type":"targets","spec_version":"1.0.31","version":1,"expires":"2030-01-01T00:00:00Z","targets":{"a":{"length":1,"hashes":{"sha256":"00"}}}},"signatures":[{"keyid":"ab","sig":"cd"}]}`))
	f.Add([]byte(`{"signed":{"_type":"root","spec_version":"1.0.31","version":1,"expires":"2030-01-01T00:00:00Z","consistent_snapshot":true,"keys":{},"roles":{}},"signatures":[]}`))
	f.Add([]byte(`{"signed":{"_type":"snapshot","spec_version":"1.0.31","version":2,"expires":"2030-01-01T00:00:00Z","meta":{"targets.json":{"version":1}}},"signatures":[]}`))
	f.Add([]byte(`{"signed":{"_type":"timestamp","spec_version":"1.0.31","version":3,"expires":"2030-01-01T00:00:00Z","meta":{"snapshot.json":{"version":2}},"otaseal_signed_at":"2026-11-26T12:00:00Z"},"signatures":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseDocument(data)
		if err != nil {
			return
		}
		b, err := d.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		d2, err := ParseDocument(b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(d.Payload(), d2.Payload()) {
			t.Fatalf("payload changed in a round trip")
		}
	})
}

func mustBytesTB[T metadata.Roles](t testing.TB, md *manifest.Metadata[T]) []byte {
	t.Helper()
	b, err := md.ToBytes(true)
	require.NoError(t, err)
	return b
}

func TestNewRootDefaultsToConsistentSnapshots(t *testing.T) {
	spec := SpecOf(&testRoot(t).Signed)
	spec.AllowInPlaceMetadata = false
	root, err := NewRoot(spec, testEpoch)
	require.NoError(t, err)
	assert.True(t, root.Signed.ConsistentSnapshot)
	spec.AllowInPlaceMetadata = true
	root, err = NewRoot(spec, testEpoch)
	require.NoError(t, err)
	assert.False(t, root.Signed.ConsistentSnapshot)
	assert.True(t, SpecOf(&root.Signed).AllowInPlaceMetadata)
}
