package tufjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// targetsJSON builds a targets document of n targets with go-tuf, with
// custom objects, a delegation and unrecognised fields, as go-tuf writes
// it (compact, sorted keys).
func targetsJSON(t testing.TB, n int) []byte {
	t.Helper()
	md := metadata.Targets(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	for i := range n {
		path := fmt.Sprintf("hw-%d/%d.%d.0/firmware.bin", i%7, i/7, i%3)
		tf, err := metadata.TargetFile().FromBytes(path, []byte(path), "sha256")
		require.NoError(t, err)
		custom := json.RawMessage(fmt.Sprintf(`{"otaseal":{"hardware_ids":["hw-%d"],"kind":"firmware","security_version":%d,"version":"%d.%d.0"}}`, i%7, i, i/7, i%3))
		tf.Custom = &custom
		md.Signed.Targets[path] = tf
	}
	md.Signed.UnrecognizedFields = map[string]any{"x-note": "é\"\\", "x-list": []any{float64(1), true, nil}}
	md.Signed.Delegations = &metadata.Delegations{
		Keys: map[string]*metadata.Key{"k1": {Type: "ed25519", Scheme: "ed25519", Value: metadata.KeyVal{PublicKey: "ab"}}},
		Roles: []metadata.DelegatedRole{{Name: "team", KeyIDs: []string{"k1"}, Threshold: 1, Paths: []string{"team/*"},
			UnrecognizedFields: map[string]any{"x": float64(7)}}},
	}
	md.Signatures = []metadata.Signature{{KeyID: "k1", Signature: []byte{1, 2}}}
	out, err := md.ToBytes(false)
	require.NoError(t, err)
	return out
}

// theirs decodes data as go-tuf does and computes cjson's canonical form;
// panicked reports a crash of go-tuf's decoder.
func theirs(data []byte) (md *metadata.Metadata[metadata.TargetsType], canon []byte, err error, panicked bool) {
	defer func() {
		if recover() != nil {
			panicked = true
		}
	}()
	md, err = (&metadata.Metadata[metadata.TargetsType]{}).FromBytes(data)
	if err == nil {
		canon, err = cjson.EncodeCanonical(md.Signed)
	}
	return md, canon, err, false
}

// ours decodes data with DecodeTargets and computes the canonical form.
func ours(data []byte) (*metadata.Metadata[metadata.TargetsType], []byte, error) {
	doc, err := DecodeTargets(data)
	if err != nil {
		return nil, nil, err
	}
	canon, err := doc.Canonical()
	return doc.Metadata, canon, err
}

// sameDocument asserts that ours and go-tuf's decodings of one document
// agree on everything a verifier or a device reads.
func sameDocument(t *testing.T, want, got *metadata.Metadata[metadata.TargetsType]) {
	t.Helper()
	w, g := want.Signed, got.Signed
	assert.Equal(t, w.Type, g.Type)
	assert.Equal(t, w.SpecVersion, g.SpecVersion)
	assert.Equal(t, w.Version, g.Version)
	assert.True(t, w.Expires.Equal(g.Expires), "expires %v, want %v", g.Expires, w.Expires)
	require.Len(t, g.Targets, len(w.Targets))
	for path, tf := range w.Targets {
		gf := g.Targets[path]
		require.NotNil(t, gf, path)
		assert.Equal(t, tf.Path, gf.Path)
		assert.Equal(t, tf.Length, gf.Length)
		assert.Equal(t, tf.Hashes, gf.Hashes)
		if tf.Custom == nil {
			assert.Nil(t, gf.Custom)
		} else {
			require.NotNil(t, gf.Custom)
			assert.JSONEq(t, string(*tf.Custom), string(*gf.Custom))
		}
		sameFields(t, tf.UnrecognizedFields, gf.UnrecognizedFields)
	}
	// go-tuf keeps empty maps of unrecognised fields where this package
	// keeps none: compare what they marshal to.
	wd, err := json.Marshal(w.Delegations)
	require.NoError(t, err)
	gd, err := json.Marshal(g.Delegations)
	require.NoError(t, err)
	assert.JSONEq(t, string(wd), string(gd))
	sameFields(t, w.UnrecognizedFields, g.UnrecognizedFields)
	require.Len(t, got.Signatures, len(want.Signatures))
	for i := range want.Signatures {
		assert.Equal(t, want.Signatures[i].KeyID, got.Signatures[i].KeyID)
		assert.True(t, bytes.Equal(want.Signatures[i].Signature, got.Signatures[i].Signature), "signature %d", i)
	}
}

func sameFields(t *testing.T, want, got map[string]any) {
	t.Helper()
	if len(want) == 0 {
		assert.Empty(t, got)
		return
	}
	assert.Equal(t, want, got)
}

// agree asserts that go-tuf and DecodeTargets both accept data and read
// it alike, and returns our canonical bytes.
func agree(t *testing.T, data []byte) []byte {
	t.Helper()
	want, wantCanon, werr, panicked := theirs(data)
	require.False(t, panicked)
	require.NoError(t, werr)
	got, canon, err := ours(data)
	require.NoError(t, err)
	sameDocument(t, want, got)
	assert.Equal(t, string(wantCanon), string(canon))
	return canon
}

func TestDecodeTargetsMatchesGoTUF(t *testing.T) {
	data := targetsJSON(t, 50)
	canon := agree(t, data)
	// go-tuf writes sorted compact JSON: the canonical form is the signed
	// part as received, shared rather than copied.
	i := bytes.Index(data, canon)
	require.GreaterOrEqual(t, i, 0)
	assert.Same(t, &data[i], &canon[0], "canonical bytes share the input")
}

// Documents that go-tuf decodes in ways a hand-written decoder easily
// gets wrong: both decoders must read each one alike.
func TestDecodeTargetsEdgeCases(t *testing.T) {
	h := strings.Repeat("ab", 32)
	entry := `{"length":1,"hashes":{"sha256":"` + h + `"}}`
	head := `{"signatures":[],"signed":{"_type":"targets","spec_version":"1.0.31","version":3,"expires":"2030-01-01T00:00:00Z"`
	tests := []struct{ name, signed string }{
		{"no targets", ``},
		{"targets null", `,"targets":null`},
		{"repeated targets merge", `,"targets":{"a":` + entry + `},"targets":{"b":` + entry + `}`},
		{"targets null then object", `,"targets":null,"targets":{"b":` + entry + `}`},
		{"folded member fills and stays unrecognised", `,"VERSION":4,"targets":{}`},
		{"folded target field", `,"targets":{"a":{"LENGTH":5,"length":1,"hashes":{"sha256":"` + h + `"}}}`},
		{"repeated hashes merge", `,"targets":{"a":{"length":1,"hashes":{"sha256":"` + h + `"},"hashes":{"sha512":"` + h + h + `"}}}`},
		{"custom with escapes and unsorted keys", `,"targets":{"a":{"length":1,"hashes":{"sha256":"` + h + `"},"custom":{"z":1,"a":"\u00e9\ud83d\ude00","m":[true,null,{"y":2,"x":-0}]}}}`},
		{"custom fraction replaced by a repeated key", `,"targets":{"a":{"length":1,"hashes":{"sha256":"` + h + `"},"custom":{"b":0.5,"b":1,"a":[2.5],"a":2}}}`},
		{"custom null", `,"targets":{"a":{"length":1,"hashes":{"sha256":"` + h + `"},"custom":null}}`},
		{"unsorted paths", `,"targets":{"b":` + entry + `,"a":` + entry + `}`},
		{"escaped path", `,"targets":{"a\/b\u0041":` + entry + `}`},
		{"unrecognised values", `,"targets":{},"x":{"b":[1,2.0,-3e2,"s"],"a":null},"y":false`},
		{"string null keeps value", `,"spec_version":null,"targets":{}`},
		{"delegations with succinct roles", `,"targets":{},"delegations":{"keys":{},"succinct_roles":{"keyids":["a"],"threshold":1,"bit_length":8,"name_prefix":"bin","q":1}}`},
		{"delegations with roles", `,"targets":{},"delegations":{"keys":{"k":{"keytype":"ed25519","scheme":"ed25519","keyval":{"public":"ab","p2":1}}},"roles":[{"name":"r","keyids":["k","k2"],"threshold":2,"terminating":true,"path_hash_prefixes":["ab"]},null]}`},
		{"keyids repeated shrink", `,"targets":{},"delegations":{"keys":{},"roles":[{"name":"r","keyids":["a","b"],"keyids":["c"],"threshold":1,"paths":[]}]}`},
		{"delegations null", `,"targets":{},"delegations":null`},
		{"signatures null", `,"targets":{}},"signatures":null,"signatures":[{"keyid":"a","sig":"0a","x":1}],"y":2,"z":{"s":1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agree(t, []byte(head+tt.signed+"}}"))
		})
	}
}

// Hostile documents: each is refused with the named class, never a panic.
func TestDecodeTargetsRefusals(t *testing.T) {
	h := strings.Repeat("ab", 32)
	head := `{"signatures":[],"signed":{"_type":"targets","spec_version":"1.0","version":1,"expires":"2030-01-01T00:00:00Z"`
	tests := []struct {
		name, doc string
		want      error
	}{
		{"empty", ``, ErrSyntax},
		{"not an object", `[]`, ErrMalformed},
		{"trailing data", head + `}} {}`, ErrSyntax},
		{"truncated", head, ErrSyntax},
		{"signed missing", `{"signatures":[]}`, ErrMalformed},
		{"signed not an object", `{"signed":[],"signatures":[]}`, ErrSyntax},
		{"signed null", `{"signed":null,"signatures":[]}`, ErrWrongType},
		{"signatures missing", `{"signed":{"_type":"targets"}}`, ErrMalformed},
		{"signatures not a list", `{"signed":{"_type":"targets"},"signatures":{}}`, ErrSyntax},
		{"signed twice by case", `{"signed":{"_type":"targets"},"Signed":{"_type":"targets"},"signatures":[]}`, ErrMalformed},
		{"wrong type", `{"signed":{"_type":"root"},"signatures":[]}`, ErrWrongType},
		{"type not a string", `{"signed":{"_type":1},"signatures":[]}`, ErrSyntax},
		{"type folded only", `{"signed":{"_TYPE":"targets"},"signatures":[]}`, ErrWrongType},
		{"duplicate signature key", `{"signed":{"_type":"targets"},"signatures":[{"keyid":"a","sig":"00"},{"keyid":"a","sig":"01"}]}`, ErrMalformed},
		{"signature not an object", `{"signed":{"_type":"targets"},"signatures":[1]}`, ErrSyntax},
		{"odd hex", `{"signed":{"_type":"targets"},"signatures":[{"keyid":"a","sig":"0"}]}`, ErrMalformed},
		{"bad hex", `{"signed":{"_type":"targets"},"signatures":[{"keyid":"a","sig":"zz"}]}`, ErrMalformed},
		{"escaped hex", `{"signed":{"_type":"targets"},"signatures":[{"keyid":"a","sig":"\u0030\u0030"}]}`, ErrMalformed},
		{"null target", head + `,"targets":{"a":null}}}`, ErrMalformed},
		{"target not an object", head + `,"targets":{"a":1}}}`, ErrSyntax},
		{"empty hashes", head + `,"targets":{"a":{"length":1,"hashes":{}}}}}`, ErrEmptyHashes},
		{"no hashes", head + `,"targets":{"a":{"length":1}}}}`, ErrEmptyHashes},
		{"fractional length", head + `,"targets":{"a":{"length":1.5,"hashes":{"sha256":"` + h + `"}}}}}`, ErrMalformed},
		{"length overflow", head + `,"targets":{"a":{"length":9223372036854775808,"hashes":{"sha256":"` + h + `"}}}}}`, ErrMalformed},
		{"version string", `{"signed":{"_type":"targets","version":"1"},"signatures":[]}`, ErrSyntax},
		{"bad expires", `{"signed":{"_type":"targets","expires":"tomorrow"},"signatures":[]}`, ErrMalformed},
		{"number out of float range", head + `,"x":1e400}}`, ErrSyntax},
		{"bit_length 0", head + `,"delegations":{"keys":{},"succinct_roles":{"keyids":[],"threshold":1,"bit_length":0,"name_prefix":"b"}}}}`, ErrMalformed},
		{"key not an object", head + `,"delegations":{"keys":{"k":[]}}}}`, ErrSyntax},
		{"keyval not an object", head + `,"delegations":{"keys":{"k":{"keyval":1}}}}}`, ErrSyntax},
		{"succinct not an object", head + `,"delegations":{"succinct_roles":1}}}`, ErrSyntax},
		{"role not an object", head + `,"delegations":{"roles":[1]}}}`, ErrSyntax},
		{"terminating not a boolean", head + `,"delegations":{"roles":[{"terminating":1}]}}}`, ErrSyntax},
		{"keyids not a list", head + `,"delegations":{"roles":[{"keyids":{}}]}}}`, ErrSyntax},
		{"deep unrecognised value", head + `,"x":` + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + `}}`, ErrSyntax},
		{"control character", `{"signed":{"_type":"targ` + "\x01" + `ets"},"signatures":[]}`, ErrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeTargets([]byte(tt.doc))
			require.ErrorIs(t, err, tt.want)
			// go-tuf refuses (or crashes on) each as well, except for the
			// envelope shapes that go-tuf reads and otaseal refuses.
			_, _, werr, panicked := theirs([]byte(tt.doc))
			switch tt.name {
			case "signed missing", "signed null", "signatures missing", "signatures not a list", "signed twice by case", "type folded only":
			default:
				assert.True(t, werr != nil || panicked, "go-tuf accepts %s", tt.doc)
			}
		})
	}
}

// The canonical form has no encoding for what cjson refuses.
func TestCanonicalRefusals(t *testing.T) {
	h := strings.Repeat("ab", 32)
	head := `{"signatures":[],"signed":{"_type":"targets","spec_version":"1.0","version":1,"expires":"2030-01-01T00:00:00Z"`
	for name, signed := range map[string]string{
		"fraction":              `,"x":1.5`,
		"tiny":                  `,"x":1e-7`,
		"huge":                  `,"x":1e21`,
		"above int64":           `,"x":[12345678901234567890]`,
		"custom fraction":       `,"targets":{"a":{"length":1,"hashes":{"sha256":"` + h + `"},"custom":{"a":1.0}}}`,
		"custom unsorted big":   `,"targets":{"a":{"length":1,"hashes":{"sha256":"` + h + `"},"custom":{"b":1,"a":1e30}}}`,
		"paths and prefixes":    `,"delegations":{"keys":{},"roles":[{"name":"r","keyids":[],"threshold":1,"paths":[],"path_hash_prefixes":[]}]}`,
		"nested unrecognised":   `,"delegations":{"keys":{"k":{"x":0.5}}}`,
		"succinct unrecognised": `,"delegations":{"keys":{},"succinct_roles":{"bit_length":1,"x":0.5}}`,
	} {
		t.Run(name, func(t *testing.T) {
			data := []byte(head + signed + "}}")
			doc, err := DecodeTargets(data)
			require.NoError(t, err)
			_, err = doc.Canonical()
			require.ErrorIs(t, err, ErrNotCanonical)
			if _, _, werr, panicked := theirs(data); !panicked {
				assert.Error(t, werr, "cjson refuses it too")
			}
		})
	}
}
