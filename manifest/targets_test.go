package manifest

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The one-pass parser reads otaseal's own documents like ParseUnverified,
// and its canonical bytes are go-tuf's (package verify holds it to go-tuf
// on mutated documents too).
func TestParseTargetsUnverified(t *testing.T) {
	r := newTestRepo(t)
	want, err := ParseUnverified[Targets](RoleTargets, r.targetsJSON, Limits{})
	require.NoError(t, err)
	got, err := ParseTargetsUnverified(RoleTargets, r.targetsJSON, Limits{})
	require.NoError(t, err)
	wantCanon, err := cjson.EncodeCanonical(want.Signed)
	require.NoError(t, err)
	assert.Equal(t, string(wantCanon), string(got.Canonical))
	assert.Equal(t, want.Signed.Version, got.Metadata.Signed.Version)
	assert.True(t, want.Signed.Expires.Equal(got.Metadata.Signed.Expires))
	require.Len(t, got.Metadata.Signed.Targets, len(want.Signed.Targets))
	for path, tf := range want.Signed.Targets {
		g := got.Metadata.Signed.Targets[path]
		require.NotNil(t, g, path)
		assert.Equal(t, path, g.Path)
		assert.Equal(t, tf.Length, g.Length)
		assert.Equal(t, tf.Hashes, g.Hashes)
		assert.Equal(t, tf.Custom, g.Custom)
	}
	assert.Equal(t, want.Signatures[0].Signature, got.Metadata.Signatures[0].Signature)

	_, err = ParseTargetsUnverified(RoleTargets, r.targetsJSON, Limits{Targets: int64(len(r.targetsJSON)) - 1})
	assert.ErrorIs(t, err, ErrTooLarge)
}

// TestCanonicalCases pins cjson's rules that the encoder reproduces.
func TestCanonicalCases(t *testing.T) {
	head := `{"signatures":[],"signed":{"_type":"targets","expires":"2030-01-01T00:00:00Z","spec_version":"1.0.31","targets":{},"version":1`
	tests := []struct {
		name, extra, want string // want "" means refused
	}{
		{"integer float", `,"x":1.0`, `"x":1`},
		{"exponent", `,"x":1e2`, `"x":100`},
		{"negative zero", `,"x":-0.0`, `"x":-0`},
		{"rounded", `,"x":9007199254740993`, `"x":9007199254740992`},
		{"fraction", `,"x":1.5`, ""},
		{"above int64", `,"x":12345678901234567890`, ""},
		{"huge", `,"x":1e21`, ""},
		{"escapes", `,"x":"\u00e9\n\"\\\/"`, "\"x\":\"\u00e9\n\\\"\\\\/\""},
		{"lone surrogate", `,"x":"\ud800"`, "\"x\":\"\ufffd\""},
		{"duplicate", `,"x":1,"x":2`, `"x":2`},
		{"folded field", `,"VERSION":2`, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := []byte(head + tt.extra + "}}")
			p, err := ParseTargetsUnverified(RoleTargets, doc, Limits{})
			// go-tuf agrees.
			md, gerr := ParseUnverified[Targets](RoleTargets, doc, Limits{})
			require.NoError(t, gerr)
			canon, gerr := cjson.EncodeCanonical(md.Signed)
			if assert.Equal(t, gerr == nil, err == nil, "go-tuf: %v, otaseal: %v", gerr, err) && err == nil {
				assert.Equal(t, string(canon), string(p.Canonical))
			}
			if tt.want == "" {
				if tt.name == "folded field" {
					// Fills Version (2) and stays an unrecognised field.
					require.NoError(t, err)
					assert.Equal(t, int64(2), p.Metadata.Signed.Version)
					assert.Contains(t, string(p.Canonical), `{"VERSION":2,"_type"`)
					return
				}
				require.ErrorIs(t, err, ErrMalformed)
				return
			}
			require.NoError(t, err)
			assert.Contains(t, string(p.Canonical), tt.want)
		})
	}
}

// FuzzParseTargetsUnverified: the one-pass parser never panics, accepts
// exactly what ParseUnverified accepts and cjson can encode (bugs aside:
// what makes go-tuf panic, and an envelope whose "signed" go-tuf reads two
// ways, it refuses), computes cjson's bytes, and its canonical bytes are a
// fixed point: parsed again as the signed part, they encode to themselves.
func FuzzParseTargetsUnverified(f *testing.F) {
	r := newTestRepo(f)
	f.Add(r.targetsJSON)
	f.Add([]byte(`{"signatures":[],"signed":{"_type":"targets","expires":"2030-01-01T00:00:00Z","spec_version":"1.0.31","targets":{"a":{"hashes":{"sha256":"` + strings.Repeat("00", 32) + `"},"length":1,"LENGTH":2,"custom":{"b":1,"a":[1e2,"\u00e9"]}}},"version":1,"x":1e2,"x":-0.0}}`))
	f.Add([]byte(`{"signatures":[{"keyid":"a","sig":"00"}],"Signatures":[],"signed":{"_type":"targets","spec_version":"1.0","version":1,"targets":{"a":null},"targets":{"a":{"hashes":{"sha512":"` + strings.Repeat("ab", 64) + `"},"length":0}}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseTargetsUnverified(RoleTargets, data, Limits{})
		var want *Metadata[Targets]
		var werr error
		panicked := func() (p bool) {
			defer func() { p = recover() != nil }()
			want, werr = ParseUnverified[Targets](RoleTargets, data, Limits{})
			return false
		}()
		var canon []byte
		if werr == nil && !panicked {
			canon, werr = cjson.EncodeCanonical(want.Signed)
		}
		if panicked || folded(data) {
			if panicked {
				require.Error(t, err, "go-tuf panics here")
			}
			return
		}
		require.Equal(t, werr == nil, err == nil, "ParseUnverified+cjson: %v\none pass: %v", werr, err)
		if err != nil {
			return
		}
		assert.Equal(t, string(canon), string(got.Canonical))
		again, err := ParseTargetsUnverified(RoleTargets, append(append([]byte(`{"signatures":[],"signed":`), got.Canonical...), '}'), Limits{})
		require.NoError(t, err)
		assert.Equal(t, string(got.Canonical), string(again.Canonical))
	})
}

// folded reports an envelope with a member named "signed" but for case
// after the last one named exactly so.
func folded(data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return false
	}
	f := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return f
		}
		if key, _ := tok.(string); key == "signed" {
			f = false
		} else if strings.EqualFold(key, "signed") {
			f = true
		}
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return f
		}
	}
	return f
}
