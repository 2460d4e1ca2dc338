package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/otaseal/otaseal/fleet"
	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/rollback"
)

// reporter sends install reports to the update server: each is sealed
// with the device's report key and queued in the state directory before
// anything is sent, and the queue is flushed after the cycle, so that a
// server that is down or slow never holds an update back and a report
// survives a reboot. The queue is bounded (-report-queue): the oldest
// reports go first.
type reporter struct {
	url      string
	deviceID string
	key      ed25519.PrivateKey
	queue    *fleet.Queue
	client   *http.Client
	timeout  time.Duration
}

// reportFlushBudget bounds the time a flush may take after a cycle.
const reportFlushBudget = 30 * time.Second

// openReporter loads (or, on the first start, creates) the report key and
// opens the queue; nil when reports are off.
func openReporter(c *config, client *http.Client, rolloutID string) (*reporter, error) {
	if !c.reports {
		return nil, nil
	}
	keyFile := c.reportKey
	if keyFile == "" {
		keyFile = filepath.Join(c.stateDir, "report-key.pem")
	}
	key, err := loadOrCreateReportKey(keyFile)
	if err != nil {
		return nil, err
	}
	q, err := fleet.OpenQueue(filepath.Join(c.stateDir, "reports"), c.reportQueue)
	if err != nil {
		return nil, err
	}
	id := c.deviceID
	if id == "" {
		id = rolloutID
	}
	return &reporter{url: c.server + "/reports", deviceID: id, key: key, queue: q, client: client, timeout: c.timeout}, nil
}

// loadOrCreateReportKey reads the device's ed25519 report key (PKCS #8
// PEM), creating it with its public half in path+".pub" (what release
// devices enroll reads) when it does not exist.
func loadOrCreateReportKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return nil, err
		}
		pubDER, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(path+".pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
			return nil, fileErr("report-key", path+".pub", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fileErr("report-key", path, err)
		}
		_, werr := f.Write(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
		if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
			return nil, fileErr("report-key", path, err)
		}
		return priv, nil
	}
	if err != nil {
		return nil, fileErr("report-key", path, err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("-report-key %s: want a PKCS #8 \"PRIVATE KEY\" PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("-report-key %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("-report-key %s: %T, want an ed25519 key", path, k)
	}
	return priv, nil
}

// record queues a report of what the cycle did with tried. A failure to
// queue is logged: reporting never fails an update.
func (a *agent) record(ctx context.Context, res fleet.Result, tried *rollback.Image, class fleet.ErrorClass, cause error) {
	rp := a.reporter
	if rp == nil {
		return
	}
	r := &fleet.Report{DeviceID: rp.deviceID, RolloutID: a.state.RolloutID(), HardwareID: a.cfg.hardwareID,
		Result: res, ErrorClass: class, Metadata: a.metadataVersions(ctx)}
	if st, err := a.state.Status(ctx); err == nil && st.Installed != nil {
		r.Running = fleet.Release{Target: st.Installed.TargetPath, Version: st.Installed.Version.String()}
	}
	if tried != nil {
		r.Tried = fleet.Release{Target: tried.TargetPath, Version: tried.Version.String()}
	}
	if cause != nil {
		r.Detail = oneLine(cause.Error(), fleet.MaxDetailLen)
	}
	if a.clock != nil {
		if now := a.clock.Now(); now.Year() >= 1970 {
			r.Time = now.UTC().Truncate(time.Second)
		}
	}
	err := func() error {
		seq, err := rp.queue.NextSeq(r.Time)
		if err != nil {
			return err
		}
		r.Seq = seq
		env, err := fleet.Seal(r, rp.key)
		if err != nil {
			return err
		}
		dropped, err := rp.queue.Push(seq, env)
		if dropped > 0 {
			a.log.Warn("report queue full: dropped the oldest unsent reports", "dropped", dropped)
		}
		return err
	}()
	if err != nil {
		a.log.Error("could not queue the install report", "result", res, "err", err)
		return
	}
	a.log.Info("install report queued", "result", res, "seq", r.Seq)
}

// flushReports sends the queued reports in order, within
// reportFlushBudget. A report the server took (stored or a duplicate of
// one stored) or refused for good (4xx other than 429) leaves the queue;
// on a network error, 429 or 5xx the rest wait for the next cycle.
func (a *agent) flushReports(ctx context.Context) {
	rp := a.reporter
	if rp == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, reportFlushBudget)
	defer cancel()
	pending, err := rp.queue.Pending()
	if err != nil {
		a.log.Error("reading the report queue failed", "err", err)
		return
	}
	for _, q := range pending {
		code, reason, err := rp.post(ctx, q.Envelope)
		switch {
		case err != nil:
			a.log.Warn("install reports not sent; kept for the next cycle", "pending", len(pending), "err", err)
			return
		case code == http.StatusOK:
		case code == http.StatusTooManyRequests || code >= 500:
			a.log.Warn("update server did not take the report; kept for the next cycle", "status", code, "reason", reason)
			return
		default:
			a.log.Error("update server refused the install report; dropped", "seq", q.Seq, "status", code, "reason", reason)
		}
		if err := rp.queue.Remove(q.Seq); err != nil {
			a.log.Error("removing a sent report failed", "err", err)
			return
		}
	}
	if len(pending) > 0 {
		a.log.Info("install reports sent", "count", len(pending))
	}
}

// post sends one envelope; it returns the status and the server's reason.
func (rp *reporter) post(ctx context.Context, env []byte) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*rp.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rp.url, bytes.NewReader(env))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "otaseal-deviceagent")
	resp, err := rp.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var body struct{ Error string }
	json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&body)
	return resp.StatusCode, body.Error, nil
}

// metadataVersions reads the versions of the trusted metadata the state
// holds; a role it cannot read counts as 0.
func (a *agent) metadataVersions(ctx context.Context) fleet.MetadataVersions {
	v := func(role string) int64 {
		rec, err := a.state.Metadata(ctx, role)
		if err != nil || !rec.Exists() {
			return 0
		}
		var doc struct {
			Signed struct {
				Version int64 `json:"version"`
			} `json:"signed"`
		}
		if json.Unmarshal(rec.Data, &doc) != nil || doc.Signed.Version < 0 {
			return 0
		}
		return doc.Signed.Version
	}
	return fleet.MetadataVersions{Root: v(manifest.RoleRoot), Timestamp: v(manifest.RoleTimestamp),
		Snapshot: v(manifest.RoleSnapshot), Targets: v(manifest.RoleTargets)}
}

// oneLine makes error text fit a report's detail: one line, at most max
// bytes, cut at a character boundary.
func oneLine(s string, max int) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }), " ")
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && (s[cut]&0xc0) == 0x80 {
		cut--
	}
	return s[:cut]
}
