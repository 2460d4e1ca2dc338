package main

import (
	"encoding/json"
	"io"
	"log/slog"
)

// renewReport is what "updateserver renew" prints.
type renewReport struct {
	Repository       string `json:"repository"`
	TimestampVersion int64  `json:"timestamp_version"`
	SnapshotVersion  int64  `json:"snapshot_version"`
	Renewed          bool   `json:"renewed"`
	Error            string `json:"error,omitempty"`
}

// renewed reports the one check newServer ran for the renew subcommand
// and returns its exit status: a cron job sees a failure in the status
// and in the printed JSON.
func renewed(s *server, stdout io.Writer, log *slog.Logger) int {
	s.mu.Lock()
	st := s.status
	s.mu.Unlock()
	rep := renewReport{
		Repository:       s.cfg.Dir,
		TimestampVersion: st.timestampVersion,
		SnapshotVersion:  st.snapshotVersion,
		Renewed:          !st.lastResign.IsZero(),
	}
	if s.bucket != nil {
		rep.Repository = redactURL(s.cfg.BucketURL)
	}
	code := exitOK
	if st.err != nil {
		rep.Error = st.err.Error()
		code = exitFailed
		log.Error("renew failed", "err", st.err)
	}
	json.NewEncoder(stdout).Encode(rep)
	return code
}
