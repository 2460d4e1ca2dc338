package rollback

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	for _, e := range []envelope{
		{name: "r", seq: 1, present: true, data: []byte{}},
		{name: "metadata/targets", seq: 1 << 40, present: true, data: bytes.Repeat([]byte{7}, 1000)},
		{name: "x", seq: 3},
	} {
		got, err := decodeEnvelope(encodeEnvelope(e), 1<<20)
		require.NoError(t, err)
		assert.Equal(t, e, got)
	}
	_, err := decodeEnvelope(encodeEnvelope(envelope{name: "r", seq: 1, present: true, data: make([]byte, 11)}), 10)
	assert.ErrorIs(t, err, ErrRecordTooLarge)
}

// TestDecodeEnvelopeFields breaks each field of a valid envelope and
// recomputes the checksum, so the field checks (not the checksum) must
// catch it.
func TestDecodeEnvelopeFields(t *testing.T) {
	valid := encodeEnvelope(envelope{name: "r", seq: 1, present: true, data: []byte("abc")})
	reseal := func(mutate func(b []byte) []byte) []byte {
		b := mutate(bytes.Clone(valid[:len(valid)-checksumLen]))
		sum := sha256.Sum256(b)
		return append(b, sum[:]...)
	}
	tests := []struct {
		name   string
		mutate func(b []byte) []byte
		want   string
	}{
		{"magic", func(b []byte) []byte { b[0] = 'X'; return b }, "bad magic"},
		{"format", func(b []byte) []byte { b[4] = 2; return b }, "unknown format"},
		{"flags", func(b []byte) []byte { b[5] = 3; return b }, "unknown flags"},
		{"sequence 0", func(b []byte) []byte { binary.BigEndian.PutUint64(b[6:], 0); return b }, "sequence 0"},
		{"name length 0", func(b []byte) []byte { binary.BigEndian.PutUint16(b[14:], 0); return b }, "bad name length"},
		{"name length past end", func(b []byte) []byte { binary.BigEndian.PutUint16(b[14:], 9); return b }, "bad name length"},
		{"name control char", func(b []byte) []byte { b[16] = '\n'; return b }, "invalid record name"},
		{"data length short", func(b []byte) []byte { binary.BigEndian.PutUint32(b[17:], 2); return b }, "data length"},
		{"data length huge", func(b []byte) []byte { binary.BigEndian.PutUint32(b[17:], 1<<31); return b }, "larger than its limit"},
		{"deleted with data", func(b []byte) []byte { b[5] = 0; return b }, "deleted record with data"},
		{"trailing byte", func(b []byte) []byte { return append(b, 0) }, "data length"},
	}
	for _, tt := range tests {
		_, err := decodeEnvelope(reseal(tt.mutate), 1<<20)
		assert.ErrorContains(t, err, tt.want, tt.name)
	}
	_, err := decodeEnvelope(valid[:envelopeMin-1], 1<<20)
	assert.ErrorContains(t, err, "shorter than any record")
	got, err := decodeEnvelope(reseal(func(b []byte) []byte { return b }), 1<<20)
	require.NoError(t, err)
	assert.Equal(t, "abc", string(got.data))
}
