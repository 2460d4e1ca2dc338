package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testSHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

func releaseIndexJSON(hw, path, entry string) string {
	return fmt.Sprintf(`{"hardware_id":%q,"targets":{%q:%s}}`, hw, path, entry)
}

var testIndexEntry = `{"length":4,"hashes":{"sha256":"` + testSHA256 + `"},"custom":` + firmwareJSON("notes", "") + `}`

func TestParseReleaseIndex(t *testing.T) {
	ix, err := ParseReleaseIndex([]byte(releaseIndexJSON("acme-gw-r2", "acme-gw-r2/1.0.0/fw.bin", testIndexEntry)), "acme-gw-r2")
	require.NoError(t, err)
	assert.Equal(t, "acme-gw-r2", ix.HardwareID)
	tf := ix.Targets["acme-gw-r2/1.0.0/fw.bin"]
	require.NotNil(t, tf)
	assert.Equal(t, int64(4), tf.Length)
	assert.Equal(t, "acme-gw-r2/1.0.0/fw.bin", tf.Path)
	assert.Equal(t, "acme-gw-r2/"+ReleaseIndexName, ReleaseIndexPath("acme-gw-r2"))

	for name, tc := range map[string]struct {
		doc  string
		want error
	}{
		"other hardware":  {releaseIndexJSON("acme-lock", "p", testIndexEntry), ErrRepository},
		"unknown member":  {`{"hardware_id":"acme-gw-r2","targets":{},"x":1}`, ErrSchema},
		"missing targets": {`{"hardware_id":"acme-gw-r2"}`, ErrSchema},
		"duplicate":       {`{"hardware_id":"acme-gw-r2","hardware_id":"acme-gw-r2","targets":{}}`, ErrSchema},
		"no sha256":       {releaseIndexJSON("acme-gw-r2", "p", `{"length":4,"hashes":{"sha512":"00"}}`), ErrMalformed},
		"negative length": {releaseIndexJSON("acme-gw-r2", "p", `{"length":-1,"hashes":{"sha256":"`+testSHA256+`"}}`), ErrMalformed},
		"not json":        {`{"hardware_id":`, ErrMalformed},
		"too large":       {`{"hardware_id":"` + strings.Repeat("a", MaxReleaseIndexSize) + `"}`, ErrTooLarge},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseReleaseIndex([]byte(tc.doc), "acme-gw-r2")
			assert.ErrorIs(t, err, tc.want)
		})
	}
}

// FuzzParseReleaseIndex: no panic; every refusal classified; what is
// accepted round-trips through JSON to the same index.
func FuzzParseReleaseIndex(f *testing.F) {
	f.Add([]byte(releaseIndexJSON("acme-gw-r2", "acme-gw-r2/1.0.0/fw.bin", testIndexEntry)))
	f.Add([]byte(`{"hardware_id":"acme-gw-r2","targets":{}}`))
	f.Add([]byte(`{"hardware_id":"acme-gw-r2","targets":{"a":{"length":1,"hashes":{"sha256":"` + testSHA256 + `"},"custom":{"x":1}}}}`))
	f.Add([]byte(`{"targets":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ix, err := ParseReleaseIndex(data, "acme-gw-r2")
		if err != nil {
			assert.True(t, errors.Is(err, ErrSchema) || errors.Is(err, ErrMalformed) || errors.Is(err, ErrTooLarge) || errors.Is(err, ErrRepository), "unclassified: %v", err)
			return
		}
		out, err := json.Marshal(ix)
		require.NoError(t, err)
		again, err := ParseReleaseIndex(out, "acme-gw-r2")
		require.NoError(t, err, "%s", out)
		require.Equal(t, len(ix.Targets), len(again.Targets))
		for p, tf := range ix.Targets {
			assert.True(t, tf.Equal(*again.Targets[p]), p)
		}
	})
}
