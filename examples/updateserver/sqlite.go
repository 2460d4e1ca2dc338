package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"sync"

	_ "modernc.org/sqlite" // database/sql driver "sqlite", pure Go
)

// sqliteMigrations are the schema versions of the SQLite store. Append a
// version; never edit one that has shipped.
var sqliteMigrations = [][]string{
	{ // 1: devices, reports, latest outcomes, health-rule pauses
		`CREATE TABLE devices (
			device_id TEXT PRIMARY KEY,
			hardware_id TEXT NOT NULL,
			rollout_id TEXT NOT NULL,
			last_seq INTEGER NOT NULL,
			last_digest TEXT NOT NULL)`,
		`CREATE TABLE reports (
			id INTEGER PRIMARY KEY AUTOINCREMENT,
			device_id TEXT NOT NULL REFERENCES devices (device_id),
			seq INTEGER NOT NULL,
			hardware_id TEXT NOT NULL,
			rollout_id TEXT NOT NULL,
			running_target TEXT NOT NULL,
			running_version TEXT NOT NULL,
			tried_target TEXT NOT NULL,
			tried_version TEXT NOT NULL,
			result TEXT NOT NULL,
			reason TEXT NOT NULL,
			detail TEXT NOT NULL,
			root_version INTEGER NOT NULL,
			timestamp_version INTEGER NOT NULL,
			snapshot_version INTEGER NOT NULL,
			targets_version INTEGER NOT NULL,
			device_time INTEGER NOT NULL,
			received_at INTEGER NOT NULL,
			auth TEXT NOT NULL,
			digest TEXT NOT NULL,
			payload BLOB NOT NULL,
			UNIQUE (device_id, seq))`,
		`CREATE TABLE outcomes (
			device_id TEXT NOT NULL,
			target TEXT NOT NULL,
			rollout_id TEXT NOT NULL,
			result TEXT NOT NULL,
			report_id INTEGER NOT NULL,
			PRIMARY KEY (device_id, target))`,
		`CREATE INDEX outcomes_by_target ON outcomes (target, report_id)`,
		`CREATE TABLE pauses (
			id INTEGER PRIMARY KEY AUTOINCREMENT,
			target TEXT NOT NULL,
			after_report_id INTEGER NOT NULL,
			attempts INTEGER NOT NULL,
			failures INTEGER NOT NULL,
			published BOOLEAN NOT NULL,
			paused_at INTEGER NOT NULL)`,
	},
}

// openSQLite opens the SQLite store in file path: WAL mode, so readers do
// not wait for the writer; synchronous=FULL, so that a committed report
// survives a power cut and not only a crash of the process.
func openSQLite(ctx context.Context, path string) (*sqlStore, error) {
	v := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)", "foreign_keys(1)"} {
		v.Add("_pragma", p)
	}
	v.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?"+v.Encode())
	if err != nil {
		return nil, fmt.Errorf("report database %s: %w", path, err)
	}
	db.SetMaxOpenConns(8)
	s := &sqlStore{db: db, d: dialect{name: "sqlite", migrations: sqliteMigrations}, writeMu: &sync.Mutex{}}
	var mode string
	if err := db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		db.Close()
		return nil, fmt.Errorf("report database %s: %w", path, err)
	}
	if mode != "wal" {
		db.Close()
		return nil, fmt.Errorf("report database %s: journal mode %q, want wal", path, mode)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("report database %s: %w", path, err)
	}
	return s, nil
}
