package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// guardedBody enforces the length limit and the minimum speed on a response
// body. The speed check runs on a timer rather than inside Read, because a
// server that stops sending leaves Read blocked: only cancelling the
// request's context unblocks it (the slow-retrieval attack). The try's
// overall deadline cancels the same context; its cause is in ctx.
type guardedBody struct {
	body      io.ReadCloser
	ctx       context.Context // the request's; nil in tests of the guard alone
	cancel    context.CancelCauseFunc
	deadline  *time.Timer // the try's overall deadline, or nil
	url       string
	remaining int64 // bytes still allowed
	max       int64

	mu       sync.Mutex
	received int64 // bytes since the window started
	timer    *time.Timer
	err      error // sticky
}

func newGuardedBody(body io.ReadCloser, cancel context.CancelCauseFunc, url string, max, minSpeed int64, window time.Duration) *guardedBody {
	g := &guardedBody{body: body, cancel: cancel, url: url, remaining: max, max: max}
	if minSpeed > 0 {
		need := int64(float64(minSpeed) * window.Seconds())
		var check func()
		check = func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			if g.err != nil {
				return
			}
			if g.received < need {
				g.err = fmt.Errorf("%w: %s: %d bytes in %v, want %d", ErrSlowRetrieval, url, g.received, window, need)
				g.cancel(g.err)
				return
			}
			g.received = 0
			g.timer = time.AfterFunc(window, check)
		}
		g.timer = time.AfterFunc(window, check)
	}
	return g
}

func (g *guardedBody) Read(p []byte) (int, error) {
	g.mu.Lock()
	if err := g.err; err != nil {
		g.mu.Unlock()
		return 0, err
	}
	g.mu.Unlock()
	// Read one byte beyond the limit to tell "exactly max" from "longer".
	if int64(len(p)) > g.remaining+1 {
		p = p[:g.remaining+1]
	}
	n, err := g.body.Read(p)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil { // the speed guard fired while we were blocked
		return 0, g.err
	}
	if int64(n) > g.remaining {
		g.err = fmt.Errorf("%w: %s exceeds %d bytes", ErrTooLong, g.url, g.max)
		return int(g.remaining), g.err
	}
	g.remaining -= int64(n)
	g.received += int64(n)
	if err == io.EOF {
		g.stopTimers() // the transfer is over; a slow consumer is not a slow server
	}
	if err != nil && err != io.EOF {
		g.err = fmt.Errorf("verify: reading %s: %w", g.url, err)
		if g.ctx != nil && errors.Is(context.Cause(g.ctx), ErrSlowRetrieval) {
			g.err = context.Cause(g.ctx) // the overall deadline fired
		}
		return n, g.err
	}
	return n, err
}

func (g *guardedBody) Close() error {
	g.mu.Lock()
	g.stopTimers()
	if g.err == nil {
		g.err = fmt.Errorf("verify: %s: read after close", g.url)
	}
	g.mu.Unlock()
	err := g.body.Close()
	g.cancel(nil)
	return err
}

// stopTimers stops the speed guard and the deadline; g.mu is held.
func (g *guardedBody) stopTimers() {
	if g.timer != nil {
		g.timer.Stop()
	}
	if g.deadline != nil {
		g.deadline.Stop()
	}
}
