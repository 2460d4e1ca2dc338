// Package fleet is what a device tells its update server after an update
// cycle, and what the server needs to judge a rollout by it: the install
// report, its signed envelope, the enrolment file of device keys, the
// health rule that pauses a failing release, and a bounded on-disk queue
// for reports a device could not send yet.
//
// A device builds a Report, seals it with its ed25519 key (Seal) or, where
// the server authenticates devices by their TLS client certificate, leaves
// it unsigned (SealUnsigned), and posts the envelope. The server parses it
// with ParseEnvelope, opens it with the key the Enrolment lists for the
// device (Envelope.Open) or, on a mutual-TLS connection, with
// Envelope.OpenUnsigned after matching the certificate, and refuses every
// sequence number not above the last one it stored for that device.
//
// Reports are evidence for pausing a rollout, never input to what a device
// trusts: nothing here is read by package verify, and a forged or lost
// report can at worst pause a release (narrow), never widen one. The
// package does no I/O except Queue, which writes only in its directory.
package fleet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/otaseal/otaseal/manifest"
)

// Limits of a report. Every field from the wire has one, checked before
// the report is trusted or stored.
const (
	// MaxEnvelopeSize bounds a posted envelope, in bytes: a report with
	// every field at its limit, base64-encoded, with its signature.
	MaxEnvelopeSize = 8 << 10
	// MaxIDLen bounds a device, rollout or hardware ID, in bytes.
	MaxIDLen = 128
	// MaxTargetLen bounds a release's target path, in bytes.
	MaxTargetLen = 1024
	// MaxVersionLen bounds a release's version string, in bytes.
	MaxVersionLen = 128
	// MaxDetailLen bounds a report's free text, in bytes.
	MaxDetailLen = 512
	// ReportFormat is the version of the report's wire format.
	ReportFormat = 1
)

// Result is what a cycle did with the release it tried.
type Result string

// The results. Confirmed, Reverted and Failed are attempts: the device
// tried the release. Skipped is not: the device was told (or decided) not
// to try it, and says why.
const (
	// Confirmed: the release booted and passed its health check; the
	// device now runs it.
	Confirmed Result = "confirmed"
	// Reverted: the release was installed but failed its health check
	// (or did not boot); the device went back to the image it ran.
	Reverted Result = "reverted"
	// Failed: the cycle stopped before the release ran, with an
	// ErrorClass: it could not be fetched, was refused, or did not install.
	Failed Result = "failed"
	// Skipped: the release was not tried, with a SkipReason.
	Skipped Result = "skipped"
)

// Attempted reports whether r counts as an attempt at the release.
func (r Result) Attempted() bool { return r == Confirmed || r == Reverted || r == Failed }

// ErrorClass says why a Failed cycle failed, coarsely: fleet statistics
// need the class, the device's log has the details.
type ErrorClass string

// The error classes.
const (
	ErrorNetwork      ErrorClass = "network"      // the server was unreachable or failing
	ErrorVerification ErrorClass = "verification" // metadata or image refused (a security event)
	ErrorInstall      ErrorClass = "install"      // writing or switching the slot failed
	ErrorOther        ErrorClass = "other"
)

// SkipReason says why a release was not tried.
type SkipReason string

// The skip reasons.
const (
	SkipPaused      SkipReason = "paused"       // paused, capped or stopped by the rollout control
	SkipNotEligible SkipReason = "not_eligible" // the staged rollout has not reached the device
	SkipWithdrawn   SkipReason = "withdrawn"
	SkipUpToDate    SkipReason = "up_to_date"
)

var (
	errorClasses = map[ErrorClass]bool{ErrorNetwork: true, ErrorVerification: true, ErrorInstall: true, ErrorOther: true}
	skipReasons  = map[SkipReason]bool{SkipPaused: true, SkipNotEligible: true, SkipWithdrawn: true, SkipUpToDate: true}
)

// Release names a firmware release: its target path in the repository
// (e.g. "acme-gw-r2/2.4.1/firmware.bin") and its version. A factory image
// that is in no repository has a version and no target.
type Release struct {
	Target  string `json:"target,omitempty"`
	Version string `json:"version,omitempty"`
}

// MetadataVersions are the versions of the device's trusted TUF metadata
// when it reported: which repository state its decision rested on.
type MetadataVersions struct {
	Root      int64 `json:"root"`
	Timestamp int64 `json:"timestamp"`
	Snapshot  int64 `json:"snapshot"`
	Targets   int64 `json:"targets"`
}

// Report is one device's account of one update cycle.
type Report struct {
	DeviceID   string // who reports: the enrolled device ID or its certificate's name
	RolloutID  string // the device's place in staged rollouts (manifest.RolloutBucket)
	HardwareID string
	// Seq numbers a device's reports: 1, 2, 3, ... The server stores a
	// report only when Seq is above the last one it stored for the device,
	// which refuses replays and reordering.
	Seq        uint64
	Running    Release // the release the device runs after the cycle
	Tried      Release // the release the cycle was about; empty when none was chosen (Failed, Skipped)
	Result     Result
	ErrorClass ErrorClass // with Failed only
	SkipReason SkipReason // with Skipped only
	Detail     string     // optional, one line, for operators
	Metadata   MetadataVersions
	// Time is the device's trusted time at the report, UTC, whole
	// seconds; zero when the device has none. Informational only.
	Time time.Time
}

// wireReport is Report's JSON form; Marshal's output is the only spelling
// Parse accepts.
type wireReport struct {
	Format     int              `json:"format"`
	DeviceID   string           `json:"device_id"`
	RolloutID  string           `json:"rollout_id"`
	HardwareID string           `json:"hardware_id"`
	Seq        uint64           `json:"seq"`
	Running    Release          `json:"running"`
	Tried      *Release         `json:"tried,omitempty"`
	Result     Result           `json:"result"`
	ErrorClass ErrorClass       `json:"error_class,omitempty"`
	SkipReason SkipReason       `json:"skip_reason,omitempty"`
	Detail     string           `json:"detail,omitempty"`
	Metadata   MetadataVersions `json:"metadata"`
	Time       string           `json:"time,omitempty"`
}

// ErrMalformed marks bytes that are not a report or envelope of this
// format, and ErrInvalid a well-formed one whose fields break a rule.
var (
	ErrMalformed = errors.New("fleet: malformed")
	ErrInvalid   = errors.New("fleet: invalid")
	ErrTooLarge  = errors.New("fleet: too large")
)

// timeLayout is the one spelling of Report.Time.
const timeLayout = "2006-01-02T15:04:05Z"

// Validate checks r against the limits and rules Parse enforces.
func (r *Report) Validate() error {
	for _, f := range []struct{ name, v string }{{"device_id", r.DeviceID}, {"rollout_id", r.RolloutID}, {"hardware_id", r.HardwareID}} {
		if err := checkText(f.name, f.v, MaxIDLen, true); err != nil {
			return err
		}
	}
	if r.Seq == 0 || r.Seq > 1<<53 {
		// 2^53: the largest integer every JSON reader keeps exact.
		return fmt.Errorf("%w: seq %d: want 1..2^53", ErrInvalid, r.Seq)
	}
	if err := checkRelease("running", r.Running, false); err != nil {
		return err
	}
	tried := r.Tried != Release{}
	switch r.Result {
	case Confirmed, Reverted:
		if err := checkRelease("tried", r.Tried, true); err != nil {
			return err
		}
	case Failed, Skipped:
		// A refresh refused before any release was chosen names none.
		if tried {
			if err := checkRelease("tried", r.Tried, true); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("%w: result %q: want confirmed, reverted, failed or skipped", ErrInvalid, clip(string(r.Result)))
	}
	if (r.Result == Failed) != (r.ErrorClass != "") || (r.ErrorClass != "" && !errorClasses[r.ErrorClass]) {
		return fmt.Errorf("%w: error_class %q goes with result failed, and is one of network, verification, install, other", ErrInvalid, clip(string(r.ErrorClass)))
	}
	if (r.Result == Skipped) != (r.SkipReason != "") || (r.SkipReason != "" && !skipReasons[r.SkipReason]) {
		return fmt.Errorf("%w: skip_reason %q goes with result skipped, and is one of paused, not_eligible, withdrawn, up_to_date", ErrInvalid, clip(string(r.SkipReason)))
	}
	if r.Detail != "" {
		if err := checkText("detail", r.Detail, MaxDetailLen, false); err != nil {
			return err
		}
	}
	m := r.Metadata
	if m.Root < 0 || m.Timestamp < 0 || m.Snapshot < 0 || m.Targets < 0 {
		return fmt.Errorf("%w: negative metadata version", ErrInvalid)
	}
	if !r.Time.IsZero() && (r.Time.Location() != time.UTC || r.Time.Nanosecond() != 0 || r.Time.Year() < 1970 || r.Time.Year() > 9999) {
		return fmt.Errorf("%w: time: want a UTC time in whole seconds", ErrInvalid)
	}
	return nil
}

func checkRelease(name string, rel Release, needTarget bool) error {
	if rel.Target != "" || needTarget {
		if err := checkText(name+".target", rel.Target, MaxTargetLen, false); err != nil {
			return err
		}
	}
	if err := checkText(name+".version", rel.Version, MaxVersionLen, false); err != nil {
		return err
	}
	if _, err := manifest.ParseVersion(rel.Version); err != nil {
		return fmt.Errorf("%w: %s.version %q: not a semantic version", ErrInvalid, name, clip(rel.Version))
	}
	return nil
}

// checkText refuses empty, overlong, non-UTF-8 text and control
// characters; id also refuses spaces, so that an ID prints as one word.
func checkText(field, s string, max int, id bool) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: %s is empty", ErrInvalid, field)
	case len(s) > max:
		return fmt.Errorf("%w: %s longer than %d bytes", ErrInvalid, field, max)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %s is not UTF-8", ErrInvalid, field)
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f || (id && c == ' ') {
			return fmt.Errorf("%w: %s holds %U", ErrInvalid, field, c)
		}
	}
	return nil
}

// clip shortens attacker-chosen text before it goes into an error.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// Marshal validates r and encodes it: the bytes a device signs.
func (r *Report) Marshal() ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	w := wireReport{Format: ReportFormat, DeviceID: r.DeviceID, RolloutID: r.RolloutID, HardwareID: r.HardwareID,
		Seq: r.Seq, Running: r.Running, Result: r.Result, ErrorClass: r.ErrorClass, SkipReason: r.SkipReason,
		Detail: r.Detail, Metadata: r.Metadata}
	if r.Tried != (Release{}) {
		t := r.Tried
		w.Tried = &t
	}
	if !r.Time.IsZero() {
		w.Time = r.Time.Format(timeLayout)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(w); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// ParseReport decodes and validates a report's bytes. It accepts exactly
// what Marshal writes: unknown or repeated members, another key order,
// whitespace or another spelling of a value are refused (ErrMalformed),
// so that a report has one encoding and its digest names it.
func ParseReport(b []byte) (*Report, error) {
	if len(b) > MaxEnvelopeSize {
		return nil, fmt.Errorf("%w: report of %d bytes (limit %d)", ErrTooLarge, len(b), MaxEnvelopeSize)
	}
	var w wireReport
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("%w: report: %v", ErrMalformed, err)
	}
	if w.Format != ReportFormat {
		return nil, fmt.Errorf("%w: report format %d: want %d", ErrMalformed, w.Format, ReportFormat)
	}
	r := &Report{DeviceID: w.DeviceID, RolloutID: w.RolloutID, HardwareID: w.HardwareID, Seq: w.Seq,
		Running: w.Running, Result: w.Result, ErrorClass: w.ErrorClass, SkipReason: w.SkipReason,
		Detail: w.Detail, Metadata: w.Metadata}
	if w.Tried != nil {
		if *w.Tried == (Release{}) {
			return nil, fmt.Errorf("%w: empty tried release", ErrMalformed)
		}
		r.Tried = *w.Tried
	}
	if w.Time != "" {
		t, err := time.Parse(timeLayout, w.Time)
		if err != nil {
			return nil, fmt.Errorf("%w: time %q", ErrMalformed, clip(w.Time))
		}
		r.Time = t
	}
	again, err := r.Marshal()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(again, b) {
		return nil, fmt.Errorf("%w: report is not in its one encoding (member order, whitespace, escapes or repeated members)", ErrMalformed)
	}
	return r, nil
}
