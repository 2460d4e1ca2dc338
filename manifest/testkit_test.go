package manifest

import (
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/stretchr/testify/require"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"
)

// testRepo is a complete, validly signed TUF repository in memory with one
// key per role and otaseal firmware and delta targets.
type testRepo struct {
	now                                     time.Time
	signers                                 map[string]signature.Signer
	root                                    *Metadata[Root]
	targets                                 *Metadata[Targets]
	snapshot                                *Metadata[Snapshot]
	timestamp                               *Metadata[Timestamp]
	rootJSON, targetsJSON, snapJSON, tsJSON []byte
}

// testKey derives a fixed ed25519 key from a name, so vectors are stable.
func testKey(t testing.TB, name string) (signature.Signer, *Key) {
	seed := sha256.Sum256([]byte("otaseal manifest test key " + name))
	priv := ed25519.NewKeyFromSeed(seed[:])
	s, err := signature.LoadSigner(priv, crypto.Hash(0))
	require.NoError(t, err)
	k, err := metadata.KeyFromPublicKey(priv.Public())
	require.NoError(t, err)
	return s, k
}

func newTestRepo(t testing.TB) *testRepo {
	t.Helper()
	r := &testRepo{now: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC), signers: map[string]signature.Signer{}}
	r.root = metadata.Root(r.now.AddDate(1, 0, 0))
	for _, role := range []string{RoleRoot, RoleTimestamp, RoleSnapshot, RoleTargets} {
		s, k := testKey(t, role)
		r.signers[role] = s
		require.NoError(t, r.root.Signed.AddKey(k, role))
	}
	r.targets = metadata.Targets(r.now.AddDate(0, 3, 0))
	addTarget := func(path string, data []byte, set func(*TargetFile) error) {
		tf, err := metadata.TargetFile().FromBytes(path, data, "sha256", "sha512")
		require.NoError(t, err)
		require.NoError(t, set(tf))
		r.targets.Signed.Targets[path] = tf
	}
	fw := func(v string, sv uint64, hw ...string) func(*TargetFile) error {
		return func(tf *TargetFile) error {
			return SetFirmware(tf, Firmware{Version: MustParseVersion(v), SecurityVersion: sv, HardwareIDs: hw, Severity: SeveritySecurity, Advisories: []string{"CVE-2026-0001"}})
		}
	}
	img := map[string][]byte{
		"acme-gw-r2/1.0.0/firmware.bin": []byte("image 1.0.0"),
		"acme-gw-r2/1.1.0/firmware.bin": []byte("image 1.1.0"),
	}
	addTarget("acme-gw-r2/1.0.0/firmware.bin", img["acme-gw-r2/1.0.0/firmware.bin"], fw("1.0.0", 1, "acme-gw-r2"))
	addTarget("acme-gw-r2/1.1.0/firmware.bin", img["acme-gw-r2/1.1.0/firmware.bin"], fw("1.1.0", 2, "acme-gw-r2"))
	addTarget("readme.txt", []byte("plain TUF target"), func(*TargetFile) error { return nil })
	from, to := sha256.Sum256(img["acme-gw-r2/1.0.0/firmware.bin"]), sha256.Sum256(img["acme-gw-r2/1.1.0/firmware.bin"])
	addTarget("acme-gw-r2/deltas/1.0.0-1.1.0.bsdiff", []byte("patch"), func(tf *TargetFile) error {
		return SetDelta(tf, Delta{Format: FormatBSDIFF40,
			From: DeltaEnd{Path: "acme-gw-r2/1.0.0/firmware.bin", Length: 11, SHA256: from[:]},
			To:   DeltaEnd{Path: "acme-gw-r2/1.1.0/firmware.bin", Length: 11, SHA256: to[:]}})
	})
	r.snapshot = metadata.Snapshot(r.now.AddDate(0, 0, 7))
	r.timestamp = metadata.Timestamp(r.now.AddDate(0, 0, 1))
	SetSignedAt(&r.timestamp.Signed, r.now)
	r.resign(t)
	return r
}

// resign signs every document and refreshes the serialised forms.
func (r *testRepo) resign(t testing.TB) {
	t.Helper()
	r.root.ClearSignatures()
	_, err := r.root.Sign(r.signers[RoleRoot])
	require.NoError(t, err)
	r.rootJSON, err = r.root.ToBytes(false)
	require.NoError(t, err)

	r.targets.ClearSignatures()
	_, err = r.targets.Sign(r.signers[RoleTargets])
	require.NoError(t, err)
	r.targetsJSON, err = r.targets.ToBytes(false)
	require.NoError(t, err)

	r.snapshot.Signed.Meta["targets.json"] = metadata.MetaFile(r.targets.Signed.Version)
	r.snapshot.ClearSignatures()
	_, err = r.snapshot.Sign(r.signers[RoleSnapshot])
	require.NoError(t, err)
	r.snapJSON, err = r.snapshot.ToBytes(false)
	require.NoError(t, err)

	r.timestamp.Signed.Meta["snapshot.json"] = metadata.MetaFile(r.snapshot.Signed.Version)
	r.timestamp.ClearSignatures()
	_, err = r.timestamp.Sign(r.signers[RoleTimestamp])
	require.NoError(t, err)
	r.tsJSON, err = r.timestamp.ToBytes(false)
	require.NoError(t, err)
}

type trustedmetadataT = trustedmetadata.TrustedMetadata

func newTrusted(root []byte) (*trustedmetadataT, error) { return trustedmetadata.New(root) }
