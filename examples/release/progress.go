package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"
)

// isTerminal reports whether w is a terminal: progress is drawn only
// there, so scripts, CI logs and pipes see results, not redraws.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressEvery is how often a progress line is redrawn.
var progressEvery = 100 * time.Millisecond

// progress draws one line on a terminal, redrawn in place: a bar when the
// total is known (hashing an image), elapsed time otherwise (diffing,
// which reports no steps). On anything else it draws nothing. A small own
// printer rather than a library: one line, two shapes, no dependencies.
type progress struct {
	w     io.Writer
	label string
	total int64 // 0: unknown
	done  atomic.Int64
	start time.Time
	stop  chan struct{}
	wg    sync.WaitGroup
}

// startProgress begins drawing label on e's terminal; total is the work
// in bytes, or 0 when unknown. Call end when the work is over.
func startProgress(e *env, label string, total int64) *progress {
	p := &progress{label: label, total: total, start: time.Now(), stop: make(chan struct{})}
	if !e.tty {
		return p
	}
	p.w = e.stderr
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			p.draw()
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
		}
	}()
	return p
}

// add counts n more bytes done.
func (p *progress) add(n int) { p.done.Add(int64(n)) }

// reader counts what is read through r.
func (p *progress) reader(r io.Reader) io.Reader { return &countingReader{r, p} }

// end stops drawing and clears the line.
func (p *progress) end() {
	close(p.stop)
	p.wg.Wait()
	if p.w != nil {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

const barWidth = 30

func (p *progress) draw() {
	elapsed := time.Since(p.start).Round(time.Second)
	if p.total <= 0 {
		fmt.Fprintf(p.w, "\r\033[K%s ... %s", p.label, elapsed)
		return
	}
	done := min(p.done.Load(), p.total)
	fill := int(done * barWidth / p.total)
	fmt.Fprintf(p.w, "\r\033[K%s [%s%s] %3d%% %s / %s %s", p.label, strings.Repeat("=", fill), strings.Repeat(" ", barWidth-fill),
		done*100/p.total, size(done), size(p.total), elapsed)
}

type countingReader struct {
	r io.Reader
	p *progress
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.p.add(n)
	return n, err
}

// withProgress runs fn while a progress line labelled what is drawn.
func withProgress(e *env, what string, fn func() error) error {
	p := startProgress(e, what, 0)
	defer p.end()
	return fn()
}
