package fleet

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"io"
	"testing"
)

type fakeSigner struct{}

func (fakeSigner) Public() crypto.PublicKey { return "not a key" }
func (fakeSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, nil
}

// fuzzKey is a fixed key, so that the fuzzer can reach Open's success.
var fuzzKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

// FuzzParseEnvelope: untrusted bytes never panic; whatever parses and
// opens re-encodes to the same bytes.
func FuzzParseEnvelope(f *testing.F) {
	r := testReport()
	for _, edit := range []func(*Report){
		func(*Report) {},
		func(r *Report) { r.Result, r.ErrorClass = Failed, ErrorNetwork },
		func(r *Report) { r.Result, r.SkipReason, r.Tried = Skipped, SkipUpToDate, Release{} },
	} {
		c := *r
		edit(&c)
		env, err := Seal(&c, fuzzKey)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(env)
		unsigned, _ := SealUnsigned(&c)
		f.Add(unsigned)
	}
	f.Add([]byte(`{"device_id":"a","payload":"e30="}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEnvelope(b)
		if err != nil {
			return
		}
		var rep *Report
		if e.Signed() {
			rep, err = e.Open(fuzzKey.Public().(ed25519.PublicKey))
		} else {
			rep, err = e.OpenUnsigned()
		}
		if err != nil {
			return
		}
		var again []byte
		if e.Signed() {
			again, err = Seal(rep, fuzzKey)
		} else {
			again, err = SealUnsigned(rep)
		}
		if err != nil {
			t.Fatalf("opened report does not seal again: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("round trip changed the envelope:\n%s\n%s", b, again)
		}
	})
}

// FuzzParseReport: the report parser alone, round trip exact.
func FuzzParseReport(f *testing.F) {
	b, _ := testReport().Marshal()
	f.Add(b)
	f.Add([]byte(`{"format":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseReport(b)
		if err != nil {
			return
		}
		again, err := r.Marshal()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("round trip: %v\n%s\n%s", err, b, again)
		}
	})
}

// FuzzParseEnrolment: the server reads this file at start; no panic.
func FuzzParseEnrolment(f *testing.F) {
	e := NewEnrolment()
	_ = e.Add(Device{ID: "gw-1", HardwareID: "h", RolloutID: "r", PublicKey: fuzzKey.Public().(ed25519.PublicKey)})
	b, _ := e.Marshal()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEnrolment(b)
		if err != nil {
			return
		}
		if _, err := e.Marshal(); err != nil {
			t.Fatal(err)
		}
	})
}
