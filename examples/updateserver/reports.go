package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/otaseal/otaseal/fleet"
)

// reportsPath is where devices POST their reports. fleet.StatusPath, the
// read endpoint of the per-release, per-wave counts, is served on the
// --health listener only: fleet statistics are for operators, not for
// every device with a certificate.
const reportsPath = "/reports"

// ReportLimits bound what one device can make the server store.
type ReportLimits struct {
	// Rate is the reports per second a device may send on average, and
	// Burst how many it may send at once (an agent flushing its queue
	// after an outage). Zero means the defaults.
	Rate  float64
	Burst int
}

const (
	defaultReportRate  = 1.0 / 10 // one report every ten seconds
	defaultReportBurst = fleet.DefaultQueueLen
)

// reports is the server's report intake: the store, the enrolled keys,
// the per-device limiter and the health rules.
type reports struct {
	store  reportStore
	log    *slog.Logger
	now    func() time.Time
	limits *deviceLimiter

	// ingest counts the reports stored, for the fleet page.
	ingest ingestRate

	enrolMu    sync.Mutex
	enrolPath  string
	enrolMTime time.Time
	enrolment  *fleet.Enrolment
}

// loadEnrolment reads the enrolment file when it changed since the last
// read (operators enrol devices while the server runs), recording new
// devices in the store so that status counts them before they report.
// A file that no longer parses keeps the last good enrolment.
func (rp *reports) loadEnrolment(ctx context.Context) (*fleet.Enrolment, error) {
	rp.enrolMu.Lock()
	defer rp.enrolMu.Unlock()
	if rp.enrolPath == "" {
		if rp.enrolment == nil {
			rp.enrolment = fleet.NewEnrolment()
		}
		return rp.enrolment, nil
	}
	st, err := os.Stat(rp.enrolPath)
	if err != nil {
		if rp.enrolment != nil {
			rp.log.Error("enrolment file unreadable; keeping the devices read before", "file", rp.enrolPath, "err", err)
			return rp.enrolment, nil
		}
		return nil, fmt.Errorf("enrolment file: %w", err)
	}
	if rp.enrolment != nil && st.ModTime().Equal(rp.enrolMTime) {
		return rp.enrolment, nil
	}
	b, err := readCapped(rp.enrolPath, fleet.MaxEnrolmentSize)
	var e *fleet.Enrolment
	if err == nil {
		e, err = fleet.ParseEnrolment(b)
	}
	if err != nil {
		if rp.enrolment != nil {
			rp.log.Error("enrolment file refused; keeping the devices read before", "file", rp.enrolPath, "err", err)
			return rp.enrolment, nil
		}
		return nil, fmt.Errorf("enrolment file %s: %w", rp.enrolPath, err)
	}
	known := make([]knownDevice, 0, e.Len())
	for _, d := range e.Devices() {
		known = append(known, knownDevice{DeviceID: d.ID, HardwareID: d.HardwareID, RolloutID: d.RolloutID})
	}
	if err := rp.store.enrol(ctx, known); err != nil {
		return nil, fmt.Errorf("recording enrolled devices: %w", err)
	}
	rp.enrolment, rp.enrolMTime = e, st.ModTime()
	rp.log.Info("enrolment loaded", "file", rp.enrolPath, "devices", e.Len())
	return e, nil
}

// readCapped reads a whole file of at most max bytes.
func readCapped(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err == nil && int64(len(b)) > max {
		err = fmt.Errorf("%s is larger than %d bytes", path, max)
	}
	return b, err
}

// refusal is a report refused with a 4xx status and a reason for the
// device's log.
type refusal struct {
	status int
	reason string
}

func refuse(status int, format string, a ...any) *refusal {
	return &refusal{status: status, reason: fmt.Sprintf(format, a...)}
}

// postReport takes one report: bounded read, parse, authenticate (the
// client certificate, else the enrolled key), rate limit, check the
// release, store, and only after the commit answer 200. Every refusal is
// a 4xx with its reason and stores nothing.
func (s *server) postReport(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "method not allowed: POST a report", http.StatusMethodNotAllowed)
		return
	}
	rep, digest, env, ref := s.admitReport(r)
	if ref != nil {
		s.log.Info("report refused", "status", ref.status, "reason", ref.reason, "remote", r.RemoteAddr, "device", deviceOf(r.TLS))
		if ref.status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "60")
		}
		writeJSON(w, ref.status, map[string]string{"error": ref.reason})
		return
	}
	auth := "signature"
	if !env.Signed() {
		auth = "mtls"
	}
	res, err := s.reports.store.add(r.Context(), &storedReport{Report: rep, Digest: digest, Payload: env.Payload(), Auth: auth, ReceivedAt: s.now()})
	var replay *replayError
	switch {
	case errors.As(err, &replay):
		s.log.Info("report refused", "status", http.StatusConflict, "reason", replay.Error(), "device", rep.DeviceID)
		writeJSON(w, http.StatusConflict, map[string]string{"error": replay.Error()})
		return
	case err != nil:
		s.log.Error("storing a report failed", "device", rep.DeviceID, "seq", rep.Seq, "err", err)
		w.Header().Set("Retry-After", "30")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "report not stored; send it again later"})
		return
	case res == addDuplicate:
		writeJSON(w, http.StatusOK, map[string]any{"status": "duplicate", "seq": rep.Seq})
		return
	}
	s.reports.ingest.add(s.now())
	s.log.Debug("report stored", "device", rep.DeviceID, "seq", rep.Seq, "result", rep.Result, "release", rep.Tried.Target)
	if countsAsAttempt(rep) {
		// After the commit, before the answer: a device's report that
		// trips the rule has paused the release when it is acknowledged.
		s.evaluateHealth(r.Context(), rep.Tried.Target)
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "stored", "seq": rep.Seq})
}

// admitReport reads and checks a report; a non-nil refusal says why not.
func (s *server) admitReport(r *http.Request) (*fleet.Report, string, *fleet.Envelope, *refusal) {
	if r.ContentLength > fleet.MaxEnvelopeSize {
		return nil, "", nil, refuse(http.StatusRequestEntityTooLarge, "report of %d bytes: the limit is %d", r.ContentLength, fleet.MaxEnvelopeSize)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, fleet.MaxEnvelopeSize+1))
	if err != nil {
		return nil, "", nil, refuse(http.StatusBadRequest, "reading the report: %v", err)
	}
	if len(body) > fleet.MaxEnvelopeSize {
		return nil, "", nil, refuse(http.StatusRequestEntityTooLarge, "report larger than %d bytes", fleet.MaxEnvelopeSize)
	}
	env, err := fleet.ParseEnvelope(body)
	if err != nil {
		return nil, "", nil, refuse(http.StatusBadRequest, "%v", err)
	}
	enrolment, err := s.reports.loadEnrolment(r.Context())
	if err != nil {
		s.log.Error("enrolment unavailable", "err", err)
		return nil, "", nil, refuse(http.StatusServiceUnavailable, "device enrolment unavailable")
	}
	dev, enrolled := enrolment.Lookup(env.DeviceID)
	var rep *fleet.Report
	if cert := deviceOf(r.TLS); cert != "" {
		// Mutual TLS: the certificate is the identity. A signature, if
		// any, must verify too when the device is enrolled.
		if env.DeviceID != cert {
			return nil, "", nil, refuse(http.StatusForbidden, "report for device %s on the connection of device %s", env.DeviceID, cert)
		}
		if env.Signed() && enrolled {
			rep, err = env.Open(dev.PublicKey)
		} else {
			rep, err = env.OpenUnsigned()
		}
	} else {
		if !enrolled {
			return nil, "", nil, refuse(http.StatusForbidden, "device %s is not enrolled", env.DeviceID)
		}
		rep, err = env.Open(ed25519.PublicKey(dev.PublicKey))
	}
	switch {
	case errors.Is(err, fleet.ErrSignature):
		return nil, "", nil, refuse(http.StatusForbidden, "%v", err)
	case err != nil:
		return nil, "", nil, refuse(http.StatusBadRequest, "%v", err)
	}
	if enrolled && (rep.RolloutID != dev.RolloutID || rep.HardwareID != dev.HardwareID) {
		// A device must not move itself to another wave or hardware.
		return nil, "", nil, refuse(http.StatusUnprocessableEntity, "rollout or hardware ID differs from the enrolment of %s", rep.DeviceID)
	}
	if !s.reports.limits.allow(rep.DeviceID, s.now()) {
		return nil, "", nil, refuse(http.StatusTooManyRequests, "device %s sends reports too fast", rep.DeviceID)
	}
	if t := rep.Tried.Target; t != "" && !s.knownRelease(r.Context(), t) {
		return nil, "", nil, refuse(http.StatusUnprocessableEntity, "unknown release %q", t)
	}
	return rep, env.Digest(), env, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// deviceLimiter is a token bucket per device. Buckets that refilled are
// forgotten when the map grows, so that it stays bounded by the devices
// active within a refill period.
type deviceLimiter struct {
	rate  float64
	burst float64
	mu    sync.Mutex
	b     map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

const maxLimiterEntries = 1 << 16

func newDeviceLimiter(l ReportLimits) *deviceLimiter {
	if l.Rate <= 0 {
		l.Rate = defaultReportRate
	}
	if l.Burst <= 0 {
		l.Burst = defaultReportBurst
	}
	return &deviceLimiter{rate: l.Rate, burst: float64(l.Burst), b: map[string]*bucket{}}
}

func (l *deviceLimiter) allow(device string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.b[device]
	if !ok {
		if len(l.b) >= maxLimiterEntries {
			l.sweep(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.b[device] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// sweep forgets the buckets that are full again: forgetting them changes
// nothing for their devices.
func (l *deviceLimiter) sweep(now time.Time) {
	for d, b := range l.b {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.b, d)
		}
	}
}
