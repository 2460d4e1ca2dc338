package fleet

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func testReport() *Report {
	return &Report{
		DeviceID: "gw-0001", RolloutID: "serial-0001", HardwareID: "acme-gw-r2", Seq: 7,
		Running:  Release{Target: "acme-gw-r2/2.4.1/firmware.bin", Version: "2.4.1"},
		Tried:    Release{Target: "acme-gw-r2/2.4.1/firmware.bin", Version: "2.4.1"},
		Result:   Confirmed,
		Metadata: MetadataVersions{Root: 1, Timestamp: 42, Snapshot: 17, Targets: 5},
		Time:     time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
	}
}

func testKey(t testing.TB) ed25519.PrivateKey {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return priv
}

func TestReportRoundTrip(t *testing.T) {
	for _, edit := range []func(*Report){
		func(*Report) {},
		func(r *Report) { r.Result, r.Running = Reverted, Release{Version: "1.0.0"} },
		func(r *Report) {
			r.Result, r.ErrorClass, r.Detail = Failed, ErrorVerification, "bad signature on snapshot"
		},
		func(r *Report) { r.Result, r.SkipReason, r.Tried = Skipped, SkipUpToDate, Release{} },
		func(r *Report) { r.Result, r.SkipReason = Skipped, SkipPaused },
		func(r *Report) { r.Time = time.Time{} },
	} {
		r := testReport()
		edit(r)
		b, err := r.Marshal()
		require.NoError(t, err)
		got, err := ParseReport(b)
		require.NoError(t, err, string(b))
		assert.Equal(t, r, got)
	}
}

func TestReportValidateRefuses(t *testing.T) {
	for name, edit := range map[string]func(*Report){
		"no device":            func(r *Report) { r.DeviceID = "" },
		"space in device":      func(r *Report) { r.DeviceID = "gw 1" },
		"long rollout id":      func(r *Report) { r.RolloutID = strings.Repeat("x", MaxIDLen+1) },
		"control char":         func(r *Report) { r.HardwareID = "acme\n" },
		"seq zero":             func(r *Report) { r.Seq = 0 },
		"seq too big":          func(r *Report) { r.Seq = 1<<53 + 1 },
		"bad version":          func(r *Report) { r.Running.Version = "2.4" },
		"no tried":             func(r *Report) { r.Tried = Release{} },
		"tried without target": func(r *Report) { r.Tried.Target = "" },
		"unknown result":       func(r *Report) { r.Result = "exploded" },
		"failed no class":      func(r *Report) { r.Result = Failed },
		"class not failed":     func(r *Report) { r.ErrorClass = ErrorNetwork },
		"unknown class":        func(r *Report) { r.Result, r.ErrorClass = Failed, "cosmic-ray" },
		"skipped no reason":    func(r *Report) { r.Result = Skipped },
		"reason not skipped":   func(r *Report) { r.SkipReason = SkipPaused },
		"negative metadata":    func(r *Report) { r.Metadata.Snapshot = -1 },
		"local time":           func(r *Report) { r.Time = r.Time.Local().Add(time.Millisecond) },
		"long detail":          func(r *Report) { r.Detail = strings.Repeat("d", MaxDetailLen+1) },
		"long target":          func(r *Report) { r.Tried.Target = strings.Repeat("t", MaxTargetLen+1) },
	} {
		r := testReport()
		edit(r)
		_, err := r.Marshal()
		assert.ErrorIs(t, err, ErrInvalid, name)
	}
}

// TestParseReportOneEncoding: every other spelling of a valid report is
// refused, so that its digest names it.
func TestParseReportOneEncoding(t *testing.T) {
	b, err := testReport().Marshal()
	require.NoError(t, err)
	s := string(b)
	for name, bad := range map[string]string{
		"whitespace":       strings.Replace(s, `"seq":7`, `"seq": 7`, 1),
		"repeated member":  strings.Replace(s, `"seq":7`, `"seq":8,"seq":7`, 1),
		"unknown member":   strings.Replace(s, `"seq":7`, `"seq":7,"admin":true`, 1),
		"escaped":          strings.Replace(s, `"gw-0001"`, `"gw\u002d0001"`, 1),
		"float seq":        strings.Replace(s, `"seq":7`, `"seq":7.0`, 1),
		"trailing":         s + " ",
		"second value":     s + "{}",
		"format 2":         strings.Replace(s, `"format":1`, `"format":2`, 1),
		"empty tried":      strings.Replace(s, `"tried":{"target":"acme-gw-r2/2.4.1/firmware.bin","version":"2.4.1"}`, `"tried":{}`, 1),
		"bad time":         strings.Replace(s, `2026-03-01T12:00:00Z`, `2026-03-01T12:00:00+00:00`, 1),
		"member reordered": strings.Replace(s, `"format":1,"device_id":"gw-0001"`, `"device_id":"gw-0001","format":1`, 1),
	} {
		require.NotEqual(t, s, bad, name)
		_, err := ParseReport([]byte(bad))
		assert.Error(t, err, name)
	}
	_, err = ParseReport([]byte(strings.Repeat(" ", MaxEnvelopeSize+1)))
	assert.ErrorIs(t, err, ErrTooLarge)
}

func TestSealOpen(t *testing.T) {
	key := testKey(t)
	r := testReport()
	env, err := Seal(r, key)
	require.NoError(t, err)
	e, err := ParseEnvelope(env)
	require.NoError(t, err)
	assert.True(t, e.Signed())
	got, err := e.Open(key.Public().(ed25519.PublicKey))
	require.NoError(t, err)
	assert.Equal(t, r, got)

	// Another device's key does not open it.
	other := testKey(t)
	_, err = e.Open(other.Public().(ed25519.PublicKey))
	assert.ErrorIs(t, err, ErrSignature)

	// An unsigned envelope does not open with a key.
	unsigned, err := SealUnsigned(r)
	require.NoError(t, err)
	ue, err := ParseEnvelope(unsigned)
	require.NoError(t, err)
	_, err = ue.Open(key.Public().(ed25519.PublicKey))
	assert.ErrorIs(t, err, ErrSignature)
	got, err = ue.OpenUnsigned()
	require.NoError(t, err)
	assert.Equal(t, r, got)
	assert.Equal(t, e.Digest(), ue.Digest(), "the digest names the report, not the signature")
}

// TestEnvelopeCorruption flips every byte of a sealed envelope: each
// result is refused by ParseEnvelope or by Open, never opened.
func TestEnvelopeCorruption(t *testing.T) {
	key := testKey(t)
	pub := key.Public().(ed25519.PublicKey)
	env, err := Seal(testReport(), key)
	require.NoError(t, err)
	for i := range env {
		b := []byte(string(env))
		b[i] ^= 0x01
		e, err := ParseEnvelope(b)
		if err != nil {
			continue
		}
		_, err = e.Open(pub)
		assert.Error(t, err, "byte %d flipped: %s", i, b)
	}
}

// TestEnvelopeDeviceMismatch: an envelope claiming another device than
// its report is refused, even correctly signed.
func TestEnvelopeDeviceMismatch(t *testing.T) {
	key := testKey(t)
	payload, err := testReport().Marshal()
	require.NoError(t, err)
	sig := ed25519.Sign(key, signed(payload))
	b, err := json.Marshal(wireEnvelope{DeviceID: "gw-0002", Payload: base64.StdEncoding.EncodeToString(payload), Signature: base64.StdEncoding.EncodeToString(sig)})
	require.NoError(t, err)
	e, err := ParseEnvelope(b)
	require.NoError(t, err)
	_, err = e.Open(key.Public().(ed25519.PublicKey))
	assert.ErrorIs(t, err, ErrInvalid)
}

func TestSealRefusesOtherKeys(t *testing.T) {
	_, err := Seal(testReport(), fakeSigner{})
	assert.Error(t, err)
}

func TestHealthRuleTripped(t *testing.T) {
	rule := HealthRule{FailureShare: 500, MinAttempts: 20}
	for _, c := range []struct {
		attempts, failures int64
		want               bool
	}{
		{19, 19, false}, // too few attempts to judge
		{20, 0, false},
		{20, 1, true}, // 5% exactly
		{21, 1, false},
		{100, 4, false},
		{100, 5, true},
		{1000, 49, false},
		{1000, 50, true},
	} {
		assert.Equal(t, c.want, rule.Tripped(c.attempts, c.failures), "%d of %d", c.failures, c.attempts)
	}
	assert.Error(t, HealthRule{FailureShare: 0, MinAttempts: 1}.Validate())
	assert.Error(t, HealthRule{FailureShare: 10001, MinAttempts: 1}.Validate())
	assert.Error(t, HealthRule{FailureShare: 1, MinAttempts: 0}.Validate())
	assert.Equal(t, "pause when reverted+failed >= 5% of at least 20 attempts", rule.String())
	assert.Equal(t, "pause when reverted+failed >= 0.50% of at least 20 attempts", HealthRule{50, 20}.String())
}

func TestHealthRulesRoundTrip(t *testing.T) {
	r := &HealthRules{Releases: map[string]HealthRule{"b/1.0.0/firmware.bin": {500, 20}, "a/1.0.0/firmware.bin": {1000, 5}}}
	b, err := r.Marshal()
	require.NoError(t, err)
	got, err := ParseHealthRules(b)
	require.NoError(t, err)
	assert.Equal(t, r, got)
	for _, bad := range []string{
		`{"otaseal_health_rules":2,"releases":{}}`,
		`{"otaseal_health_rules":1,"releases":{"a":{"failure_basis_points":0,"min_attempts":1}}}`,
		`{"otaseal_health_rules":1,"releases":{"a":{"failure_basis_points":1,"min_attempts":1,"x":1}}}`,
		`not json`,
	} {
		_, err := ParseHealthRules([]byte(bad))
		assert.Error(t, err, bad)
	}
}

func TestEnrolment(t *testing.T) {
	e := NewEnrolment()
	k1, k2 := testKey(t), testKey(t)
	d1 := Device{ID: "gw-1", HardwareID: "acme-gw-r2", RolloutID: "r1", PublicKey: k1.Public().(ed25519.PublicKey)}
	require.NoError(t, e.Add(d1))
	assert.ErrorIs(t, e.Add(d1), ErrEnrolled, "same ID")
	assert.ErrorIs(t, e.Add(Device{ID: "gw-2", HardwareID: "h", RolloutID: "r2", PublicKey: d1.PublicKey}), ErrEnrolled, "same key")
	assert.ErrorIs(t, e.Add(Device{ID: "gw-2", HardwareID: "h", RolloutID: "r2", PublicKey: []byte{1, 2}}), ErrInvalid)
	require.NoError(t, e.Add(Device{ID: "gw-0", HardwareID: "h", RolloutID: "r0", PublicKey: k2.Public().(ed25519.PublicKey)}))
	b, err := e.Marshal()
	require.NoError(t, err)
	got, err := ParseEnrolment(b)
	require.NoError(t, err)
	assert.Equal(t, e.Devices(), got.Devices())
	assert.Equal(t, "gw-0", got.Devices()[0].ID)
	d, ok := got.Lookup("gw-1")
	require.True(t, ok)
	assert.Equal(t, d1, d)

	dup := strings.Replace(string(b), `"gw-0"`, `"gw-1"`, 1)
	_, err = ParseEnrolment([]byte(dup))
	assert.ErrorIs(t, err, ErrEnrolled)
	_, err = ParseEnrolment([]byte(`{"otaseal_enrolment":1,"devices":[],"extra":1}`))
	assert.ErrorIs(t, err, ErrMalformed)
	_, err = ParseEnrolment([]byte(`{"otaseal_enrolment":1,"devices":[]} {}`))
	assert.ErrorIs(t, err, ErrMalformed)
}

func TestQueueBoundedAndOrdered(t *testing.T) {
	dir := t.TempDir()
	q, err := OpenQueue(dir, 3)
	require.NoError(t, err)
	key := testKey(t)
	var dropped int
	for i := 0; i < 5; i++ {
		seq, err := q.NextSeq(time.Time{})
		require.NoError(t, err)
		assert.Equal(t, uint64(i+1), seq)
		r := testReport()
		r.Seq = seq
		env, err := Seal(r, key)
		require.NoError(t, err)
		n, err := q.Push(seq, env)
		require.NoError(t, err)
		dropped += n
	}
	assert.Equal(t, 2, dropped)
	pending, err := q.Pending()
	require.NoError(t, err)
	require.Len(t, pending, 3)
	assert.Equal(t, []uint64{3, 4, 5}, []uint64{pending[0].Seq, pending[1].Seq, pending[2].Seq})
	require.NoError(t, q.Remove(3))

	// A reopened queue (the agent restarted) continues the numbering.
	q2, err := OpenQueue(dir, 3)
	require.NoError(t, err)
	seq, err := q2.NextSeq(time.Time{})
	require.NoError(t, err)
	assert.Equal(t, uint64(6), seq)
	pending, err = q2.Pending()
	require.NoError(t, err)
	assert.Len(t, pending, 2)
}

// TestQueueSeqAfterWipe: numbers follow the trusted time, so a device
// whose state was wiped still numbers above what it sent before, and a
// clock that went back does not lower them.
func TestQueueSeqAfterWipe(t *testing.T) {
	t1 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	q, err := OpenQueue(t.TempDir(), 0)
	require.NoError(t, err)
	a, err := q.NextSeq(t1)
	require.NoError(t, err)
	b, err := q.NextSeq(t1)
	require.NoError(t, err)
	c, err := q.NextSeq(t1.Add(-time.Hour))
	require.NoError(t, err)
	assert.Equal(t, uint64(t1.Unix()), a)
	assert.Equal(t, a+1, b, "two reports in one second")
	assert.Equal(t, b+1, c, "a clock that went back lowers nothing")

	wiped, err := OpenQueue(t.TempDir(), 0)
	require.NoError(t, err)
	d, err := wiped.NextSeq(t1.Add(time.Minute))
	require.NoError(t, err)
	assert.Greater(t, d, c)
}

func TestErrorsAreDistinct(t *testing.T) {
	assert.False(t, errors.Is(ErrMalformed, ErrInvalid))
	assert.False(t, errors.Is(ErrSignature, ErrInvalid))
}
