package verify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/otaseal/otaseal/internal/tuftest"
	"github.com/otaseal/otaseal/manifest"
	"github.com/secure-systems-lab/go-securesystemslib/cjson"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// The differential test of the one-pass targets verification
// (fastverify.go, manifest.ParseTargetsUnverified) against go-tuf's
// FromBytes and VerifyDelegate behind otaseal's ParseUnverified checks, on
// generated documents rewritten in ways that keep or change their meaning.
// Bugs aside: where go-tuf panics, otaseal must refuse; where go-tuf
// type-checks one "signed" member and decodes another (two members whose
// names differ only in case), otaseal refuses (documented in
// manifest.ParseTargetsUnverified).

// fixture is a delegator and the signers of the role it delegates.
type fixture struct {
	root    *metadata.Metadata[metadata.RootType]
	signers []tuftest.Signer
}

func newFixture(t testing.TB, keys, threshold int) *fixture {
	f := &fixture{root: metadata.Root(testNow.AddDate(1, 0, 0))}
	for i := 0; i < keys; i++ {
		s := tuftest.NewSigner(t, fmt.Sprintf("fast targets %d", i))
		f.signers = append(f.signers, s)
		require.NoError(t, f.root.Signed.AddKey(s.Key, metadata.TARGETS))
	}
	f.root.Signed.Roles[metadata.TARGETS].Threshold = threshold
	return f
}

// targetsDoc builds a targets document of n firmware entries; with extras,
// unrecognised fields at every level, a delegation and odd strings.
func targetsDoc(t testing.TB, n int, extras bool) *metadata.Metadata[metadata.TargetsType] {
	md := metadata.Targets(testNow.AddDate(0, 3, 0))
	for i := 0; i < n; i++ {
		hw := fmt.Sprintf("hw-%d", i%50)
		path := fmt.Sprintf("%s/1.%d.%d/firmware.bin", hw, i/50, i%7)
		tf, err := metadata.TargetFile().FromBytes(path, []byte("image "+path), "sha256", "sha512")
		require.NoError(t, err)
		fw := manifest.Firmware{Version: manifest.MustParseVersion(fmt.Sprintf("1.%d.%d", i/50, i%7)), SecurityVersion: uint64(i % 9),
			HardwareIDs: []string{hw}, Severity: manifest.SeveritySecurity, Advisories: []string{"CVE-2026-0001"}}
		require.NoError(t, manifest.SetFirmware(tf, fw))
		md.Signed.Targets[path] = tf
	}
	if !extras {
		return md
	}
	md.Signed.UnrecognizedFields = map[string]any{
		"x-text":   "é \u2028 <&> \\ \" \x7f 𝄞",
		"x-num":    float64(100),
		"x-neg":    float64(-7),
		"x-nested": map[string]any{"b": []any{true, nil, "s", float64(3)}, "a": map[string]any{}},
	}
	for _, tf := range md.Signed.Targets {
		tf.UnrecognizedFields = map[string]any{"x-entry": "v"}
		break
	}
	k := tuftest.NewSigner(t, "fast delegated").Key
	k.UnrecognizedFields = map[string]any{"x-key": float64(1)}
	k.Value.UnrecognizedFields = map[string]any{"x-val": "w"}
	id, err := k.ID()
	require.NoError(t, err)
	md.Signed.Delegations = &metadata.Delegations{
		Keys: map[string]*metadata.Key{id: k},
		Roles: []metadata.DelegatedRole{{Name: "team", KeyIDs: []string{id}, Threshold: 1, Paths: []string{"team/*"},
			UnrecognizedFields: map[string]any{"x-role": []any{}}}},
		UnrecognizedFields: map[string]any{"x-del": nil},
	}
	return md
}

// theirs is what the client did before the one-pass path: otaseal's
// checks, go-tuf's parse, go-tuf's VerifyDelegate. A go-tuf panic is
// reported as such.
func theirs(delegator any, role string, data []byte) (md *metadata.Metadata[metadata.TargetsType], canon []byte, parseErr, verifyErr error, panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			panicked = true
		}
	}()
	md, parseErr = manifest.ParseUnverified[manifest.Targets](role, data, manifest.Limits{})
	if parseErr != nil {
		return nil, nil, parseErr, nil, false
	}
	canon, cerr := cjson.EncodeCanonical(md.Signed)
	if cerr != nil {
		// VerifyDelegate fails on it too; the one-pass parser refuses it.
		return nil, nil, cerr, nil, false
	}
	switch d := delegator.(type) {
	case *metadata.Metadata[metadata.RootType]:
		verifyErr = d.VerifyDelegate(role, md)
	case *metadata.Metadata[metadata.TargetsType]:
		verifyErr = d.VerifyDelegate(role, md)
	}
	return md, canon, nil, verifyErr, false
}

// foldedSigned reports the documented divergence: after the last member
// named exactly "signed" comes one named like it but for case, so go-tuf
// type-checks one member and decodes the other.
func foldedSigned(data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return false
	}
	folded := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return folded
		}
		key, _ := tok.(string)
		if key == "signed" {
			folded = false
		} else if strings.EqualFold(key, "signed") {
			folded = true
		}
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return folded
		}
	}
	return folded
}

// normalize clears go-tuf's empty maps of unrecognised fields, which the
// one-pass decoder leaves nil.
func normalize(md *metadata.Metadata[metadata.TargetsType]) {
	nz := func(m *map[string]any) {
		if len(*m) == 0 {
			*m = nil
		}
	}
	nz(&md.UnrecognizedFields)
	nz(&md.Signed.UnrecognizedFields)
	for i := range md.Signatures {
		nz(&md.Signatures[i].UnrecognizedFields)
	}
	for _, tf := range md.Signed.Targets {
		if tf != nil {
			nz(&tf.UnrecognizedFields)
		}
	}
	if d := md.Signed.Delegations; d != nil {
		nz(&d.UnrecognizedFields)
		for _, k := range d.Keys {
			if k != nil {
				nz(&k.UnrecognizedFields)
				nz(&k.Value.UnrecognizedFields)
			}
		}
		for i := range d.Roles {
			nz(&d.Roles[i].UnrecognizedFields)
		}
		if d.SuccinctRoles != nil {
			nz(&d.SuccinctRoles.UnrecognizedFields)
		}
	}
}

// compare checks the one-pass path against go-tuf on data and returns
// whether ours accepted it.
func compare(t *testing.T, delegator any, role string, data []byte) bool {
	t.Helper()
	theirMD, theirCanon, parseErr, verifyErr, panicked := theirs(delegator, role, data)
	parsed, ourParseErr := manifest.ParseTargetsUnverified(role, data, manifest.Limits{})
	ourMD, ourErr := verifyTargets(delegator, role, data, manifest.Limits{})
	if panicked || foldedSigned(data) {
		// Bugs aside: otaseal refuses what crashes go-tuf or what it reads
		// two ways.
		if panicked {
			require.Error(t, ourErr, "go-tuf panics on this document; otaseal must refuse it")
		}
		return ourErr == nil
	}
	theirOK := parseErr == nil && verifyErr == nil
	require.Equal(t, theirOK, ourErr == nil, "go-tuf: parse %v, verify %v\notaseal: %v", parseErr, verifyErr, ourErr)
	require.Equal(t, parseErr == nil, ourParseErr == nil, "go-tuf parse: %v\notaseal parse: %v", parseErr, ourParseErr)
	if parseErr == nil {
		// Both parsed: same content, same signed bytes.
		normalize(theirMD)
		assert.Equal(t, theirMD, parsed.Metadata)
		if theirCanon != nil {
			assert.Equal(t, string(theirCanon), string(parsed.Canonical))
		}
	}
	if ourErr == nil && parsed != nil {
		assert.Same(t, parsed.Metadata.Signed.Targets[""], ourMD.Signed.Targets[""])
	}
	return ourErr == nil
}

// rewrite re-emits a JSON document member by member, in ways chosen by
// kind and rng. Meaning-preserving kinds: reorder, space, escape, number
// (for numbers that decode to the same float64 in unrecognised fields).
// Meaning-changing kinds: duplicate, fold, extra, bignum.
func rewrite(t testing.TB, data []byte, kind string, rng *rand.Rand) []byte {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	require.NoError(t, dec.Decode(&v))
	// Re-read members in order: decode into an ordered tree.
	tree := orderedTree(t, data)
	var buf bytes.Buffer
	emit(&buf, tree, kind, rng, 0)
	return buf.Bytes()
}

type member struct {
	key string
	val *node
}

type node struct {
	obj     []member
	arr     []*node
	isObj   bool
	isArr   bool
	literal string // scalar as JSON text (strings decoded in str)
	str     *string
}

func orderedTree(t testing.TB, data []byte) *node {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var read func() *node
	read = func() *node {
		tok, err := dec.Token()
		require.NoError(t, err)
		switch tok := tok.(type) {
		case json.Delim:
			n := &node{isObj: tok == '{', isArr: tok == '['}
			for dec.More() {
				if n.isObj {
					k, err := dec.Token()
					require.NoError(t, err)
					n.obj = append(n.obj, member{k.(string), read()})
				} else {
					n.arr = append(n.arr, read())
				}
			}
			_, err := dec.Token()
			require.NoError(t, err)
			return n
		case string:
			return &node{str: &tok}
		case json.Number:
			return &node{literal: string(tok)}
		case bool:
			return &node{literal: fmt.Sprint(tok)}
		default:
			return &node{literal: "null"}
		}
	}
	return read()
}

func emitString(buf *bytes.Buffer, s string, escape bool, rng *rand.Rand) {
	// go-tuf reads hex (hashes, signatures) and times without unescaping:
	// escaping them changes their meaning, which is not this rewrite's
	// point (the fuzz target tries it).
	escape = escape && strings.Trim(s, "0123456789abcdefTZ:-") != ""
	buf.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			buf.WriteByte('\\')
			buf.WriteRune(r)
		case r < 0x20 || escape && rng.IntN(3) == 0:
			if r >= 0x10000 {
				r1, r2 := (r-0x10000)>>10+0xD800, (r-0x10000)&0x3FF+0xDC00
				fmt.Fprintf(buf, "\\u%04x\\u%04X", r1, r2)
			} else {
				fmt.Fprintf(buf, "\\u%04x", r)
			}
		default:
			buf.WriteRune(r)
		}
	}
	buf.WriteByte('"')
}

func space(buf *bytes.Buffer, kind string, rng *rand.Rand) {
	if kind == "space" {
		buf.WriteString([]string{"", " ", "\n", "\t", "\r\n  "}[rng.IntN(5)])
	}
}

func emit(buf *bytes.Buffer, n *node, kind string, rng *rand.Rand, depth int) {
	space(buf, kind, rng)
	switch {
	case n.isObj:
		members := append([]member(nil), n.obj...)
		if kind == "reorder" {
			rng.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
		}
		if len(members) > 0 && rng.IntN(4) == 0 {
			i := rng.IntN(len(members))
			switch kind {
			case "duplicate": // an earlier member of the same name
				members = append(members[:i], append([]member{{members[i].key, &node{literal: "null"}}}, members[i:]...)...)
			case "fold":
				members = append(members, member{strings.ToUpper(members[i].key), members[i].val})
			case "extra":
				members = append(members, member{"x-extra", &node{literal: "1"}})
			case "bignum":
				members = append(members, member{"x-big", &node{literal: []string{"1e400", "123456789012345678901234567890", "1.5", "1e2", "-0", "9007199254740993"}[rng.IntN(6)]}})
			}
		}
		buf.WriteByte('{')
		for i, m := range members {
			if i > 0 {
				buf.WriteByte(',')
			}
			space(buf, kind, rng)
			emitString(buf, m.key, kind == "escape", rng)
			space(buf, kind, rng)
			buf.WriteByte(':')
			emit(buf, m.val, kind, rng, depth+1)
		}
		space(buf, kind, rng)
		buf.WriteByte('}')
	case n.isArr:
		buf.WriteByte('[')
		for i, e := range n.arr {
			if i > 0 {
				buf.WriteByte(',')
			}
			emit(buf, e, kind, rng, depth+1)
		}
		space(buf, kind, rng)
		buf.WriteByte(']')
	case n.str != nil:
		emitString(buf, *n.str, kind == "escape", rng)
	default:
		lit := n.literal
		if kind == "number" && lit != "null" && lit != "true" && lit != "false" && rng.IntN(2) == 0 {
			lit = []string{lit + ".0", lit + "e0", lit + "E+0"}[rng.IntN(3)]
		}
		buf.WriteString(lit)
	}
	space(buf, kind, rng)
}

var rewriteKinds = []string{"reorder", "space", "escape", "number", "duplicate", "fold", "extra", "bignum"}

// signedDocs are the seeds: documents signed by 1 and by 3 keys, with and
// without unrecognised fields and delegations.
func signedDocs(t testing.TB) (one, three *fixture, docs [][]byte) {
	one, three = newFixture(t, 1, 1), newFixture(t, 3, 2)
	for _, f := range []*fixture{one, three} {
		for _, extras := range []bool{false, true} {
			docs = append(docs, tuftest.SignBytes(t, targetsDoc(t, 2, extras), f.signers...))
		}
	}
	return one, three, docs
}

func TestVerifyTargetsDifferential(t *testing.T) {
	one, three, docs := signedDocs(t)
	accepted := map[string]int{}
	for i, doc := range docs {
		f := one
		if i >= 2 {
			f = three
		}
		t.Run(fmt.Sprintf("doc%d/valid", i), func(t *testing.T) {
			assert.True(t, compare(t, f.root, metadata.TARGETS, doc))
		})
		for _, kind := range rewriteKinds {
			for seed := uint64(0); seed < 8; seed++ {
				data := rewrite(t, doc, kind, rand.New(rand.NewPCG(seed, uint64(i))))
				t.Run(fmt.Sprintf("doc%d/%s/%d", i, kind, seed), func(t *testing.T) {
					if compare(t, f.root, metadata.TARGETS, data) {
						accepted[kind]++
					}
				})
			}
		}
	}
	t.Logf("accepted by both, per rewrite: %v", accepted)
	// Rewrites that keep the meaning keep the signature valid.
	for _, kind := range []string{"reorder", "space", "escape"} {
		assert.Equal(t, 4*8, accepted[kind], kind)
	}
}

// TestVerifyTargetsRefusals pins documents both refuse, and the ones
// otaseal refuses where go-tuf crashes.
func TestVerifyTargetsRefusals(t *testing.T) {
	one, _, docs := signedDocs(t)
	doc := string(docs[0])
	tests := []struct{ name, data string }{
		{"empty", ""},
		{"null", "null"},
		{"array", "[]"},
		{"trailing", doc + "x"},
		{"nul after", doc + "\x00"},
		{"null target", strings.Replace(doc, `"targets":{`, `"targets":{"x":null,`, 1)},
		{"Signed with a null target", strings.Replace(doc, `{"signatures"`, `{"Signed":{"_type":"targets","targets":{"x":null}},"signatures"`, 1)},
		{"Signed after signed", strings.TrimSuffix(doc, "}") + `,"Signed":{}}`},
		{"deep", strings.Repeat("[", 10001) + strings.Repeat("]", 10001)},
		{"signed null", `{"signed":null,"signatures":[]}`},
		{"big number", strings.Replace(doc, `"version":1`, `"version":1,"x":1e999`, 1)},
		{"float", strings.Replace(doc, `"version":1`, `"version":1.5`, 1)},
		{"invalid utf-8 hash", strings.Replace(doc, `"sha256":"`, "\"sha256\":\"\xff", 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.False(t, compare(t, one.root, metadata.TARGETS, []byte(tt.data)))
		})
	}
}

// FuzzVerifyTargetsDifferential: for any bytes, the one-pass path and
// go-tuf agree on accept or refuse (bugs aside, see above), and on the
// parsed content and the signed bytes whenever both parse.
func FuzzVerifyTargetsDifferential(f *testing.F) {
	one, three, docs := signedDocs(f)
	for i, doc := range docs {
		f.Add(byte(i/2), doc)
		f.Add(byte(i/2+2), doc)
		for j, kind := range rewriteKinds {
			f.Add(byte(i/2+2*(j%2)), rewrite(f, doc, kind, rand.New(rand.NewPCG(uint64(j), uint64(i)))))
		}
	}
	f.Add(byte(0), []byte(`{"signed":{"_type":"targets","spec_version":"1.0","version":1,"targets":{}},"signatures":[],"Signatures":[{"keyid":"a","sig":"00"}]}`))
	// The same keys delegated by root, by a targets role's list of roles,
	// and by succinct hash bins (which go-tuf applies to any role name).
	byRoles, bySuccinct := metadata.Targets(testNow.AddDate(1, 0, 0)), metadata.Targets(testNow.AddDate(1, 0, 0))
	byRoles.Signed.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{},
		Roles: []metadata.DelegatedRole{{Name: metadata.TARGETS, KeyIDs: one.root.Signed.Roles[metadata.TARGETS].KeyIDs, Threshold: 1, Paths: []string{"*"}}}}
	bySuccinct.Signed.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{},
		SuccinctRoles: &metadata.SuccinctRoles{KeyIDs: three.root.Signed.Roles[metadata.TARGETS].KeyIDs, Threshold: 2, BitLength: 4, NamePrefix: "bin"}}
	for id, k := range one.root.Signed.Keys {
		byRoles.Signed.Delegations.Keys[id] = k
	}
	for id, k := range three.root.Signed.Keys {
		bySuccinct.Signed.Delegations.Keys[id] = k
	}
	delegators := []any{one.root, three.root, byRoles, bySuccinct}
	f.Fuzz(func(t *testing.T, which byte, data []byte) {
		compare(t, delegators[int(which)%len(delegators)], metadata.TARGETS, data)
	})
}

// TestVerifySignedDelegators: the delegator side of the rules, against
// go-tuf's VerifyDelegate on the same document.
func TestVerifySignedDelegators(t *testing.T) {
	three := newFixture(t, 3, 2)
	doc := tuftest.SignBytes(t, targetsDoc(t, 2, false), three.signers[0], three.signers[1])
	ids := three.root.Signed.Roles[metadata.TARGETS].KeyIDs
	withRole := func(f func(r *metadata.Metadata[metadata.RootType])) *metadata.Metadata[metadata.RootType] {
		b, err := three.root.ToBytes(false)
		require.NoError(t, err)
		r, err := metadata.Root().FromBytes(b)
		require.NoError(t, err)
		f(r)
		return r
	}
	tests := []struct {
		name string
		root *metadata.Metadata[metadata.RootType]
		want bool
	}{
		{"as is", three.root, true},
		{"threshold 3", withRole(func(r *metadata.Metadata[metadata.RootType]) { r.Signed.Roles["targets"].Threshold = 3 }), false},
		{"threshold 0", withRole(func(r *metadata.Metadata[metadata.RootType]) { r.Signed.Roles["targets"].Threshold = 0 }), false},
		{"no keyids", withRole(func(r *metadata.Metadata[metadata.RootType]) { r.Signed.Roles["targets"].KeyIDs = nil }), false},
		{"no role", withRole(func(r *metadata.Metadata[metadata.RootType]) { delete(r.Signed.Roles, "targets") }), false},
		{"unsigning key missing", withRole(func(r *metadata.Metadata[metadata.RootType]) { delete(r.Signed.Keys, ids[2]) }), false},
		{"unsigning key malformed", withRole(func(r *metadata.Metadata[metadata.RootType]) { r.Signed.Keys[ids[2]].Value.PublicKey = "abcd" }), false},
		{"one key twice", withRole(func(r *metadata.Metadata[metadata.RootType]) {
			k := *r.Signed.Keys[ids[0]]
			r.Signed.Keys["alias"] = &k
			r.Signed.Roles["targets"].KeyIDs = []string{ids[0], "alias"}
		}), false},
		{"one key twice, threshold 1", withRole(func(r *metadata.Metadata[metadata.RootType]) {
			k := *r.Signed.Keys[ids[0]]
			r.Signed.Keys["alias"] = &k
			r.Signed.Roles["targets"].KeyIDs = []string{ids[0], "alias"}
			r.Signed.Roles["targets"].Threshold = 1
		}), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			md, err := metadata.Targets().FromBytes(doc)
			require.NoError(t, err)
			theirErr := tt.root.VerifyDelegate(metadata.TARGETS, md)
			_, ourErr := verifyTargets(tt.root, metadata.TARGETS, doc, manifest.Limits{})
			assert.Equal(t, tt.want, theirErr == nil, "go-tuf: %v", theirErr)
			assert.Equal(t, tt.want, ourErr == nil, "otaseal: %v", ourErr)
			if tt.name == "threshold 3" {
				// The evidence names who signed.
				var te *manifest.ThresholdError
				require.ErrorAs(t, ourErr, &te)
				assert.Equal(t, ids[:2], te.SignedBy)
				assert.Equal(t, ids[2:], te.Missing)
				assert.ErrorIs(t, ourErr, manifest.ErrThreshold)
			}
		})
	}
}
