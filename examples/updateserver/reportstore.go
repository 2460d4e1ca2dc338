package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/otaseal/otaseal/fleet"
)

// reportStore is where the server keeps device reports: a database that
// outlives the process. Two implementations share the SQL of sqlstore.go:
// SQLite (modernc.org/sqlite, a file next to the repository, the default)
// and PostgreSQL (jackc/pgx, for several server replicas). Every method is
// safe for concurrent use.
type reportStore interface {
	// add stores r atomically with the device's new sequence number and
	// its latest outcome for the release it tried, and returns only after
	// the commit: an acknowledged report survives a crash. It returns
	// addDuplicate, storing nothing, when r is byte for byte the last
	// report stored for its device (a resend after a lost answer), and a
	// *replayError when r.Seq is not above that report's.
	add(ctx context.Context, r *storedReport) (addResult, error)
	// attempts counts the devices whose latest report on target is an
	// attempt stored after report afterID, and how many of those
	// reverted or failed.
	attempts(ctx context.Context, target string, afterID int64) (attempts, failures int64, err error)
	// outcomes returns each device's latest attempt on target.
	outcomes(ctx context.Context, target string) ([]outcome, error)
	// devices returns every device the store knows: enrolled or reported.
	devices(ctx context.Context) ([]knownDevice, error)
	// enrol records devices the server has keys for, leaving devices
	// already known as they are.
	enrol(ctx context.Context, ds []knownDevice) error
	// maxReportID is the ID of the newest report counted for target (0
	// when none): where a pause's window ends.
	maxReportID(ctx context.Context, target string) (int64, error)
	// recordPause and lastPause keep the pauses the health rule caused.
	recordPause(ctx context.Context, p fleet.HealthPause) error
	lastPause(ctx context.Context, target string) (fleet.HealthPause, bool, error)
	// seqs returns the sequence numbers stored for a device, ascending.
	seqs(ctx context.Context, deviceID string) ([]uint64, error)
	close() error
}

// storedReport is a report as stored: the parsed fields, the bytes the
// device sent (evidence), their digest and how the device was
// authenticated.
type storedReport struct {
	*fleet.Report
	Digest     string
	Payload    []byte
	Auth       string // "signature" or "mtls"
	ReceivedAt time.Time
}

type addResult int

const (
	addStored addResult = iota
	addDuplicate
)

// replayError refuses a report whose sequence number is not above the
// last one stored for its device: a replay, a reordering, or a second
// report under a number already used.
type replayError struct {
	Device   string
	Seq      uint64
	LastSeq  uint64
	Conflict bool // same number as the last report, other bytes
}

func (e *replayError) Error() string {
	if e.Conflict {
		return fmt.Sprintf("report %d of %s differs from the report %d already stored: sequence numbers are used once", e.Seq, e.Device, e.Seq)
	}
	return fmt.Sprintf("report %d of %s is not newer than the last stored report %d (replayed or reordered)", e.Seq, e.Device, e.LastSeq)
}

// outcome is a device's latest attempt on one release.
type outcome struct {
	DeviceID, RolloutID string
	Result              fleet.Result
	ReportID            int64
}

// knownDevice is a device the server knows of.
type knownDevice struct {
	DeviceID, HardwareID, RolloutID string
}

// errUnknownDB marks a --db value that names no supported database.
var errUnknownDB = errors.New("--db: want a SQLite file path (or sqlite:PATH) or a postgres:// URL")

// openReportStore opens (creating, migrating) the store --db names:
// "postgres://..." or "postgresql://..." for PostgreSQL, anything else a
// SQLite file path (an optional "sqlite:" prefix is dropped).
func openReportStore(ctx context.Context, db string) (reportStore, error) {
	switch {
	case strings.HasPrefix(db, "postgres://"), strings.HasPrefix(db, "postgresql://"):
		return openPostgres(ctx, db)
	case db == "":
		return nil, errUnknownDB
	}
	return openSQLite(ctx, strings.TrimPrefix(db, "sqlite:"))
}
