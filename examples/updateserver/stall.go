package main

import (
	"errors"
	"io"
	"math"
	"net/http"
	"os"
	"time"
)

// progressChunk is the unit of write progress: each chunk of a response
// must reach the network within the stall timeout of the previous one.
// Small enough that a slow but live link keeps up, large enough that a
// firmware image costs few deadline updates; sendfile still carries each
// chunk.
const progressChunk = 16 << 10

// dropStalled gives every response a write deadline of StallTimeout that
// moves forward as the response makes progress. A client that stops
// reading is dropped once its socket buffer has been full that long, which
// frees the connection and the open file; a slow client that keeps
// reading is never cut off, however long the image takes. (A plain
// http.Server.WriteTimeout would bound the whole download instead.)
func (s *server) dropStalled(h http.Handler) http.Handler {
	d := s.cfg.StallTimeout
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pw := &progressWriter{ResponseWriter: w, rc: http.NewResponseController(w), stall: d}
		// Also bounds what the server writes after the handler returns
		// (buffered bytes, the end of a chunked body).
		pw.extend()
		h.ServeHTTP(pw, r)
		if pw.stalled {
			s.log.Warn("dropped a stalled response", "path", r.URL.Path, "remote", r.RemoteAddr,
				"sent", pw.sent, "stall_timeout", d, "device", deviceOf(r.TLS))
		}
	})
}

// progressWriter moves the connection's write deadline forward before
// each chunk it writes.
type progressWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	stall   time.Duration
	sent    int64
	stalled bool
}

func (p *progressWriter) extend() {
	// http.ErrNotSupported only for writers without a connection (tests'
	// recorders); there is nothing to drop then.
	p.rc.SetWriteDeadline(time.Now().Add(p.stall))
}

// note records a write error that was the stall deadline.
func (p *progressWriter) note(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		p.stalled = true
	}
	return err
}

func (p *progressWriter) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return p.ResponseWriter.Write(b)
	}
	n := 0
	for n < len(b) {
		p.extend()
		m, err := p.ResponseWriter.Write(b[n:min(len(b), n+progressChunk)])
		n += m
		p.sent += int64(m)
		if err != nil {
			return n, p.note(err)
		}
	}
	return n, nil
}

// ReadFrom is how http.ServeContent sends a file; it keeps the sendfile
// path of the ResponseWriter below, a chunk at a time.
func (p *progressWriter) ReadFrom(src io.Reader) (int64, error) {
	rf, ok := p.ResponseWriter.(io.ReaderFrom)
	if !ok {
		return io.Copy(struct{ io.Writer }{p}, src)
	}
	// net's sendfile recognises an *os.File alone or under one
	// io.LimitedReader, not under two: unwrap ServeContent's limit and
	// give each chunk a limit of its own.
	outer, _ := src.(*io.LimitedReader)
	inner, remain := src, int64(math.MaxInt64)
	if outer != nil {
		inner, remain = outer.R, outer.N
	}
	var total int64
	for remain > 0 {
		want := min(remain, progressChunk)
		p.extend()
		n, err := rf.ReadFrom(&io.LimitedReader{R: inner, N: want})
		total += n
		p.sent += n
		remain -= n
		if outer != nil {
			outer.N = remain
		}
		if err != nil {
			return total, p.note(err)
		}
		if n < want {
			break // the end of src
		}
	}
	return total, nil
}

// Unwrap lets http.ResponseController reach the connection.
func (p *progressWriter) Unwrap() http.ResponseWriter { return p.ResponseWriter }
