package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// attackFunc lets the man in the middle replace a response: it gets the
// requested path and the honest bytes, and returns what to send.
type attackFunc func(path string, honest []byte) []byte

// server serves the repository directory on 127.0.0.1, with an optional
// man in the middle between it and the device.
type server struct {
	url  string
	dir  string
	http *http.Server
	mu   sync.Mutex
	mitm attackFunc
}

func startServer(dir string, log *slog.Logger) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &server{url: "http://" + ln.Addr().String(), dir: dir}
	s.http = &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go s.http.Serve(ln)
	return s, nil
}

func (s *server) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.http.Shutdown(ctx)
}

// file returns what the server holds at p (relative to its root).
func (s *server) file(p string) []byte {
	b, _ := os.ReadFile(filepath.Join(s.dir, filepath.FromSlash(path.Clean("/"+p))))
	return b
}

func (s *server) attack(f attackFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mitm = f
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	body, err := os.ReadFile(filepath.Join(s.dir, filepath.FromSlash(p)))
	if errors.Is(err, os.ErrNotExist) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, "read error", http.StatusInternalServerError)
		return
	}
	s.mu.Lock()
	mitm := s.mitm
	s.mu.Unlock()
	if mitm != nil {
		body = mitm(p, body)
	}
	w.Write(body)
}

// tamperImages flips one byte in the middle of every target file (images
// and deltas alike), as a compromised mirror or a bad link would.
func tamperImages(p string, honest []byte) []byte {
	if !strings.HasPrefix(p, "targets/") || len(honest) == 0 {
		return honest
	}
	b := bytes.Clone(honest)
	b[len(b)/2] ^= 0x01
	return b
}

// replay answers the given paths with old bytes it recorded earlier.
func replay(old map[string][]byte) attackFunc {
	return func(p string, honest []byte) []byte {
		if b, ok := old[p]; ok {
			return b
		}
		return honest
	}
}

// timestampInfo reads the version and expiry of a timestamp.json the
// release engineer published, for the narration only: the device never
// trusts anything this way, it verifies the document.
func timestampInfo(b []byte) (version int64, expires time.Time) {
	var doc struct {
		Signed struct {
			Version int64     `json:"version"`
			Expires time.Time `json:"expires"`
		} `json:"signed"`
	}
	_ = json.Unmarshal(b, &doc)
	return doc.Signed.Version, doc.Signed.Expires
}
