package main

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

func newKey(t *testing.T, name string) *sign.Signer {
	seed := sha256.Sum256([]byte("deviceagent key test " + name))
	s, err := sign.SignerFromPrivateKey(context.Background(), ed25519.NewKeyFromSeed(seed[:]))
	require.NoError(t, err)
	return s
}

// rotateTimestamp gives the timestamp role new keys and threshold in a
// root rotation signed by the root key, then publishes with signers.
func (s *testServer) rotateTimestamp(t *testing.T, keys []*sign.Signer, threshold int, signers ...*sign.Signer) {
	ctx := context.Background()
	spec := sign.SpecOf(&s.repo.Root().Signed)
	var pub []*manifest.Key
	for _, k := range keys {
		pub = append(pub, k.Key())
	}
	spec.Roles[manifest.RoleTimestamp] = sign.RoleKeys{Threshold: threshold, Keys: pub}
	next, err := s.repo.StageRoot(spec)
	require.NoError(t, err)
	p, err := sign.RotationPolicy(&s.repo.Root().Signed, &next.Signed)
	require.NoError(t, err)
	rep, err := sign.SignRole(ctx, p, manifest.RoleRoot, next, []*sign.Signer{s.keys["root"]})
	require.NoError(t, err)
	require.True(t, rep.Met)
	require.NoError(t, s.repo.SetRoot(next))
	require.NoError(t, s.repo.Publish(ctx, signers))
}

// forgeTimestamp signs a timestamp of the given version, pointing at the
// real snapshot, with the stolen keys only.
func (s *testServer) forgeTimestamp(t *testing.T, version int64, stolen ...*sign.Signer) []byte {
	evil := metadata.Timestamp(time.Now().Add(time.Hour).UTC().Truncate(time.Second))
	evil.Signed.Version = version
	evil.Signed.Meta["snapshot.json"] = s.repo.Timestamp().Signed.Meta["snapshot.json"]
	for _, k := range stolen {
		_, err := evil.Sign(k)
		require.NoError(t, err)
	}
	b, err := evil.ToBytes(false)
	require.NoError(t, err)
	return b
}

func serveTimestamp(b []byte) func(string, []byte) []byte {
	return func(p string, honest []byte) []byte {
		if p == "/metadata/timestamp.json" {
			return b
		}
		return honest
	}
}

// Fast-forward (TUF 5.3.11): with a stolen timestamp key the attacker pushes
// the device to timestamp version 1000, so the real repository looks like a
// rollback. Once the vendor rotates the timestamp key, the device recovers.
func TestAttackFastForwardRecovery(t *testing.T) {
	s := newServer(t, 32<<10)
	d := newDevice(t, s)
	code, log := agentRun(t, d.args(s))
	require.Equal(t, 0, code, log)

	s.setMITM(serveTimestamp(s.forgeTimestamp(t, 1000, s.keys["timestamp"])))
	code, log = agentRun(t, d.args(s))
	require.Equal(t, 0, code, "a validly signed timestamp cannot be told from the real one: %s", log)
	s.setMITM(nil)
	code, log = agentRun(t, d.args(s))
	require.Equal(t, 1, code)
	assert.Contains(t, log, "metadata version lower than trusted", "stuck on the inflated version")

	fresh := newKey(t, "timestamp v2")
	s.rotateTimestamp(t, []*sign.Signer{fresh}, 1, s.keys["snapshot"], fresh, s.keys["timestamp"])
	code, log = agentRun(t, d.args(s))
	assert.Equal(t, 0, code, "recovered after the rotation: %s", log)
	assert.Equal(t, "1.1.0", d.status(t).Installed.Version.String())
}

// Key compromise below the threshold: a 2-of-2 timestamp role, one key
// stolen. The forged timestamp is refused and the log names the key that
// signed it.
func TestAttackKeyCompromiseBelowThreshold(t *testing.T) {
	s := newServer(t, 32<<10)
	k1, k2 := newKey(t, "ts-1"), newKey(t, "ts-2")
	s.rotateTimestamp(t, []*sign.Signer{k1, k2}, 2, s.keys["snapshot"], k1, k2, s.keys["timestamp"])
	d := newDevice(t, s)
	code, log := agentRun(t, d.args(s))
	require.Equal(t, 0, code, log)
	before := d.status(t)

	s.setMITM(serveTimestamp(s.forgeTimestamp(t, s.repo.Timestamp().Signed.Version+1, k2)))
	code, log = agentRun(t, d.args(s))
	assert.Equal(t, 1, code)
	assert.Contains(t, log, "1 of 2 required signatures")
	assert.Contains(t, log, k2.KeyID())
	after := d.status(t)
	assert.Equal(t, before.Installed, after.Installed)
	assert.Equal(t, before.Floors, after.Floors)
}
