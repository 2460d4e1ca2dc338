package fleet

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/otaseal/otaseal/internal/atomicfile"
)

// DefaultQueueLen is the number of unsent reports a Queue keeps when
// OpenQueue is given 0: weeks of daily cycles offline.
const DefaultQueueLen = 64

const (
	seqFile      = "seq"
	reportSuffix = ".report"
)

// Queue is a device's reports that are sealed but not yet acknowledged,
// in a directory of its state: one file per report, named by its
// sequence number, each written atomically. It holds at most its length;
// pushing more drops the oldest, so an agent offline for months neither
// fills its flash nor loses its newest reports. It is safe for use by one
// process at a time (the agent holds its state directory's lock).
type Queue struct {
	dir string
	max int
	mu  sync.Mutex
}

// QueuedReport is one sealed report waiting to be sent.
type QueuedReport struct {
	Seq      uint64
	Envelope []byte
}

// OpenQueue opens (creating) the queue in dir, keeping at most max
// reports (0: DefaultQueueLen). Temporary files a crash left are removed.
func OpenQueue(dir string, max int) (*Queue, error) {
	if max <= 0 {
		max = DefaultQueueLen
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("fleet: report queue: %w", err)
	}
	if err := atomicfile.RemoveTemps(dir); err != nil {
		return nil, fmt.Errorf("fleet: report queue: %w", err)
	}
	return &Queue{dir: dir, max: max}, nil
}

// NextSeq returns the next sequence number and makes it durable before
// returning it, so that no number is ever used twice, even after a power
// cut: a number used twice would get the second report refused as a
// replay. It never returns a number at or below a queued report's, nor
// below now in Unix seconds (zero now: no such floor): a device whose
// state directory was wiped starts again above every number it used
// before (its trusted clock only moves forward), instead of being refused
// as a replay for ever. Numbers are not consecutive.
func (q *Queue) NextSeq(now time.Time) (uint64, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	last, err := q.lastSeq()
	if err != nil {
		return 0, err
	}
	pending, err := q.list()
	if err != nil {
		return 0, err
	}
	if n := len(pending); n > 0 && pending[n-1] > last {
		last = pending[n-1]
	}
	next := last + 1
	if !now.IsZero() && now.Unix() > 0 && uint64(now.Unix()) > next && now.Unix() < 1<<53 {
		next = uint64(now.Unix())
	}
	if err := atomicfile.WriteFile(filepath.Join(q.dir, seqFile), []byte(strconv.FormatUint(next, 10)+"\n"), 0o600); err != nil {
		return 0, fmt.Errorf("fleet: report sequence: %w", err)
	}
	return next, nil
}

func (q *Queue) lastSeq() (uint64, error) {
	b, err := os.ReadFile(filepath.Join(q.dir, seqFile))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("fleet: report sequence: %w", err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("fleet: report sequence file is damaged: %q", clip(string(b)))
	}
	return n, nil
}

// Push stores a sealed report under its sequence number, then drops the
// oldest reports beyond the queue's length; it returns how many it
// dropped.
func (q *Queue) Push(seq uint64, envelope []byte) (dropped int, err error) {
	if len(envelope) > MaxEnvelopeSize {
		return 0, fmt.Errorf("%w: envelope of %d bytes", ErrTooLarge, len(envelope))
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := atomicfile.WriteFile(q.path(seq), envelope, 0o600); err != nil {
		return 0, fmt.Errorf("fleet: queueing report %d: %w", seq, err)
	}
	seqs, err := q.list()
	if err != nil {
		return 0, err
	}
	for len(seqs) > q.max {
		if err := os.Remove(q.path(seqs[0])); err != nil && !errors.Is(err, os.ErrNotExist) {
			return dropped, fmt.Errorf("fleet: dropping report %d: %w", seqs[0], err)
		}
		seqs = seqs[1:]
		dropped++
	}
	return dropped, nil
}

// Pending returns the queued reports, oldest first: the order the server
// must get them in. A file that cannot be read as a report is removed.
func (q *Queue) Pending() ([]QueuedReport, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	seqs, err := q.list()
	if err != nil {
		return nil, err
	}
	out := make([]QueuedReport, 0, len(seqs))
	for _, s := range seqs {
		b, err := os.ReadFile(q.path(s))
		if err != nil {
			return nil, fmt.Errorf("fleet: reading queued report %d: %w", s, err)
		}
		if _, perr := ParseEnvelope(b); perr != nil {
			// A damaged file would block the queue for ever.
			_ = os.Remove(q.path(s))
			continue
		}
		out = append(out, QueuedReport{Seq: s, Envelope: b})
	}
	return out, nil
}

// Remove deletes a queued report once the server acknowledged or
// refused it for good.
func (q *Queue) Remove(seq uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := os.Remove(q.path(seq)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("fleet: removing report %d: %w", seq, err)
	}
	return nil
}

func (q *Queue) path(seq uint64) string {
	return filepath.Join(q.dir, fmt.Sprintf("%020d%s", seq, reportSuffix))
}

// list returns the queued sequence numbers, ascending.
func (q *Queue) list() ([]uint64, error) {
	ents, err := os.ReadDir(q.dir)
	if err != nil {
		return nil, fmt.Errorf("fleet: report queue: %w", err)
	}
	var seqs []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), reportSuffix)
		if !ok || len(name) != 20 {
			continue
		}
		if n, err := strconv.ParseUint(name, 10, 64); err == nil {
			seqs = append(seqs, n)
		}
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	return seqs, nil
}
