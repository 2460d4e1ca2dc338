package main

import (
	"io"
	"log/slog"
	"os"

	"github.com/otaseal/otaseal/verify"
)

// slotFiles are the two slot files by the names the state records, "a"
// and "b": the verify.Slots of the agent's Cycle, which alone decides
// which slot is written, and refuses the running one.
type slotFiles struct {
	paths map[string]string
	log   *slog.Logger
	total int64 // length of the image being installed, for progress lines
}

func (s *slotFiles) Open(slot string) (verify.SlotReader, error) {
	f, err := os.Open(s.paths[slot])
	if err != nil {
		return nil, fileErr("slot-"+slot, s.paths[slot], err)
	}
	return f, nil
}

func (s *slotFiles) Create(slot string) (io.WriteCloser, error) {
	f, err := os.OpenFile(s.paths[slot], os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fileErr("slot-"+slot, s.paths[slot], err)
	}
	return &progress{f: f, total: s.total, log: s.log}, nil
}

// progress logs every quarter of a slot write.
type progress struct {
	f                  *os.File
	total, done, shown int64
	log                *slog.Logger
}

func (p *progress) Write(b []byte) (int, error) {
	n, err := p.f.Write(b)
	p.done += int64(n)
	if p.total > 0 {
		if q := p.done * 4 / p.total; q > p.shown {
			p.shown = q
			p.log.Info("progress", "written", p.done, "of", p.total, "percent", q*25)
		}
	}
	return n, err
}

func (p *progress) Sync() error  { return p.f.Sync() }
func (p *progress) Close() error { return p.f.Close() }
