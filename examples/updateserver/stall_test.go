package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// imagePath is the URL path of repo's firmware image.
func imagePath(repo *testRepo) string {
	return fmt.Sprintf("/targets/%s/2.4.1/%x.firmware.bin", hardwareID, sha256.Sum256(repo.image))
}

// stalledConn is a client that sent one GET and does not read the answer.
type stalledConn struct {
	net.Conn
}

// stallGet connects to addr from localIP (nil: any), with a receive
// buffer far below the images' size (autotuning could grow it to tens of
// MiB), and sends a GET for path without reading the answer.
func stallGet(t testing.TB, addr string, localIP net.IP, path string) *stalledConn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if localIP != nil {
		d.LocalAddr = &net.TCPAddr{IP: localIP}
	}
	conn, err := d.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	require.NoError(t, conn.(*net.TCPConn).SetReadBuffer(256<<10))
	_, err = fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, addr)
	require.NoError(t, err)
	return &stalledConn{conn}
}

// stalledOutcome is what a stalled client finds once it reads again.
type stalledOutcome int

const (
	outcomeDropped stalledOutcome = iota // 200, then the body cut short
	outcomeFull                          // the whole body: never dropped
	outcomeRefused                       // 5xx
	outcomeOther                         // anything else (404 ...)
)

// finish reads what the server sent and classifies it; want is the size
// of the whole body.
func (c *stalledConn) finish(t testing.TB, want int64) (stalledOutcome, int) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		// Closed before any header: only a drop does that after the
		// request was read.
		return outcomeDropped, 0
	}
	defer resp.Body.Close()
	n, _ := io.Copy(io.Discard, resp.Body)
	switch {
	case resp.StatusCode == http.StatusOK && n == want:
		return outcomeFull, resp.StatusCode
	case resp.StatusCode == http.StatusOK:
		return outcomeDropped, resp.StatusCode
	case resp.StatusCode >= 500:
		return outcomeRefused, resp.StatusCode
	}
	return outcomeOther, resp.StatusCode
}

// logCount counts the log records with message msg.
func logCount(logs, msg string) int {
	return strings.Count(logs, `"msg":"`+msg+`"`)
}

// A client that stops reading a firmware download is dropped once the
// response has made no progress for the stall timeout.
func TestStalledDownloadDropped(t *testing.T) {
	// Far larger than what the socket buffers hold (the server's send
	// buffer grows to 4 MiB by default).
	repo := newRepo(t, 16<<20, time.Hour)
	logs := &syncBuffer{}
	cfg := testConfig(t, repo, newClock(t0.Add(time.Minute)))
	cfg.Log = slog.New(slog.NewJSONHandler(logs, nil))
	cfg.StallTimeout = 300 * time.Millisecond
	r := start(t, cfg, nil)

	c := stallGet(t, strings.TrimPrefix(r.httpURL, "http://"), nil, imagePath(repo))
	require.Eventually(t, func() bool { return logCount(logs.String(), "dropped a stalled response") == 1 },
		5*time.Second, 20*time.Millisecond, "the stalled download was not dropped; log:\n%s", logs)
	got, _ := c.finish(t, int64(len(repo.image)))
	assert.Equal(t, outcomeDropped, got)

	// The server still serves.
	code, _, _ := rawGet(t, strings.TrimPrefix(r.httpURL, "http://"), "GET", "/metadata/timestamp.json")
	assert.Equal(t, http.StatusOK, code)
}

// A device on a slow link that keeps reading is never dropped, however
// much longer than the stall timeout its download takes: the deadline
// moves with the progress.
func TestSlowDownloadKept(t *testing.T) {
	const (
		// A stall long enough that a reader starved of CPU on a loaded
		// machine (the race detector, parallel packages) still counts as
		// moving; the download lasts longer than it all the same.
		stall = 1500 * time.Millisecond
		step  = 64 << 10
		pause = 15 * time.Millisecond // far below stall
	)
	repo := newRepo(t, 8<<20, time.Hour)
	logs := &syncBuffer{}
	cfg := testConfig(t, repo, newClock(t0.Add(time.Minute)))
	cfg.Log = slog.New(slog.NewJSONHandler(logs, nil))
	cfg.StallTimeout = stall
	r := start(t, cfg, nil)

	c := stallGet(t, strings.TrimPrefix(r.httpURL, "http://"), nil, imagePath(repo))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	// 128 pauses of 15 ms: with at most about 4.5 MiB in the socket
	// buffers, the server sends for more than the stall timeout.
	var body bytes.Buffer
	for {
		n, err := io.CopyN(&body, resp.Body, step)
		if err == io.EOF || n < step {
			break
		}
		require.NoError(t, err)
		time.Sleep(pause)
	}
	assert.Equal(t, len(repo.image), body.Len(), "the slow download was cut short; log:\n%s", logs)
	assert.Equal(t, sha256.Sum256(repo.image), sha256.Sum256(body.Bytes()))
	assert.Zero(t, logCount(logs.String(), "dropped a stalled response"))
}

// chunkRecorder is a ResponseWriter with a connection's write deadline
// and sendfile entry point, recording how progressWriter uses them.
type chunkRecorder struct {
	http.ResponseWriter
	body      bytes.Buffer
	deadlines int
	chunks    []int64 // the limit of each ReadFrom call, or of each Write
	fileShape bool    // every ReadFrom got an *os.File under one LimitedReader
	failAt    int     // the chunk (1-based) that fails with a stall; 0: none
}

func (c *chunkRecorder) SetWriteDeadline(time.Time) error { c.deadlines++; return nil }

func (c *chunkRecorder) ReadFrom(r io.Reader) (int64, error) {
	lr, ok := r.(*io.LimitedReader)
	if ok {
		_, ok = lr.R.(*os.File)
	}
	c.fileShape = c.fileShape && ok
	if !ok {
		return 0, errors.New("not the sendfile shape")
	}
	c.chunks = append(c.chunks, lr.N)
	if len(c.chunks) == c.failAt {
		return 0, os.ErrDeadlineExceeded
	}
	return c.body.ReadFrom(r)
}

func (c *chunkRecorder) Write(b []byte) (int, error) {
	c.chunks = append(c.chunks, int64(len(b)))
	if len(c.chunks) == c.failAt {
		return 0, os.ErrDeadlineExceeded
	}
	return c.body.Write(b)
}

// The write deadline moves before every chunk, and a file still reaches
// the connection in the shape sendfile takes.
func TestProgressWriterChunks(t *testing.T) {
	const size = 5*progressChunk + 123
	data := make([]byte, size)
	rand.Read(data)
	file := filepath.Join(t.TempDir(), "image")
	require.NoError(t, os.WriteFile(file, data, 0o644))
	newWriter := func(failAt int) (*progressWriter, *chunkRecorder) {
		rec := &chunkRecorder{ResponseWriter: httptest.NewRecorder(), fileShape: true, failAt: failAt}
		return &progressWriter{ResponseWriter: rec, rc: http.NewResponseController(rec), stall: time.Minute}, rec
	}
	want := []int64{progressChunk, progressChunk, progressChunk, progressChunk, progressChunk, 123}

	// sendFile sends the file as http.ServeContent does.
	sendFile := func(t *testing.T, pw *progressWriter) (int64, error) {
		f, err := os.Open(file)
		require.NoError(t, err)
		defer f.Close()
		return io.CopyN(pw, f, size)
	}

	t.Run("file", func(t *testing.T) {
		pw, rec := newWriter(0)
		n, err := sendFile(t, pw)
		require.NoError(t, err)
		assert.EqualValues(t, size, n)
		assert.Equal(t, data, rec.body.Bytes())
		// The last call finds the end of the limit and stops.
		assert.Equal(t, want, rec.chunks)
		assert.True(t, rec.fileShape)
		assert.Equal(t, len(rec.chunks), rec.deadlines)
		assert.False(t, pw.stalled)
	})
	t.Run("write", func(t *testing.T) {
		pw, rec := newWriter(0)
		n, err := pw.Write(data)
		require.NoError(t, err)
		assert.Equal(t, size, n)
		assert.Equal(t, data, rec.body.Bytes())
		assert.Equal(t, want, rec.chunks)
		assert.Equal(t, len(want), rec.deadlines)
	})
	t.Run("stall", func(t *testing.T) {
		pw, rec := newWriter(3)
		n, err := sendFile(t, pw)
		assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
		assert.EqualValues(t, 2*progressChunk, n)
		assert.True(t, pw.stalled)
		assert.Len(t, rec.chunks, 3, "no chunk after the stall")
	})
}
