package manifest

import (
	"bytes"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// FuzzParseCustom: the otaseal parser never panics, every refusal is
// classified (a named rule, or a class that is no schema error), and
// whatever it accepts survives write-then-read unchanged, with one spelling.
func FuzzParseCustom(f *testing.F) {
	f.Add([]byte(firmwareJSON("notes", "")))
	f.Add([]byte(firmwareJSON("security_version", "9007199254740991")))
	f.Add([]byte(deltaJSON("format", `"bsdiff40"`)))
	f.Add([]byte(deltaJSON("format", `"otaseal-zstd"`)))
	f.Add([]byte(`{"otaseal":{"kind":"firmware","version":"1.0.0-rc.1+b","security_version":0,"hardware_ids":["a"],"advisories":["x"],"severity":"critical"}}`))
	f.Add([]byte(firmwareJSON("rollout", testRolloutWire)))
	f.Add([]byte(firmwareJSON("withdrawn", `{"reason":"bricks rev B","advisories":["OTS-1"]}`)))
	f.Add([]byte(rolloutWith("waves", wavesJSON("0:100", "60:100", "120:10000"))))
	f.Add([]byte(rolloutWith("waves", wavesJSON("0:10000", "0:10000"))))
	f.Add([]byte(firmwareJSON("encryption", encryptionWire("", ""))))
	f.Add([]byte(deltaJSON("encryption", encryptionWire("recipients", ""))))
	f.Add([]byte(`{"otaseal":{"kind":"firmware","kind":"delta"}}`))
	f.Add([]byte(`{"a":1,"otaseal":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseCustom(data)
		if err != nil {
			var fe *FieldError
			if errors.As(err, &fe) {
				assert.NotContains(t, fe.Rule.String(), "rule(", "unnamed rule in %v", err)
			} else {
				assert.True(t, errors.Is(err, ErrNoOtaseal) || errors.Is(err, ErrMalformed) || errors.Is(err, ErrTooLarge), "unclassified: %v", err)
			}
			return
		}
		var tf TargetFile
		require.NoError(t, SetEntry(&tf, e), "accepted entry must be writable")
		again, err := ReadEntry(&tf)
		require.NoError(t, err)
		assert.Equal(t, e, again)
		first := bytes.Clone(*tf.Custom)
		require.NoError(t, SetEntry(&tf, again))
		assert.Equal(t, first, []byte(*tf.Custom), "one spelling per entry")
	})
}

// FuzzParseUnverified: the metadata parser never panics (nor lets go-tuf
// panic), for any role type, and what it accepts marshals to a document it
// accepts again with the same bytes.
func FuzzParseUnverified(f *testing.F) {
	r := newTestRepo(f)
	for _, doc := range [][]byte{r.rootJSON, r.tsJSON, r.snapJSON, r.targetsJSON} {
		f.Add(doc)
	}
	f.Add([]byte(`{"signed":{"_type":"targets","targets":{"x":null}},"signatures":[]}`))
	f.Add([]byte(`{"signed":{"_type":"targets","targets":{}},"Signed":{"_type":"targets","targets":{"x":null}},"signatures":[]}`))
	f.Add([]byte(`{"signed":{"_type":"targets","targets":{},"TARGETS":{"x":null}},"signatures":[]}`))
	f.Add([]byte(`{"signed":{"_type":"timestamp","spec_version":"1.0.31","version":1,"expires":"2030-01-01T00:00:00Z","meta":{}},"signatures":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRole[Root](t, RoleRoot, data)
		fuzzRole[Timestamp](t, RoleTimestamp, data)
		fuzzRole[Snapshot](t, RoleSnapshot, data)
		fuzzRole[Targets](t, RoleTargets, data)
	})
}

func fuzzRole[T Root | Timestamp | Snapshot | Targets](t *testing.T, role string, data []byte) {
	md, err := ParseUnverified[T](role, data, Limits{})
	if err != nil {
		return
	}
	out, err := md.ToBytes(false)
	require.NoError(t, err)
	md2, err := ParseUnverified[T](role, out, Limits{})
	require.NoError(t, err, "re-parse of %s", out)
	out2, err := md2.ToBytes(false)
	require.NoError(t, err)
	assert.Equal(t, string(out), string(out2))
}

// FuzzParseVersion: a parsed version prints as its input and equals itself.
func FuzzParseVersion(f *testing.F) {
	for _, s := range []string{"1.2.3", "0.0.0-alpha.1+build.5", "1.0.0-beta.11", "01.2.3", "1.2", "v1.2.3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseVersion(s)
		if err != nil {
			return
		}
		assert.Equal(t, s, v.String())
		assert.Equal(t, 0, v.Compare(v))
		w, err := ParseVersion(v.String())
		require.NoError(t, err)
		assert.Equal(t, 0, v.Compare(w))
	})
}

// FuzzParseControl: the rollout control parser never panics, every refusal
// is classified, and what it accepts has one spelling.
func FuzzParseControl(f *testing.F) {
	f.Add([]byte(controlJSON(`{"state":"paused","reason":"error rate"}`)))
	f.Add([]byte(controlJSON(`{"state":"stopped"}`)))
	f.Add([]byte(controlJSON(`{"state":"capped","cap_basis_points":2500}`)))
	f.Add([]byte(controlJSON(`{"state":"capped","cap_basis_points":10001}`)))
	f.Add([]byte(controlJSON(`{"state":"paused","start":"2020-01-01T00:00:00Z"}`)))
	f.Add([]byte(`{"otaseal-control":{"a":{"state":"paused"},"b":{"state":"capped","cap_basis_points":0}}}`))
	f.Add([]byte(`{"otaseal-control":{}}`))
	f.Add([]byte(`{"otaseal-control":{"a":{"state":"paused","state":"capped"}}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseControl(data)
		if err != nil {
			var fe *FieldError
			if errors.As(err, &fe) {
				assert.NotContains(t, fe.Rule.String(), "rule(", "unnamed rule in %v", err)
			} else {
				assert.True(t, errors.Is(err, ErrMalformed) || errors.Is(err, ErrTooLarge), "unclassified: %v", err)
			}
			return
		}
		out, err := MarshalControl(*c)
		require.NoError(t, err, "accepted control must be writable")
		again, err := ParseControl(out)
		require.NoError(t, err)
		assert.Equal(t, c, again)
		out2, err := MarshalControl(*again)
		require.NoError(t, err)
		assert.Equal(t, out, out2, "one spelling per control")
	})
}
