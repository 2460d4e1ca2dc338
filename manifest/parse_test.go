package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"
)

func TestParseRoundTrip(t *testing.T) {
	r := newTestRepo(t)
	root, err := ParseUnverified[Root](RoleRoot, r.rootJSON, Limits{})
	require.NoError(t, err)
	assert.Equal(t, r.root.Signed.Version, root.Signed.Version)
	assert.Len(t, root.Signed.Keys, 4)
	require.NoError(t, root.VerifyDelegate(RoleRoot, root))

	targets, err := ParseUnverified[Targets](RoleTargets, r.targetsJSON, Limits{})
	require.NoError(t, err)
	require.NoError(t, root.VerifyDelegate(RoleTargets, targets))
	fw, err := FirmwareOf(targets.Signed.Targets["acme-gw-r2/1.1.0/firmware.bin"])
	require.NoError(t, err)
	assert.Equal(t, "1.1.0", fw.Version.String())
	assert.Equal(t, uint64(2), fw.SecurityVersion)
	again, err := targets.ToBytes(false)
	require.NoError(t, err)
	assert.Equal(t, r.targetsJSON, again, "parse then marshal reproduces the signed bytes")

	ts, err := ParseUnverified[Timestamp](RoleTimestamp, r.tsJSON, Limits{})
	require.NoError(t, err)
	require.NoError(t, root.VerifyDelegate(RoleTimestamp, ts))
	at, ok, err := SignedAt(&ts.Signed)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, r.now, at)

	snap, err := ParseUnverified[Snapshot](RoleSnapshot, r.snapJSON, Limits{})
	require.NoError(t, err)
	require.NoError(t, root.VerifyDelegate(RoleSnapshot, snap))
}

// go-tuf's own trusted-metadata state machine accepts an otaseal
// repository: the firmware schema is plain TUF.
func TestGoTUFAcceptsOtasealTargets(t *testing.T) {
	r := newTestRepo(t)
	tm, err := trustedmetadata.New(r.rootJSON)
	require.NoError(t, err)
	tm.RefTime = r.now
	_, err = tm.UpdateTimestamp(r.tsJSON)
	require.NoError(t, err)
	_, err = tm.UpdateSnapshot(r.snapJSON, false)
	require.NoError(t, err)
	targets, err := tm.UpdateTargets(r.targetsJSON)
	require.NoError(t, err)
	rel, err := FirmwareFor(&targets.Signed, "acme-gw-r2")
	require.NoError(t, err)
	assert.Len(t, rel, 2)
}

func TestParseLimits(t *testing.T) {
	r := newTestRepo(t)
	_, err := ParseUnverified[Targets](RoleTargets, r.targetsJSON, Limits{Targets: int64(len(r.targetsJSON)) - 1})
	assert.ErrorIs(t, err, ErrTooLarge)
	_, err = ParseUnverified[Targets](RoleTargets, r.targetsJSON, Limits{Targets: int64(len(r.targetsJSON))})
	assert.NoError(t, err)
	// Delegated roles use the targets limit.
	_, err = ParseUnverified[Targets]("bins-07", r.targetsJSON, Limits{Targets: 10})
	assert.ErrorIs(t, err, ErrTooLarge)

	assert.Equal(t, int64(DefaultRootLimit), Limits{}.For(RoleRoot))
	assert.Equal(t, int64(DefaultTimestampLimit), Limits{}.For(RoleTimestamp))
	assert.Equal(t, int64(DefaultSnapshotLimit), Limits{}.For(RoleSnapshot))
	assert.Equal(t, int64(DefaultTargetsLimit), Limits{}.For(RoleTargets))
	assert.Equal(t, int64(DefaultTargetsLimit), Limits{}.For("delegated"))
	assert.Equal(t, int64(7), Limits{Timestamp: 7}.For(RoleTimestamp))

	big := bytes.Repeat([]byte("x"), DefaultTimestampLimit+1)
	_, err = ParseUnverified[Timestamp](RoleTimestamp, big, Limits{})
	assert.ErrorIs(t, err, ErrTooLarge)
}

func TestReadLimited(t *testing.T) {
	got, err := ReadLimited(strings.NewReader("12345"), 5)
	require.NoError(t, err)
	assert.Equal(t, "12345", string(got))
	_, err = ReadLimited(strings.NewReader("123456"), 5)
	assert.ErrorIs(t, err, ErrTooLarge)
	// An endless stream stops after max+1 bytes.
	n := &countingReader{}
	_, err = ReadLimited(n, 1000)
	assert.ErrorIs(t, err, ErrTooLarge)
	assert.LessOrEqual(t, n.n, int64(1001))
	_, err = ReadLimited(strings.NewReader("x"), -1)
	assert.ErrorIs(t, err, ErrTooLarge)
}

type countingReader struct{ n int64 }

func (c *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	c.n += int64(len(p))
	return len(p), nil
}

// mutate parses a document into generic JSON, lets f change it, and
// re-serialises it (signatures stay as they were: shape checks come first).
func mutate(t *testing.T, doc []byte, f func(signed map[string]any)) []byte {
	var m map[string]any
	require.NoError(t, json.Unmarshal(doc, &m))
	f(m["signed"].(map[string]any))
	out, err := json.Marshal(m)
	require.NoError(t, err)
	return out
}

func TestParseShapeErrors(t *testing.T) {
	r := newTestRepo(t)
	meta := func(signed map[string]any) map[string]any { return signed["meta"].(map[string]any) }
	targetsOf := func(signed map[string]any) map[string]any { return signed["targets"].(map[string]any) }
	firstTarget := func(signed map[string]any) map[string]any {
		return targetsOf(signed)["acme-gw-r2/1.0.0/firmware.bin"].(map[string]any)
	}
	tests := []struct {
		name string
		role string
		doc  []byte
		want error
	}{
		{"timestamp without snapshot meta", RoleTimestamp, mutate(t, r.tsJSON, func(s map[string]any) {
			s["meta"] = map[string]any{}
		}), ErrMissingSnapshotMeta},
		{"timestamp with null snapshot meta", RoleTimestamp, mutate(t, r.tsJSON, func(s map[string]any) {
			s["meta"] = map[string]any{"snapshot.json": nil}
		}), ErrMissingSnapshotMeta},
		{"timestamp with extra meta", RoleTimestamp, mutate(t, r.tsJSON, func(s map[string]any) {
			meta(s)["targets.json"] = map[string]any{"version": 1}
		}), ErrMissingSnapshotMeta},
		{"timestamp empty hashes", RoleTimestamp, mutate(t, r.tsJSON, func(s map[string]any) {
			meta(s)["snapshot.json"] = map[string]any{"version": 1, "hashes": map[string]any{}}
		}), ErrEmptyHashes},
		{"timestamp md5 hash", RoleTimestamp, mutate(t, r.tsJSON, func(s map[string]any) {
			meta(s)["snapshot.json"] = map[string]any{"version": 1, "hashes": map[string]any{"md5": "00112233445566778899aabbccddeeff"}}
		}), ErrUnsupportedHash},
		{"snapshot null meta", RoleSnapshot, mutate(t, r.snapJSON, func(s map[string]any) {
			meta(s)["targets.json"] = nil
		}), ErrMalformed},
		{"snapshot meta version 0", RoleSnapshot, mutate(t, r.snapJSON, func(s map[string]any) {
			meta(s)["targets.json"] = map[string]any{"version": 0}
		}), ErrMalformed},
		{"targets empty hashes", RoleTargets, mutate(t, r.targetsJSON, func(s map[string]any) {
			firstTarget(s)["hashes"] = map[string]any{}
		}), ErrEmptyHashes},
		{"targets sha1 only", RoleTargets, mutate(t, r.targetsJSON, func(s map[string]any) {
			firstTarget(s)["hashes"] = map[string]any{"sha1": "00112233445566778899aabbccddeeff00112233"}
		}), ErrUnsupportedHash},
		{"targets short sha256", RoleTargets, mutate(t, r.targetsJSON, func(s map[string]any) {
			firstTarget(s)["hashes"] = map[string]any{"sha256": "0011"}
		}), ErrMalformedHash},
		{"targets negative length", RoleTargets, mutate(t, r.targetsJSON, func(s map[string]any) {
			firstTarget(s)["length"] = -1
		}), ErrMalformed},
		{"targets null entry", RoleTargets, mutate(t, r.targetsJSON, func(s map[string]any) {
			targetsOf(s)["x"] = nil
		}), ErrMalformed},
		{"spec version 2", RoleTargets, mutate(t, r.targetsJSON, func(s map[string]any) {
			s["spec_version"] = "2.0.0"
		}), ErrSpecVersion},
		{"spec version garbage", RoleTargets, mutate(t, r.targetsJSON, func(s map[string]any) {
			s["spec_version"] = "1.x"
		}), ErrSpecVersion},
		{"spec version one part", RoleTargets, mutate(t, r.targetsJSON, func(s map[string]any) {
			s["spec_version"] = "1"
		}), ErrSpecVersion},
		{"version zero", RoleTargets, mutate(t, r.targetsJSON, func(s map[string]any) {
			s["version"] = 0
		}), ErrMalformed},
		{"wrong type", RoleTargets, r.snapJSON, ErrWrongType},
		{"root missing role", RoleRoot, mutate(t, r.rootJSON, func(s map[string]any) {
			delete(s["roles"].(map[string]any), "timestamp")
		}), ErrMalformed},
		{"root null role", RoleRoot, mutate(t, r.rootJSON, func(s map[string]any) {
			s["roles"].(map[string]any)["mirror"] = nil
		}), ErrMalformed},
		{"root null key", RoleRoot, mutate(t, r.rootJSON, func(s map[string]any) {
			s["keys"].(map[string]any)["abc"] = nil
		}), ErrMalformed},
		{"root threshold 0", RoleRoot, mutate(t, r.rootJSON, func(s map[string]any) {
			s["roles"].(map[string]any)["root"].(map[string]any)["threshold"] = 0
		}), ErrMalformed},
		{"root duplicate keyid", RoleRoot, mutate(t, r.rootJSON, func(s map[string]any) {
			role := s["roles"].(map[string]any)["root"].(map[string]any)
			ids := role["keyids"].([]any)
			role["keyids"] = append(ids, ids[0])
			role["threshold"] = 2
		}), ErrMalformed},
		{"delegations with both kinds", RoleTargets, mutate(t, r.targetsJSON, func(s map[string]any) {
			s["delegations"] = map[string]any{"keys": map[string]any{},
				"roles":          []any{map[string]any{"name": "a", "keyids": []any{"k"}, "threshold": 1, "terminating": false, "paths": []any{"*"}}},
				"succinct_roles": map[string]any{"keyids": []any{"k"}, "threshold": 1, "bit_length": 4, "name_prefix": "bin"}}
		}), ErrMalformed},
		{"succinct bit length 33", RoleTargets, mutate(t, r.targetsJSON, func(s map[string]any) {
			s["delegations"] = map[string]any{"keys": map[string]any{},
				"succinct_roles": map[string]any{"keyids": []any{"k"}, "threshold": 1, "bit_length": 33, "name_prefix": "bin"}}
		}), ErrMalformed},
		{"delegated role repeated", RoleTargets, mutate(t, r.targetsJSON, func(s map[string]any) {
			role := map[string]any{"name": "a", "keyids": []any{"k"}, "threshold": 1, "terminating": false, "paths": []any{"*"}}
			s["delegations"] = map[string]any{"keys": map[string]any{}, "roles": []any{role, role}}
		}), ErrMalformed},
		{"delegated role named root", RoleTargets, mutate(t, r.targetsJSON, func(s map[string]any) {
			role := map[string]any{"name": "root", "keyids": []any{"k"}, "threshold": 1, "terminating": false, "paths": []any{"*"}}
			s["delegations"] = map[string]any{"keys": map[string]any{}, "roles": []any{role}}
		}), ErrMalformed},
		{"delegated role without paths", RoleTargets, mutate(t, r.targetsJSON, func(s map[string]any) {
			role := map[string]any{"name": "a", "keyids": []any{"k"}, "threshold": 1, "terminating": false}
			s["delegations"] = map[string]any{"keys": map[string]any{}, "roles": []any{role}}
		}), ErrMalformed},
		{"not json", RoleRoot, []byte("{"), ErrMalformed},
		{"not an object", RoleRoot, []byte("[]"), ErrMalformed},
		{"signed not object", RoleRoot, []byte(`{"signed":[],"signatures":[]}`), ErrMalformed},
		{"signatures not list", RoleRoot, []byte(`{"signed":{},"signatures":{}}`), ErrMalformed},
		{"duplicate signature keyid", RoleTimestamp, dupSignature(t, r.tsJSON), ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			switch tc.role {
			case RoleRoot:
				_, err = ParseUnverified[Root](tc.role, tc.doc, Limits{})
			case RoleTimestamp:
				_, err = ParseUnverified[Timestamp](tc.role, tc.doc, Limits{})
			case RoleSnapshot:
				_, err = ParseUnverified[Snapshot](tc.role, tc.doc, Limits{})
			default:
				_, err = ParseUnverified[Targets](tc.role, tc.doc, Limits{})
				// The one-pass parser refuses the same, for the same reason.
				_, fastErr := ParseTargetsUnverified(tc.role, tc.doc, Limits{})
				assert.ErrorIs(t, fastErr, tc.want)
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, tc.want)
			var me *MetadataError
			require.ErrorAs(t, err, &me)
			assert.Equal(t, tc.role, me.Role)
		})
	}
}

func dupSignature(t *testing.T, doc []byte) []byte {
	var m map[string]any
	require.NoError(t, json.Unmarshal(doc, &m))
	sigs := m["signatures"].([]any)
	m["signatures"] = append(sigs, sigs[0])
	out, err := json.Marshal(m)
	require.NoError(t, err)
	return out
}

// Flip every byte of each signed document: each flip must be caught, by the
// parser or by the signature check, and never panic.
func TestCorruptionProbes(t *testing.T) {
	r := newTestRepo(t)
	root, err := ParseUnverified[Root](RoleRoot, r.rootJSON, Limits{})
	require.NoError(t, err)
	docs := []struct {
		role  string
		data  []byte
		check func([]byte) error
	}{
		{RoleRoot, r.rootJSON, func(b []byte) error {
			md, err := ParseUnverified[Root](RoleRoot, b, Limits{})
			if err != nil {
				return err
			}
			return root.VerifyDelegate(RoleRoot, md)
		}},
		{RoleTimestamp, r.tsJSON, func(b []byte) error {
			md, err := ParseUnverified[Timestamp](RoleTimestamp, b, Limits{})
			if err != nil {
				return err
			}
			return root.VerifyDelegate(RoleTimestamp, md)
		}},
		{RoleSnapshot, r.snapJSON, func(b []byte) error {
			md, err := ParseUnverified[Snapshot](RoleSnapshot, b, Limits{})
			if err != nil {
				return err
			}
			return root.VerifyDelegate(RoleSnapshot, md)
		}},
		{RoleTargets, r.targetsJSON, func(b []byte) error {
			md, err := ParseUnverified[Targets](RoleTargets, b, Limits{})
			if err != nil {
				return err
			}
			if err := root.VerifyDelegate(RoleTargets, md); err != nil {
				return err
			}
			// The otaseal objects must still read as the signer wrote them.
			for path, tf := range md.Signed.Targets {
				if _, err := ReadEntry(tf); err != nil && err != ErrNoOtaseal {
					return fmt.Errorf("%s: %w", path, err)
				}
			}
			return nil
		}},
	}
	for _, d := range docs {
		t.Run(d.role, func(t *testing.T) {
			require.NoError(t, d.check(d.data), "valid document must pass")
			for i := range d.data {
				for _, mask := range []byte{0x01, 0x80} {
					b := bytes.Clone(d.data)
					b[i] ^= mask
					assert.Error(t, d.check(b), "flip %#x at byte %d (%q) accepted", mask, i, d.data[max(0, i-10):min(len(d.data), i+10)])
				}
			}
			// Truncation at every length.
			for n := range d.data {
				assert.Error(t, d.check(d.data[:n]), "truncated to %d accepted", n)
			}
		})
	}
	_ = metadata.SPECIFICATION_VERSION
}
