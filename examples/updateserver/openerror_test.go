package main

import (
	"context"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// failingRoot is a repository directory whose every Open fails with err,
// as os.Root reports it.
type failingRoot struct{ err error }

func (f failingRoot) Open(name string) (*os.File, error) {
	return nil, &fs.PathError{Op: "openat", Path: name, Err: f.err}
}

func (failingRoot) Close() error { return nil }

// The server's own faults are never a 404: a device reads 404 on
// N.root.json as "no newer root" and would skip a root rotation.
func TestOpenErrorStatus(t *testing.T) {
	repo := newRepo(t, 1<<10, time.Hour)
	srv, err := newServer(context.Background(), testConfig(t, repo, newClock(t0.Add(time.Minute))))
	require.NoError(t, err)
	t.Cleanup(srv.close) // the real roots, before they are replaced
	metaRoot, targetsRoot := srv.metaRoot, srv.targetsRoot
	t.Cleanup(func() { srv.metaRoot, srv.targetsRoot = metaRoot, targetsRoot })
	h := srv.handler()

	for _, tc := range []struct {
		name       string
		err        error
		code       int
		retryAfter bool
	}{
		{"missing", syscall.ENOENT, http.StatusNotFound, false},
		{"missing (fs)", fs.ErrNotExist, http.StatusNotFound, false},
		{"a file on the path", syscall.ENOTDIR, http.StatusNotFound, false},
		{"name too long", syscall.ENAMETOOLONG, http.StatusNotFound, false},
		{"process out of descriptors", syscall.EMFILE, http.StatusServiceUnavailable, true},
		{"system out of descriptors", syscall.ENFILE, http.StatusServiceUnavailable, true},
		{"out of memory", syscall.ENOMEM, http.StatusServiceUnavailable, true},
		{"permission", syscall.EACCES, http.StatusInternalServerError, false},
		{"not permitted", syscall.EPERM, http.StatusInternalServerError, false},
		{"I/O error", syscall.EIO, http.StatusInternalServerError, false},
		{"symbolic link loop", syscall.ELOOP, http.StatusInternalServerError, false},
		{"root closed", fs.ErrClosed, http.StatusInternalServerError, false},
	} {
		srv.metaRoot, srv.targetsRoot = failingRoot{tc.err}, failingRoot{tc.err}
		for _, path := range []string{"/metadata/2.root.json", "/metadata/timestamp.json", imagePath(repo)} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
			assert.Equal(t, tc.code, rec.Code, "%s: %s", tc.name, path)
			if tc.retryAfter {
				assert.Equal(t, retryAfter, rec.Header().Get("Retry-After"), "%s: %s", tc.name, path)
				assert.Equal(t, "close", rec.Header().Get("Connection"), "%s: %s", tc.name, path)
			} else {
				assert.Empty(t, rec.Header().Get("Retry-After"), "%s: %s", tc.name, path)
			}
		}
	}
}
