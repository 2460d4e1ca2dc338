package fleet

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"sort"
)

// Limits of an enrolment file.
const (
	// MaxEnrolledDevices bounds the devices of one enrolment file.
	MaxEnrolledDevices = 1 << 20
	// MaxEnrolmentSize bounds an enrolment file, in bytes: about 300
	// bytes per device at MaxEnrolledDevices.
	MaxEnrolmentSize = 320 << 20
	// EnrolmentFormat is the version of the enrolment file's format.
	EnrolmentFormat = 1
)

// Device is one enrolled device: its ID, what it is, and the public half
// of the ed25519 key it signs its reports with.
type Device struct {
	ID         string
	HardwareID string
	RolloutID  string
	PublicKey  ed25519.PublicKey
}

// Enrolment is the update server's list of devices that may report with
// a signature, by device ID. Each key belongs to one device: a key listed
// twice would let one device report as another.
type Enrolment struct {
	devices map[string]Device
	keys    map[string]string // public key -> device ID
}

// ErrEnrolled marks a device ID or key that is already enrolled.
var ErrEnrolled = errors.New("fleet: already enrolled")

type wireEnrolment struct {
	Format  int          `json:"otaseal_enrolment"`
	Devices []wireDevice `json:"devices"`
}

type wireDevice struct {
	ID         string `json:"device_id"`
	HardwareID string `json:"hardware_id"`
	RolloutID  string `json:"rollout_id"`
	PublicKey  string `json:"ed25519_public_key"`
}

// NewEnrolment returns an empty enrolment.
func NewEnrolment() *Enrolment {
	return &Enrolment{devices: map[string]Device{}, keys: map[string]string{}}
}

// Add enrols d. It refuses an ID or a key that is already enrolled
// (ErrEnrolled) and fields that break the report's limits.
func (e *Enrolment) Add(d Device) error {
	for _, f := range []struct{ name, v string }{{"device_id", d.ID}, {"hardware_id", d.HardwareID}, {"rollout_id", d.RolloutID}} {
		if err := checkText(f.name, f.v, MaxIDLen, true); err != nil {
			return err
		}
	}
	if len(d.PublicKey) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: device %s: public key of %d bytes, want %d", ErrInvalid, d.ID, len(d.PublicKey), ed25519.PublicKeySize)
	}
	if _, ok := e.devices[d.ID]; ok {
		return fmt.Errorf("%w: device %s", ErrEnrolled, d.ID)
	}
	if other, ok := e.keys[string(d.PublicKey)]; ok {
		return fmt.Errorf("%w: the key of %s is enrolled for %s", ErrEnrolled, d.ID, other)
	}
	if len(e.devices) >= MaxEnrolledDevices {
		return fmt.Errorf("%w: more than %d devices", ErrTooLarge, MaxEnrolledDevices)
	}
	d.PublicKey = bytes.Clone(d.PublicKey)
	e.devices[d.ID] = d
	e.keys[string(d.PublicKey)] = d.ID
	return nil
}

// Remove takes a device out, reporting whether it was enrolled.
func (e *Enrolment) Remove(id string) bool {
	d, ok := e.devices[id]
	if ok {
		delete(e.devices, id)
		delete(e.keys, string(d.PublicKey))
	}
	return ok
}

// Lookup returns the enrolled device id.
func (e *Enrolment) Lookup(id string) (Device, bool) {
	d, ok := e.devices[id]
	return d, ok
}

// Devices returns the enrolled devices sorted by ID.
func (e *Enrolment) Devices() []Device {
	out := make([]Device, 0, len(e.devices))
	for _, d := range e.devices {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Len is the number of enrolled devices.
func (e *Enrolment) Len() int { return len(e.devices) }

// Marshal writes the enrolment file: JSON, one device per line, sorted.
func (e *Enrolment) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "{\"otaseal_enrolment\":%d,\"devices\":[", EnrolmentFormat)
	for i, d := range e.Devices() {
		b, err := json.Marshal(wireDevice{ID: d.ID, HardwareID: d.HardwareID, RolloutID: d.RolloutID,
			PublicKey: base64.StdEncoding.EncodeToString(d.PublicKey)})
		if err != nil {
			return nil, err
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString("\n  ")
		buf.Write(b)
	}
	buf.WriteString("\n]}\n")
	return buf.Bytes(), nil
}

// ParseEnrolment reads an enrolment file. Unknown members, a repeated
// device ID or key, and fields over the limits are refused.
func ParseEnrolment(b []byte) (*Enrolment, error) {
	if len(b) > MaxEnrolmentSize {
		return nil, fmt.Errorf("%w: enrolment file of %d bytes (limit %d)", ErrTooLarge, len(b), MaxEnrolmentSize)
	}
	var w wireEnrolment
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("%w: enrolment file: %v", ErrMalformed, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: enrolment file: data after the object", ErrMalformed)
	}
	if w.Format != EnrolmentFormat {
		return nil, fmt.Errorf("%w: enrolment format %d: want %d", ErrMalformed, w.Format, EnrolmentFormat)
	}
	e := NewEnrolment()
	for i, d := range w.Devices {
		key, err := base64.StdEncoding.Strict().DecodeString(d.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("%w: device %d: ed25519_public_key is not base64", ErrMalformed, i+1)
		}
		if err := e.Add(Device{ID: d.ID, HardwareID: d.HardwareID, RolloutID: d.RolloutID, PublicKey: key}); err != nil {
			return nil, fmt.Errorf("device %d: %w", i+1, err)
		}
	}
	return e, nil
}

// ParsePublicKeyPEM reads a device's public key from a "PUBLIC KEY" PEM
// block (PKIX, as openssl pkey -pubout writes it), or the public half of
// a "PRIVATE KEY" (PKCS #8) block.
func ParsePublicKeyPEM(b []byte) (ed25519.PublicKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrMalformed)
	}
	var key any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "PRIVATE KEY":
		var priv any
		if priv, err = x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
			if p, ok := priv.(ed25519.PrivateKey); ok {
				key = p.Public()
			}
		}
	default:
		return nil, fmt.Errorf("%w: PEM block %q, want PUBLIC KEY", ErrMalformed, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	pub, ok := key.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: not an ed25519 key (%T)", ErrInvalid, key)
	}
	return pub, nil
}
