package main

import (
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/otaseal/otaseal/fleet"
)

// maxPathLen bounds a request path; no repository name comes near it.
const maxPathLen = 4096

// handler routes by hand rather than with http.ServeMux, whose redirects
// for unclean paths ("/metadata/../x" -> "/x") would turn a traversal
// probe into a 301 instead of a plain 404.
func (s *server) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.log.Enabled(r.Context(), slog.LevelDebug) {
			// No wrapper: keeps the ResponseWriter's sendfile path.
			s.route(w, r)
			return
		}
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		s.route(rec, r)
		s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"bytes", rec.bytes, "duration", time.Since(start), "remote", r.RemoteAddr, "device", deviceOf(r.TLS))
	})
}

func (s *server) route(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == reportsPath && s.reports != nil {
		s.postReport(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	switch {
	case p == "/healthz":
		s.health(w, r)
	case s.bucket != nil && strings.HasPrefix(p, "/metadata/"):
		s.serveBucket(w, r, strings.TrimPrefix(p, "/metadata/"), true)
	case s.bucket != nil && strings.HasPrefix(p, "/targets/"):
		s.serveBucket(w, r, strings.TrimPrefix(p, "/targets/"), false)
	case strings.HasPrefix(p, "/metadata/"):
		s.serveFile(w, r, s.metaRoot, strings.TrimPrefix(p, "/metadata/"), true)
	case strings.HasPrefix(p, "/targets/"):
		s.serveFile(w, r, s.targetsRoot, strings.TrimPrefix(p, "/targets/"), false)
	default:
		http.NotFound(w, r)
	}
}

func (s *server) healthOnly(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == fleet.StatusPath {
		s.fleetStatus(w, r)
		return
	}
	if r.URL.Path != "/healthz" || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		http.NotFound(w, r)
		return
	}
	s.health(w, r)
}

// servable reports whether rel, the decoded path below /metadata/ or
// /targets/, names a file we may serve: no empty, "." or ".." segment (a
// traversal, also when it arrived percent-encoded), no dot file (DirStorage
// writes ".tmp-*" files mid-publish), no backslash or control character.
func servable(rel string) bool {
	if rel == "" || len(rel) > maxPathLen {
		return false
	}
	for _, seg := range strings.Split(rel, "/") {
		if seg == "" || seg[0] == '.' {
			return false
		}
	}
	for i := 0; i < len(rel); i++ {
		if c := rel[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return false
		}
	}
	return true
}

// fileRoot is a directory serveFile opens files in; *os.Root is the one
// outside tests. Open's errors must wrap the system's (fs.ErrNotExist,
// syscall.EMFILE, ...), which decide the status code.
type fileRoot interface {
	Open(name string) (*os.File, error)
	Close() error
}

// serveFile sends one regular file below root, with its exact
// Content-Length (and Range support, so devices can resume an image).
func (s *server) serveFile(w http.ResponseWriter, r *http.Request, root fileRoot, rel string, metadata bool) {
	if !servable(rel) {
		http.NotFound(w, r)
		return
	}
	f, err := root.Open(rel)
	if err != nil {
		s.openFailed(w, r, err)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		s.openFailed(w, r, err)
		return
	}
	if !st.Mode().IsRegular() {
		// Directories in particular: no listings.
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	modTime := st.ModTime()
	if metadata {
		h.Set("Content-Type", "application/json")
		if unversioned(rel) {
			// timestamp.json changes at every re-sign (and root.json at a
			// rotation): a cache must never answer for them, and no
			// If-Modified-Since may get a 304 across a re-sign in the same
			// second.
			h.Set("Cache-Control", "no-store")
			modTime = time.Time{}
		}
	} else {
		h.Set("Content-Type", "application/octet-stream")
	}
	http.ServeContent(w, r, "", modTime, f)
}

// retryAfter is the Retry-After of a 503 for exhausted resources: stalled
// connections hold them at most a stall timeout, and devices retry anyway.
const retryAfter = "5"

// openFailed answers for a file that could not be opened. Only a name that
// does not exist is 404: a device reads 404 on N.root.json as "no newer
// root" and would skip a root rotation (a leaked key's replacement) if the
// server's own fault answered it. Anything else is the server's fault,
// said with a 5xx that devices retry, and logged.
func (s *server) openFailed(w http.ResponseWriter, r *http.Request, err error) {
	code := openErrorStatus(err)
	switch code {
	case http.StatusNotFound:
		http.NotFound(w, r)
		return
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", retryAfter)
		// Out of descriptors, the connection's own is the one to give
		// back; the device reconnects when it retries.
		w.Header().Set("Connection", "close")
		s.log.Error("out of resources: answering 503", "path", r.URL.Path, "err", err)
	default:
		// os.Root's refusal of a symbolic link out of the repository
		// lands here: a broken repository, not a missing file.
		s.log.Error("cannot open a file to serve: answering 500", "path", r.URL.Path, "err", err)
	}
	http.Error(w, http.StatusText(code), code)
}

// openErrorStatus maps an error from opening (or stat-ing) a file to serve
// to a status code: 404 when no such file exists (also when a directory on
// the path is a file, or a name is longer than any file's can be), 503
// when the process or system ran out of descriptors or memory, 500 for
// everything else (permissions, I/O errors, a refused symbolic link).
func openErrorStatus(err error) int {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.ENAMETOOLONG):
		return http.StatusNotFound
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE),
		errors.Is(err, syscall.ENOMEM), errors.Is(err, syscall.ENOBUFS):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// unversioned reports whether a metadata name lacks the "N." version prefix
// of consistent snapshots, i.e. whether its content changes over time.
func unversioned(name string) bool {
	i := strings.IndexByte(name, '.')
	if i <= 0 {
		return true
	}
	for _, c := range name[:i] {
		if c < '0' || c > '9' {
			return true
		}
	}
	return false
}

// healthReport is the body of /healthz.
type healthReport struct {
	Status   string   `json:"status"` // "ok" or "unhealthy"
	Problems []string `json:"problems,omitempty"`
	// Repository is the bucket served (scheme and name), absent for a
	// directory; BucketReadable whether the last check read it.
	Repository       string    `json:"repository,omitempty"`
	BucketReadable   *bool     `json:"bucket_readable,omitempty"`
	TimestampVersion int64     `json:"timestamp_version"`
	TimestampExpires time.Time `json:"timestamp_expires"`
	SnapshotVersion  int64     `json:"snapshot_version"`
	SnapshotExpires  time.Time `json:"snapshot_expires"`
	TargetsExpires   time.Time `json:"targets_expires"`
	RootExpires      time.Time `json:"root_expires"`
	// RolloutControlExpires is absent when rollout control is not delegated.
	RolloutControlExpires time.Time `json:"rollout_control_expires,omitzero"`
	LastCheck             time.Time `json:"last_check"`
	LastResign            time.Time `json:"last_resign,omitzero"`
}

// health answers 200 while devices can refresh against this repository and
// 503 otherwise. The check's error stays in the log: /healthz may be open
// to anyone.
func (s *server) health(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	st := s.status
	s.mu.Unlock()
	now := s.now()
	rep := healthReport{
		Status:                "ok",
		TimestampVersion:      st.timestampVersion,
		TimestampExpires:      st.timestampExpires,
		SnapshotVersion:       st.snapshotVersion,
		SnapshotExpires:       st.snapshotExpires,
		TargetsExpires:        st.targetsExpires,
		RootExpires:           st.rootExpires,
		RolloutControlExpires: st.controlExpires,
		LastCheck:             st.checked,
		LastResign:            st.lastResign,
	}
	if st.err != nil {
		rep.Problems = append(rep.Problems, "the last re-sign check failed (see the server log)")
	}
	if s.bucket != nil {
		rep.Repository = redactURL(s.cfg.BucketURL)
		readable := st.err == nil && !st.checked.IsZero()
		rep.BucketReadable = &readable
		if !readable {
			rep.Problems = append(rep.Problems, "the repository bucket could not be read or written at the last check")
		}
	}
	for _, e := range []struct {
		what    string
		expires time.Time
	}{{"timestamp", st.timestampExpires}, {"snapshot", st.snapshotExpires}, {"targets", st.targetsExpires}, {"root", st.rootExpires}, {"rollout control", st.controlExpires}} {
		if !e.expires.IsZero() && !now.Before(e.expires) {
			rep.Problems = append(rep.Problems, e.what+" metadata has expired")
		}
	}
	if st.timestampExpires.IsZero() {
		rep.Problems = append(rep.Problems, "no timestamp loaded yet")
	}
	if !st.checked.IsZero() && now.Sub(st.checked) > 3*s.cfg.CheckEvery {
		// A check stuck on storage would otherwise look healthy until
		// the timestamp expired.
		rep.Problems = append(rep.Problems, "re-sign checks have stalled")
	}
	code := http.StatusOK
	if len(rep.Problems) > 0 {
		rep.Status, code = "unhealthy", http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	if r.Method == http.MethodGet {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	}
}

// statusRecorder keeps the status and size of a response for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	n, err := s.ResponseWriter.Write(p)
	s.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
