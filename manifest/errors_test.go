package manifest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

func TestTranslateError(t *testing.T) {
	tests := []struct {
		in   error
		want error
	}{
		{&metadata.ErrUnsignedMetadata{Msg: "x"}, ErrThreshold},
		{&metadata.ErrBadVersionNumber{Msg: "x"}, ErrMetadataVersionLower},
		{&metadata.ErrEqualVersionNumber{Msg: "x"}, ErrMetadataVersionEqual},
		{&metadata.ErrExpiredMetadata{Msg: "x"}, ErrExpired},
		{&metadata.ErrLengthOrHashMismatch{Msg: "x"}, ErrLengthOrHash},
		{&metadata.ErrRepository{Msg: "x"}, ErrRepository},
		{&metadata.ErrValue{Msg: "x"}, ErrMalformed},
		{&metadata.ErrType{Msg: "x"}, ErrMalformed},
		{fmt.Errorf("wrapped: %w", &metadata.ErrExpiredMetadata{Msg: "x"}), ErrExpired},
	}
	for _, tc := range tests {
		got := TranslateError(tc.in)
		assert.ErrorIs(t, got, tc.want, "%T", tc.in)
		assert.Contains(t, got.Error(), tc.in.Error(), "go-tuf's message is kept as evidence")
		// Callers see only our sentinel, not go-tuf's structs.
		assert.False(t, errors.As(got, new(*metadata.ErrRepository)), "%T leaks", tc.in)
	}
	plain := errors.New("plain")
	assert.Same(t, plain, TranslateError(plain))
	// Downloads are package verify's business: go-tuf's download errors
	// are not metadata errors and pass through.
	for _, dl := range []error{&metadata.ErrDownloadLengthMismatch{Msg: "x"}, &metadata.ErrDownloadHTTP{StatusCode: 404, URL: "u"}, &metadata.ErrDownload{Msg: "x"}} {
		assert.Same(t, dl, TranslateError(dl))
	}
	assert.NoError(t, TranslateError(nil))
}

// The go-tuf state machine's refusals come out as our sentinels.
func TestTranslateTrustedMetadataErrors(t *testing.T) {
	r := newTestRepo(t)
	tm := trustedFor(t, r)
	tm.RefTime = r.now.AddDate(0, 0, 2) // timestamp expired
	_, err := tm.UpdateTimestamp(r.tsJSON)
	assert.ErrorIs(t, TranslateError(err), ErrExpired)

	tm = trustedFor(t, r)
	_, err = tm.UpdateTimestamp(r.tsJSON)
	require.NoError(t, err)
	_, err = tm.UpdateTimestamp(r.tsJSON)
	assert.ErrorIs(t, TranslateError(err), ErrMetadataVersionEqual)

	// Signed by the wrong key: threshold not met.
	wrong := newTestRepo(t)
	wrong.timestamp.Signed.Version = 2
	wrong.signers[RoleTimestamp] = wrong.signers[RoleSnapshot]
	wrong.resign(t)
	tm = trustedFor(t, r)
	_, err = tm.UpdateTimestamp(wrong.tsJSON)
	assert.ErrorIs(t, TranslateError(err), ErrThreshold)
}

func trustedFor(t *testing.T, r *testRepo) *trustedmetadataT {
	tm, err := newTrusted(r.rootJSON)
	require.NoError(t, err)
	tm.RefTime = r.now
	return tm
}

func TestSignedAt(t *testing.T) {
	var ts Timestamp
	_, ok, err := SignedAt(&ts)
	assert.False(t, ok)
	assert.NoError(t, err)

	at := time.Date(2026, 11, 26, 12, 0, 0, 999, time.FixedZone("x", 3600))
	SetSignedAt(&ts, at)
	got, ok, err := SignedAt(&ts)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, at.Truncate(time.Second).UTC(), got)

	for _, bad := range []any{7, "2026-11-26T12:00:00+01:00", "2026-11-26T12:00:00.5Z", "yesterday", ""} {
		ts.UnrecognizedFields[SignedAtField] = bad
		_, ok, err := SignedAt(&ts)
		assert.ErrorIs(t, err, ErrSignedAt, "%v", bad)
		assert.False(t, ok)
	}
}
