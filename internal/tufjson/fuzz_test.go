package tufjson

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// FuzzDecodeTargets: the decoder never panics; what it accepts, go-tuf
// accepts too with the same values, and the canonical bytes are cjson's
// and a fixed point (decoded again as the signed part, they encode to
// themselves).
func FuzzDecodeTargets(f *testing.F) {
	f.Add(targetsJSON(f, 3))
	h := strings.Repeat("00", 32)
	f.Add([]byte(`{"signatures":[],"signed":{"_type":"targets","expires":"2030-01-01T00:00:00Z","spec_version":"1.0.31","targets":{"a":{"hashes":{"sha256":"` + h + `"},"length":1,"LENGTH":2,"custom":{"b":1,"a":[1e2,"\u00e9"],"b":0.5}}},"version":1,"x":1e2,"x":-0.0}}`))
	f.Add([]byte(`{"signatures":[{"keyid":"a","sig":"00"}],"Signatures":[],"signed":{"_type":"targets","spec_version":"1.0","version":1,"targets":{"a":null},"targets":{"a":{"hashes":{"sha512":"` + strings.Repeat("ab", 64) + `"},"length":0}}}}`))
	f.Add([]byte(`{"SignAtures":[],"signed":{"_type":"targets","speC_version":"1.0","version":1}}`))
	// An empty hash value: go-tuf decodes it to an empty, non-nil slice
	// (found by CI's fuzz run).
	f.Add([]byte(`{"signatures":[],"signed":{"_type":"targets","spec_version":"1.0","version":1,"targets":{"a":{"hashes":{"":""},"length":0}}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, canon, err := ours(data)
		if err != nil {
			return
		}
		want, wantCanon, werr, panicked := theirs(data)
		require.False(t, panicked, "accepted what go-tuf crashes on")
		require.NoError(t, werr, "accepted what go-tuf refuses")
		sameDocument(t, want, got)
		assert.Equal(t, string(wantCanon), string(canon))
		again, againCanon, err := ours(append(append([]byte(`{"signatures":[],"signed":`), canon...), '}'))
		require.NoError(t, err)
		assert.Equal(t, string(canon), string(againCanon))
		assert.Equal(t, got.Signed.Version, again.Signed.Version)
	})
}

// FuzzCanonicalize: never panics, agrees with cjson, and its output, when
// it is JSON at all, is its own canonical form.
func FuzzCanonicalize(f *testing.F) {
	for _, s := range []string{`{"b":1,"a":[true,null,"\u00e9"]}`, `{"a":1.5,"a":2}`, `"\ud800"`, `[1e400]`, `{"\u0062":1,"a":2}`, "\"\xff\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Canonicalize(data)
		want, werr := cjsonOf(data)
		var v any
		if json.Unmarshal(data, &v) != nil {
			require.Error(t, err, "accepted what encoding/json refuses")
			return
		}
		require.Equal(t, werr == nil, err == nil, "cjson %v, ours %v", werr, err)
		if err != nil {
			return
		}
		assert.Equal(t, string(want), string(got))
		if !json.Valid(got) {
			// OLPC canonical JSON writes control characters raw, which
			// no JSON reader accepts back.
			return
		}
		again, err := Canonicalize(got)
		require.NoError(t, err)
		assert.Equal(t, string(got), string(again))
	})
}
