package rollback

import (
	"bytes"
	"testing"
	"time"
)

// Parsers of bytes read back from disk: whatever a damaged or hostile state
// directory holds, they must not panic, and what they accept must have
// exactly one encoding.

func FuzzDecodeEnvelope(f *testing.F) {
	valid := encodeEnvelope(envelope{name: "install", seq: 7, present: true, data: []byte(`{"format":1}`)})
	f.Add(valid)
	f.Add(valid[:len(valid)-1])
	f.Add(encodeEnvelope(envelope{name: "metadata/root", seq: 1, present: true, data: []byte{}}))
	f.Add(encodeEnvelope(envelope{name: "x", seq: 2}))
	f.Add([]byte("OTSR"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEnvelope(b, 1<<16)
		if err != nil {
			return
		}
		if len(e.data) > 1<<16 || e.seq == 0 || checkName(e.name) != nil {
			t.Fatalf("accepted out-of-limit envelope %+v", e)
		}
		if again := encodeEnvelope(e); !bytes.Equal(again, b) {
			t.Fatalf("round trip changed the bytes:\n%x\n%x", b, again)
		}
	})
}

func FuzzInstallRecord(f *testing.F) {
	in := img("2.4.1", 7)
	pend := img("2.5.0-rc.1", 8)
	pend.Slot = "b"
	full, err := (&installRecord{Installed: in, Pending: pend, Floors: Floors{hw: 7, "co": 2}}).marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(full)
	f.Add([]byte(`{"format":1,"installed":null,"pending":null,"floors":{}}`))
	f.Add([]byte(`{"format":1,"floors":{"a":9007199254740992}}`))
	f.Add([]byte(`{"format":1,"installed":{"version":"1.0.0","sha256":"zz"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := unmarshalInstall(b)
		if err != nil {
			return
		}
		out, err := rec.marshal()
		if err != nil {
			t.Fatalf("accepted record does not marshal: %v", err)
		}
		again, err := unmarshalInstall(out)
		if err != nil {
			t.Fatalf("re-marshalled record refused: %v", err)
		}
		if !again.Installed.Equal(rec.Installed) || !again.Pending.Equal(rec.Pending) || len(again.Floors) != len(rec.Floors) {
			t.Fatalf("round trip changed the record")
		}
		for k, v := range rec.Floors {
			if again.Floors[k] != v {
				t.Fatalf("round trip changed floor %q", k)
			}
		}
	})
}

func FuzzParseFloor(f *testing.F) {
	f.Add([]byte("2026-11-26T12:00:00Z"))
	f.Add([]byte("2026-11-26T12:00:00.123456789Z"))
	f.Add([]byte("2026-11-26T12:00:00+01:00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := parseFloor(b)
		if err != nil {
			return
		}
		if got.Format(time.RFC3339Nano) != string(b) {
			t.Fatalf("floor %q has another spelling %q", b, got.Format(time.RFC3339Nano))
		}
	})
}
