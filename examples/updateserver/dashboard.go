package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"embed"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

// The fleet page: a read-only view of the repository and the fleet
// reports for operators, on its own listener (--dashboard) so that it is
// never reachable on the devices' address. Rendered on the server with
// html/template and inline CSS and SVG: no script, nothing from another
// host. An operator whose client certificate chains to --operator-ca may
// pause and resume a rollout, the two things the online control key may
// do; every such action is logged with the certificate's subject.

//go:embed dashboard.html
var dashFiles embed.FS

var dashTemplate = template.Must(template.New("dashboard.html").Funcs(template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04 MST")
	},
	"size":      sizeText,
	"join":      strings.Join,
	"prev":      func(n int) int { return n - 1 },
	"next":      func(n int) int { return n + 1 },
	"chartLeft": func() int { return chartLeft },
}).ParseFS(dashFiles, "dashboard.html"))

// dashboard serves the fleet page of one server.
type dashboard struct {
	srv   *server
	stats fleetStats
	// operators verifies operator certificates; nil: read-only page.
	operators *x509.CertPool
	// formKey authenticates the page's forms (against cross-site posts a
	// browser would send with the operator's certificate).
	formKey [32]byte

	mu        sync.Mutex // guards the cached model
	cached    *repoModel
	cachedKey []byte
	cachedAt  time.Time
}

func newDashboard(srv *server, stats fleetStats, operators *x509.CertPool) *dashboard {
	d := &dashboard{srv: srv, stats: stats, operators: operators}
	rand.Read(d.formKey[:])
	return d
}

// tlsConfig is the dashboard listener's TLS: operator certificates are
// asked for and verified when given; a browser without one sees the page
// read-only.
func (d *dashboard) tlsConfig(cert tls.Certificate) *tls.Config {
	c := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if d.operators != nil {
		c.ClientCAs = d.operators
		c.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return c
}

func (d *dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'")
	h.Set("Cache-Control", "no-store")
	switch {
	case r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		d.page(w, r)
	case r.URL.Path == "/rollout" && r.Method == http.MethodPost:
		d.act(w, r)
	case r.URL.Path == "/rollout":
		h.Set("Allow", "POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	default:
		http.NotFound(w, r)
	}
}

// operator returns the subject of the request's verified operator
// certificate, "" when there is none.
func (d *dashboard) operator(r *http.Request) string {
	if d.operators == nil || r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		return ""
	}
	return r.TLS.VerifiedChains[0][0].Subject.String()
}

func (d *dashboard) formToken(operator string) string {
	m := hmac.New(sha256.New, d.formKey[:])
	m.Write([]byte(operator))
	return hex.EncodeToString(m.Sum(nil))
}

func (d *dashboard) page(w http.ResponseWriter, r *http.Request) {
	page := 1
	if p := r.URL.Query().Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 {
			http.Error(w, "page: want a positive number", http.StatusBadRequest)
			return
		}
		page = n
	}
	v, err := d.view(r.Context(), page)
	if err != nil {
		d.srv.log.Error("fleet page", "err", err)
		http.Error(w, "the repository cannot be read now (see the server log)", http.StatusServiceUnavailable)
		return
	}
	v.Operator = d.operator(r)
	v.CanAct = v.Operator != "" && d.srv.cfg.ControlKey != nil
	var buf bytes.Buffer
	if err := dashTemplate.Execute(&buf, struct {
		*dashView
		Token string
	}{v, d.formToken(v.Operator)}); err != nil {
		d.srv.log.Error("fleet page", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(buf.Bytes())
}

// modelTTL bounds how long the page trusts its copy of the repository
// without looking: a root written after the timestamp (a rotation)
// shows within it.
const modelTTL = time.Minute

// model returns the repository as the page reads it: the copy it keeps
// while timestamp.json and root.json are unchanged (and for at most
// modelTTL), else a fresh read.
func (d *dashboard) model(ctx context.Context) (*repoModel, error) {
	sum := sha256.New()
	for _, name := range []string{"metadata/timestamp.json", "metadata/root.json"} {
		rc, err := d.srv.store.Get(ctx, name)
		if errors.Is(err, sign.ErrBlobNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(sum, io.LimitReader(rc, 1<<20))
		rc.Close()
		if err != nil {
			return nil, err
		}
		sum.Write([]byte{0})
	}
	key := sum.Sum(nil)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cached != nil && bytes.Equal(key, d.cachedKey) && time.Since(d.cachedAt) < modelTTL {
		return d.cached, nil
	}
	repo, err := sign.OpenRepository(ctx, d.srv.store, d.srv.signOptions())
	if err != nil {
		return nil, err
	}
	defer repo.Close()
	m, err := loadModel(repo)
	if err != nil {
		return nil, err
	}
	d.cached, d.cachedKey, d.cachedAt = m, key, time.Now()
	return m, nil
}

// view lays out page of the repository and the fleet counts.
func (d *dashboard) view(ctx context.Context, page int) (*dashView, error) {
	m, err := d.model(ctx)
	if err != nil {
		return nil, err
	}
	now := d.srv.now()
	v := buildView(ctx, m, d.stats, now, page, d.srv.warnWindow)
	d.srv.mu.Lock()
	st := d.srv.status
	d.srv.mu.Unlock()
	hv := healthView{TimestampVersion: m.tsVersion, TimestampAge: "-", LastResign: "never since start", Database: "none (no fleet reports)", ReportsPerMinute: "-"}
	if !m.signedAt.IsZero() {
		hv.TimestampAge = ageText(now.Sub(m.signedAt))
	}
	if !st.lastResign.IsZero() {
		hv.LastResign = ageText(now.Sub(st.lastResign)) + " ago"
	}
	if st.err != nil {
		hv.Problems = append(hv.Problems, "the last re-sign check failed (see the server log)")
	}
	if d.stats != nil {
		db, rate, err := d.stats.Health(ctx)
		if err != nil {
			hv.Problems = append(hv.Problems, "fleet reports database: "+err.Error())
		} else {
			hv.Database, hv.ReportsPerMinute = db, strconv.FormatFloat(rate, 'f', 1, 64)
		}
	}
	v.Health = hv
	return v, nil
}

// warnWindow is how long before a role's metadata expires the fleet page
// warns: package sign's rule, as release status and inspect apply it.
func (s *server) warnWindow(role string) time.Duration {
	return sign.ExpiryWarning(role)
}

// act pauses or resumes a rollout for an operator.
func (d *dashboard) act(w http.ResponseWriter, r *http.Request) {
	op := d.operator(r)
	if op == "" {
		http.Error(w, "operator actions need an operator client certificate", http.StatusForbidden)
		return
	}
	if d.srv.cfg.ControlKey == nil {
		http.Error(w, "this server holds no rollout control key (--control-key)", http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "malformed form", http.StatusBadRequest)
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("token")), []byte(d.formToken(op))) != 1 {
		http.Error(w, "the form did not come from this page", http.StatusForbidden)
		return
	}
	target, action, reason := r.PostForm.Get("target"), r.PostForm.Get("action"), strings.TrimSpace(r.PostForm.Get("reason"))
	if action != "pause" && action != "resume" {
		http.Error(w, "action: want pause or resume", http.StatusBadRequest)
		return
	}
	if action == "pause" && reason == "" {
		reason = "paused from the fleet page by " + op
	}
	if err := d.srv.setControl(r.Context(), target, action, reason); err != nil {
		d.srv.log.Warn("fleet page action refused", "operator", op, "action", action, "target", target, "err", err)
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	d.srv.log.Info("fleet page action", "operator", op, "action", action, "target", target, "reason", reason)
	http.Redirect(w, r, "/?done="+url.QueryEscape(action+" "+target), http.StatusSeeOther)
}

// setControl pauses (with reason) or resumes the release at target
// through the rollout control role, and publishes it with the online
// keys. It runs between re-sign checks, never during one.
func (s *server) setControl(ctx context.Context, target, action, reason string) error {
	s.checkMu.Lock()
	defer s.checkMu.Unlock()
	repo, err := sign.OpenRepository(ctx, s.store, s.signOptions())
	if err != nil {
		return err
	}
	defer repo.Close()
	ctl, err := repo.RolloutControl()
	if err != nil {
		return fmt.Errorf("no rollout control: %w", err)
	}
	cur, controlled := ctl.Releases[target]
	switch {
	case controlled && cur.State == manifest.ControlStopped:
		return fmt.Errorf("%s is stopped, which is final", target)
	case action == "resume" && !controlled:
		return fmt.Errorf("%s is not paused or capped", target)
	case action == "resume":
		err = repo.ClearRolloutControl(target)
	default:
		rc := manifest.ReleaseControl{State: manifest.ControlPaused, Reason: reason}
		if err = (&manifest.Control{Releases: map[string]manifest.ReleaseControl{target: rc}}).Validate(); err == nil {
			err = repo.SetRolloutControl(target, rc)
		}
	}
	if err != nil {
		return err
	}
	return repo.Publish(ctx, s.signers)
}

// sizeText writes a byte count for people: "1.5 MiB".
func sizeText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 3; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGT"[exp])
}

// dashFlags are the fleet page's options.
type dashFlags struct {
	addr              string
	certFile, keyFile string
	operatorCA        string
}

func (d *dashFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&d.addr, "dashboard", "", "serve the read-only fleet page on `addr` (host:port), apart from the devices' addresses; off by default")
	fs.StringVar(&d.certFile, "dashboard-cert", "", "fleet page server certificate, PEM `file` (serves it over HTTPS)")
	fs.StringVar(&d.keyFile, "dashboard-key", "", "fleet page server private key, PEM `file`")
	fs.StringVar(&d.operatorCA, "operator-ca", "", "operator CA certificates, PEM `file`: an operator whose client certificate chains to one may pause and resume rollouts on the fleet page (needs --dashboard-cert and --control-key)")
}

func (d *dashFlags) validate(f *flags) error {
	switch {
	case d.addr == "" && (d.certFile != "" || d.keyFile != "" || d.operatorCA != ""):
		return errors.New("--dashboard-cert, --dashboard-key and --operator-ca need --dashboard")
	case (d.certFile == "") != (d.keyFile == ""):
		return errors.New("--dashboard-cert and --dashboard-key go together")
	case d.operatorCA != "" && d.certFile == "":
		return errors.New("--operator-ca needs --dashboard-cert and --dashboard-key: operator certificates need TLS")
	case d.addr != "" && (d.addr == f.httpAddr || d.addr == f.httpsAddr || d.addr == f.healthAddr):
		return errors.New("--dashboard must not share an address with --http, --https or --health: the devices' address never serves the fleet page")
	}
	return nil
}

// listen opens the fleet page's endpoint for srv; nil when it is off.
func (d *dashFlags) listen(srv *server, stats fleetStats) (*endpoint, error) {
	if d.addr == "" {
		return nil, nil
	}
	var pool *x509.CertPool
	if d.operatorCA != "" {
		pem, err := os.ReadFile(d.operatorCA)
		if err != nil {
			return nil, err
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--operator-ca %s: no PEM certificate in it", d.operatorCA)
		}
	}
	srv.dash = newDashboard(srv, stats, pool)
	var conf *tls.Config
	if d.certFile != "" {
		cert, err := tls.LoadX509KeyPair(d.certFile, d.keyFile)
		if err != nil {
			return nil, fmt.Errorf("fleet page certificate: %w", err)
		}
		conf = srv.dash.tlsConfig(cert)
	}
	ln, err := net.Listen("tcp", d.addr)
	if err != nil {
		return nil, err
	}
	return &endpoint{ln: ln, kind: serveDashboard, tls: conf}, nil
}
