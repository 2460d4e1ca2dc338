package rollback

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"unicode/utf8"

	"github.com/otaseal/otaseal/internal/fsname"
)

// Record is one stored record as loaded. Seq counts the writes of the
// record, deletions included; it is 0 for a record never written. Data is
// nil when the record does not exist (never written, or deleted) and
// non-nil, possibly empty, when it does.
type Record struct {
	Seq  uint64
	Data []byte
}

// Exists reports whether the record holds data.
func (r Record) Exists() bool { return r.Data != nil }

// The on-disk envelope of one stored copy of a record. Every stored byte is
// covered by the trailing SHA-256, so a torn write, a truncation or a flipped
// bit is detected on load and the copy is never trusted.
//
//	magic      4 bytes  "OTSR"
//	format     1 byte   envelopeFormat
//	flags      1 byte   flagPresent, or 0 for a deletion (tombstone)
//	sequence   8 bytes  big endian, >= 1
//	name len   2 bytes  big endian, 1..MaxNameLength
//	name       name len bytes
//	data len   4 bytes  big endian, <= the store's record limit
//	data       data len bytes
//	checksum  32 bytes  SHA-256 of everything above
//
// The name is inside the envelope so a copy renamed over another record's
// file (floors over a clock file) is refused rather than read as that
// record. The checksum is not a MAC: it
// stops accidents, not an attacker who can write the state directory (the
// hardware Counter is the defence there).
const (
	envelopeMagic  = "OTSR"
	envelopeFormat = 1
	flagPresent    = 1
	headerLen      = len(envelopeMagic) + 1 + 1 + 8 + 2
	checksumLen    = sha256.Size
	envelopeMin    = headerLen + 4 + checksumLen // plus name and data

	// MaxNameLength bounds a record name (and so a delegated role name kept
	// as metadata), in bytes.
	MaxNameLength = 255
	// DefaultMaxRecordSize bounds a record's data when the store's options
	// do not say otherwise: the largest trusted metadata document kept.
	DefaultMaxRecordSize = 8 << 20
	// MaxRecordSizeLimit is the largest record limit a store accepts; the
	// data length field is 32 bits.
	MaxRecordSizeLimit = 1 << 30
)

// envelope is one decoded copy of a record.
type envelope struct {
	name    string
	seq     uint64
	present bool
	data    []byte
}

// equal reports whether two envelopes hold the same record.
func (e *envelope) equal(o *envelope) bool {
	return e.name == o.name && e.seq == o.seq && e.present == o.present && bytes.Equal(e.data, o.data)
}

func envelopeSize(name string, dataLen int) int {
	return envelopeMin + len(name) + dataLen
}

// encodeEnvelope lays out e; the caller has checked the name and data
// limits.
func encodeEnvelope(e envelope) []byte {
	b := make([]byte, 0, envelopeSize(e.name, len(e.data)))
	b = append(b, envelopeMagic...)
	b = append(b, envelopeFormat)
	var flags byte
	if e.present {
		flags = flagPresent
	}
	b = append(b, flags)
	b = binary.BigEndian.AppendUint64(b, e.seq)
	b = binary.BigEndian.AppendUint16(b, uint16(len(e.name)))
	b = append(b, e.name...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.data)))
	b = append(b, e.data...)
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

// decodeEnvelope parses one stored copy. It checks the checksum
// before it believes any length, so a corrupted length field cannot make it
// allocate or slice out of range; maxData bounds the data all the same.
// The returned data is a copy, never aliasing b.
func decodeEnvelope(b []byte, maxData int) (envelope, error) {
	if len(b) < envelopeMin {
		return envelope{}, fmt.Errorf("%d bytes, shorter than any record", len(b))
	}
	body, sum := b[:len(b)-checksumLen], b[len(b)-checksumLen:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return envelope{}, fmt.Errorf("checksum mismatch")
	}
	if string(body[:4]) != envelopeMagic {
		return envelope{}, fmt.Errorf("bad magic")
	}
	if body[4] != envelopeFormat {
		return envelope{}, fmt.Errorf("unknown format %d", body[4])
	}
	var e envelope
	switch body[5] {
	case flagPresent:
		e.present = true
	case 0:
	default:
		return envelope{}, fmt.Errorf("unknown flags %#x", body[5])
	}
	e.seq = binary.BigEndian.Uint64(body[6:14])
	if e.seq == 0 {
		return envelope{}, fmt.Errorf("sequence 0")
	}
	nameLen := int(binary.BigEndian.Uint16(body[14:16]))
	rest := body[headerLen:]
	if nameLen == 0 || nameLen > MaxNameLength || nameLen+4 > len(rest) {
		return envelope{}, fmt.Errorf("bad name length %d", nameLen)
	}
	e.name = string(rest[:nameLen])
	if err := checkName(e.name); err != nil {
		return envelope{}, err
	}
	rest = rest[nameLen:]
	dataLen := uint64(binary.BigEndian.Uint32(rest[:4]))
	rest = rest[4:]
	if dataLen > uint64(maxData) {
		return envelope{}, fmt.Errorf("%w: %d bytes of data (limit %d)", ErrRecordTooLarge, dataLen, maxData)
	}
	if dataLen != uint64(len(rest)) {
		return envelope{}, fmt.Errorf("data length %d, %d bytes follow", dataLen, len(rest))
	}
	if !e.present && dataLen != 0 {
		return envelope{}, fmt.Errorf("deleted record with data")
	}
	if e.present {
		e.data = bytes.Clone(rest)
		if e.data == nil {
			e.data = []byte{}
		}
	}
	return e, nil
}

// checkName accepts names of 1..MaxNameLength bytes of valid UTF-8 without
// control characters. Any such name is safe: the file store never uses it
// as a path, only its escaped form (see fileName).
func checkName(name string) error {
	if len(name) == 0 || len(name) > MaxNameLength {
		return fmt.Errorf("%w: length %d outside 1..%d", ErrInvalidName, len(name), MaxNameLength)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: not UTF-8", ErrInvalidName)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: control character %U", ErrInvalidName, r)
		}
	}
	return nil
}

// fileName maps a record name to the name of its files in the state
// directory, with the escaping every otaseal store shares (fsname.Escape):
// the name never leaves the directory, and two records never share a file,
// not even on a case-insensitive file system. A long name becomes "~" and
// its SHA-256; the name inside the envelope still says which record it is.
func fileName(name string) string { return fsname.Escape(name) }
