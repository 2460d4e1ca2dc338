package tufjson

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cjsonOf is the reference: cjson's canonical form of a raw JSON value.
func cjsonOf(data []byte) ([]byte, error) {
	return cjson.EncodeCanonical(json.RawMessage(data))
}

// checkCanonical asserts that Canonicalize and cjson agree on data: both
// refuse it or both write the same bytes.
func checkCanonical(t *testing.T, data []byte) {
	t.Helper()
	want, werr := cjsonOf(data)
	got, err := Canonicalize(data)
	require.Equal(t, werr == nil, err == nil, "%q: cjson %v, ours %v", data, werr, err)
	if err == nil {
		assert.Equal(t, string(want), string(got), "%q", data)
	}
}

func TestCanonicalizeMatchesCJSON(t *testing.T) {
	for _, s := range []string{
		`null`, `true`, `false`, `0`, `-0`, `7`, `-9223372036854775808`, `9223372036854775807`,
		`9223372036854775808`, `1.0`, `1e2`, `1.5`, `""`, `"a\"b\\c\/d"`, `"\b\f\n\r\t\u0001"`,
		`"\u00e9"`, `"é"`, `"\ud83d\ude00"`, `"\ud800"`, `"\udc00\ud800x"`, "\"\xff\xfe\"",
		`[]`, `{}`, `[1,[2,[3]]]`, ` { "b" : 1 , "a" : [ true ] } `, `{"a":1,"a":2}`,
		`{"b":{"d":1,"c":2},"a":null}`, `{"\u0062":1,"a":2}`, `{"é":1,"e":2,"z":3}`,
		`{"a":{"x":1.5}}`, `{"b":1,"a":{"x":1.5}}`, `[1e400]`, `{"a":[1,2,{"b":"\u00e9"}]}`,
		`"<>&\u2028"`, `{"a":"x","b":"y\\"}`,
	} {
		checkCanonical(t, []byte(s))
	}
}

// Random documents built from a small alphabet of keys, strings and
// numbers that exercise sorting, escapes, repeated keys and number rules.
func TestCanonicalizeRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		checkCanonical(t, []byte(randomValue(rng, 0)))
	}
}

func randomValue(rng *rand.Rand, depth int) string {
	keys := []string{`"a"`, `"b"`, `"B"`, `"é"`, `"\u0061"`, `"a\"b"`, `""`, `"z\\"`}
	leaves := []string{`null`, `true`, `false`, `0`, `-0`, `12`, `-7`, `1.0`, `2e3`, `0.5`, `""`, `"x"`,
		`"\n"`, `"\ud800"`, `"\u00e9"`, `"\/"`, "\"\xc3\"", `9223372036854775807`, `-9223372036854775809`}
	switch n := rng.IntN(10); {
	case depth > 4 || n < 5:
		return leaves[rng.IntN(len(leaves))]
	case n < 8:
		var b strings.Builder
		b.WriteByte('{')
		for i := range rng.IntN(5) {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(keys[rng.IntN(len(keys))] + ":" + randomValue(rng, depth+1))
		}
		b.WriteByte('}')
		return b.String()
	default:
		var b strings.Builder
		b.WriteByte('[')
		for i := range rng.IntN(4) {
			if i > 0 {
				b.WriteString(" , ")
			}
			b.WriteString(randomValue(rng, depth+1))
		}
		b.WriteByte(']')
		return b.String()
	}
}

// The scanner accepts exactly what encoding/json decodes into an `any`.
func TestScannerMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{
		``, ` `, `x`, `nul`, `nulll`, `tru`, `[`, `]`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `[1,]`,
		`{a:1}`, `{"a" 1}`, `[1 2]`, `01`, `-`, `-01`, `1.`, `.5`, `1e`, `1e+`, `1E-2`, `+1`,
		`"a`, `"\x"`, `"\u12"`, `"\u12g4"`, "\"\t\"", "\"\x7f\"", `"\`, `1e309`, `-1e309`, `1e-400`,
		`[` + strings.Repeat("0", 400) + `]`, `"` + strings.Repeat("9", 400) + `"`, strings.Repeat("9", 310),
		"[1]\x00", " \r\n\t[1] ", "[1]\v",
	} {
		var v any
		werr := json.Unmarshal([]byte(s), &v)
		s2 := &scanner{data: []byte(s)}
		_, err := s2.skip()
		if err == nil {
			if s2.ws(); s2.pos != len(s) {
				err = s2.errorf("data after")
			}
		}
		assert.Equal(t, werr == nil, err == nil, "%q: encoding/json %v, scanner %v", s, werr, err)
		if err != nil {
			assert.ErrorIs(t, err, ErrSyntax, "%q", s)
		}
	}
}

// Nesting is bounded at MaxDepth, encoding/json's own limit, in every
// way a value is read.
func TestScannerDepth(t *testing.T) {
	for _, open := range []string{"[", `{"a":`} {
		closeWith := "]"
		if open != "[" {
			closeWith = "}"
		}
		at := strings.Repeat(open, MaxDepth) + "1" + strings.Repeat(closeWith, MaxDepth)
		over := strings.Repeat(open, MaxDepth+1) + "1" + strings.Repeat(closeWith, MaxDepth+1)
		var v any
		require.NoError(t, json.Unmarshal([]byte(at), &v))
		require.Error(t, json.Unmarshal([]byte(over), &v))

		_, err := Canonicalize([]byte(at))
		assert.NoError(t, err)
		_, err = Canonicalize([]byte(over))
		assert.ErrorIs(t, err, ErrSyntax)

		s := &scanner{data: []byte(over)}
		_, err = s.anyValue()
		assert.ErrorIs(t, err, ErrSyntax)
		s = &scanner{data: []byte(at)}
		_, err = s.anyValue()
		assert.NoError(t, err)
		assert.Equal(t, 0, s.depth, "depth restored")
	}
}

// Strings decode as encoding/json decodes them, invalid UTF-8 and lone
// surrogates included.
func TestUnquoteMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{
		`""`, `"plain"`, `"\"\\\/\b\f\n\r\t"`, `"\u0041\u00e9\u20ac"`, `"\ud83d\ude00"`, `"\ud83d"`,
		`"\ud83dx"`, `"\ud83d\u0041"`, `"\ude00\ud83d"`, `"\ud83d\ud83d\ude00"`, "\"\xff\"", "\"a\xe2\x82\"",
		"\"\xed\xa0\x80\"", `"é\n"`, "\"\xc3\xa9\"",
	} {
		var want string
		require.NoError(t, json.Unmarshal([]byte(s), &want), s)
		sc := &scanner{data: []byte(s)}
		got, err := sc.str()
		require.NoError(t, err, s)
		assert.Equal(t, want, got, "%q", s)
	}
}

// Member names fold as encoding/json folds them when it matches fields.
func TestFoldKey(t *testing.T) {
	type target struct {
		Length json.RawMessage `json:"length"`
		Scheme json.RawMessage `json:"scheme"`
	}
	for _, tt := range []struct {
		key   string
		match bool
	}{
		{"length", true}, {"LENGTH", true}, {"Length", true}, {"lengtH", true}, {"lenght", false},
		{"ſcheme", true}, {"SCHEME", true}, {"\u212aey", false}, {"length ", false},
	} {
		var v target
		require.NoError(t, json.Unmarshal([]byte(`{"`+tt.key+`":1}`), &v), tt.key)
		stdMatch := v.Length != nil || v.Scheme != nil
		require.Equal(t, tt.match, stdMatch, "encoding/json on %q", tt.key)
		i, exact := targetFileFields.match(tt.key)
		j, _ := keyFields.match(tt.key)
		assert.Equal(t, tt.match, i == 0 || j == 1, "fold of %q", tt.key)
		assert.Equal(t, tt.key == "length", exact && i == 0)
	}
}

// parseInt reads integers as strconv.ParseInt does, on its fast path too.
func TestParseInt(t *testing.T) {
	for _, s := range []string{"0", "-0", "7", "-7", "123456789012345678", "-123456789012345678",
		"9223372036854775807", "-9223372036854775808", "9223372036854775808", "1.0", "1e2", "", "-"} {
		n, err := parseInt([]byte(s))
		var std struct{ N int64 }
		werr := json.Unmarshal([]byte(`{"N":`+s+`}`), &std)
		if s == "" || s == "-" {
			assert.Error(t, err, s)
			continue
		}
		require.Equal(t, werr == nil, err == nil, "%q: %v %v", s, werr, err)
		if err == nil {
			assert.Equal(t, std.N, n, s)
		}
	}
}
