package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/otaseal/otaseal/fleet"
)

// dialect is what differs between the two databases: placeholders, the
// schema's types, row locks, and how writers are serialised.
type dialect struct {
	name string
	// dollar: PostgreSQL's $1 placeholders instead of ?.
	dollar bool
	// forUpdate locks the device row for the transaction (PostgreSQL);
	// SQLite's writers are serialised as a whole.
	forUpdate string
	// migrations are the schema versions, in order: migrations[i] takes
	// the schema from version i to i+1.
	migrations [][]string
	// lockMigrations, run first in the migration transaction, keeps two
	// replicas starting together from migrating at once.
	lockMigrations string
}

// sqlStore is reportStore over database/sql.
type sqlStore struct {
	db *sql.DB
	d  dialect
	// writeMu serialises SQLite's write transactions in the process:
	// SQLite has one writer, and letting a thousand goroutines contend
	// through busy timeouts is slower than a queue.
	writeMu *sync.Mutex
}

// q rewrites ? placeholders for the dialect.
func (s *sqlStore) q(query string) string {
	if !s.d.dollar {
		return query
	}
	var b strings.Builder
	n := 0
	for _, c := range query {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// migrate brings the schema to the newest version this server knows, one
// transaction per version, and refuses a database a newer server wrote.
func (s *sqlStore) migrate(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if s.d.lockMigrations != "" {
		if _, err := tx.ExecContext(ctx, s.d.lockMigrations); err != nil {
			return fmt.Errorf("locking for migration: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("creating schema_migrations: %w", err)
	}
	var have int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return err
	}
	if have > len(s.d.migrations) {
		return fmt.Errorf("the report database has schema version %d; this server knows up to %d (a newer server migrated it)", have, len(s.d.migrations))
	}
	for v := have; v < len(s.d.migrations); v++ {
		for _, stmt := range s.d.migrations[v] {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("schema migration %d: %w", v+1, err)
			}
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`), v+1, time.Now().Unix()); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func (s *sqlStore) lockWrites() func() {
	if s.writeMu == nil {
		return func() {}
	}
	s.writeMu.Lock()
	return s.writeMu.Unlock
}

func (s *sqlStore) add(ctx context.Context, r *storedReport) (addResult, error) {
	defer s.lockWrites()()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO devices (device_id, hardware_id, rollout_id, last_seq, last_digest)
		VALUES (?, ?, ?, 0, '') ON CONFLICT (device_id) DO NOTHING`), r.DeviceID, r.HardwareID, r.RolloutID); err != nil {
		return 0, err
	}
	var last uint64
	var lastDigest string
	if err := tx.QueryRowContext(ctx, s.q(`SELECT last_seq, last_digest FROM devices WHERE device_id = ?`+s.d.forUpdate), r.DeviceID).Scan(&last, &lastDigest); err != nil {
		return 0, err
	}
	switch {
	case r.Seq == last && r.Digest == lastDigest:
		return addDuplicate, nil
	case r.Seq <= last:
		return 0, &replayError{Device: r.DeviceID, Seq: r.Seq, LastSeq: last, Conflict: r.Seq == last}
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE devices SET last_seq = ?, last_digest = ?, hardware_id = ?, rollout_id = ? WHERE device_id = ?`),
		r.Seq, r.Digest, r.HardwareID, r.RolloutID, r.DeviceID); err != nil {
		return 0, err
	}
	var id int64
	errClass := string(r.ErrorClass)
	if r.SkipReason != "" {
		errClass = string(r.SkipReason)
	}
	if err := tx.QueryRowContext(ctx, s.q(`INSERT INTO reports (device_id, seq, hardware_id, rollout_id, running_target, running_version,
		tried_target, tried_version, result, reason, detail, root_version, timestamp_version, snapshot_version, targets_version,
		device_time, received_at, auth, digest, payload)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		r.DeviceID, r.Seq, r.HardwareID, r.RolloutID, r.Running.Target, r.Running.Version,
		r.Tried.Target, r.Tried.Version, string(r.Result), errClass, r.Detail,
		r.Metadata.Root, r.Metadata.Timestamp, r.Metadata.Snapshot, r.Metadata.Targets,
		unixOrZero(r.Time), r.ReceivedAt.Unix(), r.Auth, r.Digest, r.Payload).Scan(&id); err != nil {
		return 0, err
	}
	if countsAsAttempt(r.Report) {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO outcomes (device_id, target, rollout_id, result, report_id) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (device_id, target) DO UPDATE SET rollout_id = excluded.rollout_id, result = excluded.result, report_id = excluded.report_id`),
			r.DeviceID, r.Tried.Target, r.RolloutID, string(r.Result), id); err != nil {
			return 0, err
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("committing report %d of %s: %w", r.Seq, r.DeviceID, err)
	}
	return addStored, nil
}

// countsAsAttempt reports whether r is a device's attempt at a release
// for the statistics and the health rule: confirmed, reverted, or failed
// for a reason other than the network. A download cut by a flaky link
// says nothing about the image, and must not pause a release.
func countsAsAttempt(r *fleet.Report) bool {
	return r.Result.Attempted() && r.Tried.Target != "" && !(r.Result == fleet.Failed && r.ErrorClass == fleet.ErrorNetwork)
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func (s *sqlStore) attempts(ctx context.Context, target string, afterID int64) (int64, int64, error) {
	var attempts, failures int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT COUNT(*), COALESCE(SUM(CASE WHEN result <> 'confirmed' THEN 1 ELSE 0 END), 0)
		FROM outcomes WHERE target = ? AND report_id > ?`), target, afterID).Scan(&attempts, &failures)
	return attempts, failures, err
}

func (s *sqlStore) outcomes(ctx context.Context, target string) ([]outcome, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT device_id, rollout_id, result, report_id FROM outcomes WHERE target = ? ORDER BY device_id`), target)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []outcome
	for rows.Next() {
		var o outcome
		var res string
		if err := rows.Scan(&o.DeviceID, &o.RolloutID, &res, &o.ReportID); err != nil {
			return nil, err
		}
		o.Result = fleet.Result(res)
		out = append(out, o)
	}
	return out, rows.Err()
}

func (s *sqlStore) devices(ctx context.Context) ([]knownDevice, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT device_id, hardware_id, rollout_id FROM devices ORDER BY device_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []knownDevice
	for rows.Next() {
		var d knownDevice
		if err := rows.Scan(&d.DeviceID, &d.HardwareID, &d.RolloutID); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

func (s *sqlStore) enrol(ctx context.Context, ds []knownDevice) error {
	defer s.lockWrites()()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, s.q(`INSERT INTO devices (device_id, hardware_id, rollout_id, last_seq, last_digest)
		VALUES (?, ?, ?, 0, '') ON CONFLICT (device_id) DO NOTHING`))
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, d := range ds {
		if _, err := stmt.ExecContext(ctx, d.DeviceID, d.HardwareID, d.RolloutID); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func (s *sqlStore) recordPause(ctx context.Context, p fleet.HealthPause) error {
	defer s.lockWrites()()
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO pauses (target, after_report_id, attempts, failures, published, paused_at) VALUES (?, ?, ?, ?, ?, ?)`),
		p.Release, p.AfterReportID, p.Attempts, p.Failures, p.Published, p.At.Unix())
	return err
}

func (s *sqlStore) lastPause(ctx context.Context, target string) (fleet.HealthPause, bool, error) {
	p := fleet.HealthPause{Release: target}
	var at int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT after_report_id, attempts, failures, published, paused_at FROM pauses
		WHERE target = ? ORDER BY id DESC LIMIT 1`), target).Scan(&p.AfterReportID, &p.Attempts, &p.Failures, &p.Published, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return fleet.HealthPause{}, false, nil
	}
	if err != nil {
		return fleet.HealthPause{}, false, err
	}
	p.At = time.Unix(at, 0).UTC()
	return p, true, nil
}

// maxReportID is the newest report's ID (0 when none): the point a pause
// counted up to.
func (s *sqlStore) maxReportID(ctx context.Context, target string) (int64, error) {
	var id int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT COALESCE(MAX(report_id), 0) FROM outcomes WHERE target = ?`), target).Scan(&id)
	return id, err
}

func (s *sqlStore) seqs(ctx context.Context, deviceID string) ([]uint64, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT seq FROM reports WHERE device_id = ? ORDER BY seq`), deviceID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []uint64
	for rows.Next() {
		var n uint64
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

func (s *sqlStore) close() error { return s.db.Close() }
