package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzServable: what the path check admits stays below its directory.
func FuzzServable(f *testing.F) {
	for _, s := range []string{"timestamp.json", "1.root.json", "a/b/c.bin", "../x", "a/../../b", "./a", ".tmp-1", "a//b", "a\\..\\b", "a/\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rel string) {
		if !servable(rel) {
			return
		}
		if !filepath.IsLocal(rel) || filepath.Clean(rel) != rel {
			t.Fatalf("servable(%q) but it is not a clean local path", rel)
		}
		for _, seg := range strings.Split(rel, "/") {
			if strings.HasPrefix(seg, ".") {
				t.Fatalf("servable(%q) admits a dot segment", rel)
			}
		}
	})
}

// FuzzHandler: whatever the request path, nothing outside the metadata and
// targets directories is served.
func FuzzHandler(f *testing.F) {
	repo := newRepo(f, 64, time.Hour)
	secret := "SECRET-OUTSIDE-THE-REPOSITORY"
	if err := os.WriteFile(filepath.Join(repo.dir, "secret.txt"), []byte(secret), 0o644); err != nil {
		f.Fatal(err)
	}
	srv, err := newServer(f.Context(), testConfig(f, repo, newClock(t0.Add(time.Minute))))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(srv.close)
	h := srv.handler()
	for _, s := range []string{"/metadata/timestamp.json", "/metadata/../secret.txt", "/targets/%2e%2e/secret.txt", "/metadata/..%2fsecret.txt", "/healthz", "/secret.txt"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		req, err := http.NewRequest(http.MethodGet, "http://updates.example"+target, nil)
		if err != nil || !strings.HasPrefix(req.URL.Path, "/") {
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if strings.Contains(rec.Body.String(), secret) {
			t.Fatalf("%q served a file outside the repository", target)
		}
		if rec.Code == http.StatusOK && req.URL.Path != "/healthz" &&
			!strings.HasPrefix(req.URL.Path, "/metadata/") && !strings.HasPrefix(req.URL.Path, "/targets/") {
			t.Fatalf("%q: 200 outside /metadata/ and /targets/", target)
		}
	})
}
