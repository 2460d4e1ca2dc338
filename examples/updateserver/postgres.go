package main

import (
	"context"
	"database/sql"
	"fmt"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

// postgresMigrations are the schema versions of the PostgreSQL store,
// the same tables as sqliteMigrations in PostgreSQL's types. Append a
// version; never edit one that has shipped.
var postgresMigrations = [][]string{
	{ // 1: devices, reports, latest outcomes, health-rule pauses
		`CREATE TABLE devices (
			device_id TEXT PRIMARY KEY,
			hardware_id TEXT NOT NULL,
			rollout_id TEXT NOT NULL,
			last_seq BIGINT NOT NULL,
			last_digest TEXT NOT NULL)`,
		`CREATE TABLE reports (
			id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			device_id TEXT NOT NULL REFERENCES devices (device_id),
			seq BIGINT NOT NULL,
			hardware_id TEXT NOT NULL,
			rollout_id TEXT NOT NULL,
			running_target TEXT NOT NULL,
			running_version TEXT NOT NULL,
			tried_target TEXT NOT NULL,
			tried_version TEXT NOT NULL,
			result TEXT NOT NULL,
			reason TEXT NOT NULL,
			detail TEXT NOT NULL,
			root_version BIGINT NOT NULL,
			timestamp_version BIGINT NOT NULL,
			snapshot_version BIGINT NOT NULL,
			targets_version BIGINT NOT NULL,
			device_time BIGINT NOT NULL,
			received_at BIGINT NOT NULL,
			auth TEXT NOT NULL,
			digest TEXT NOT NULL,
			payload BYTEA NOT NULL,
			UNIQUE (device_id, seq))`,
		`CREATE TABLE outcomes (
			device_id TEXT NOT NULL,
			target TEXT NOT NULL,
			rollout_id TEXT NOT NULL,
			result TEXT NOT NULL,
			report_id BIGINT NOT NULL,
			PRIMARY KEY (device_id, target))`,
		`CREATE INDEX outcomes_by_target ON outcomes (target, report_id)`,
		`CREATE TABLE pauses (
			id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			target TEXT NOT NULL,
			after_report_id BIGINT NOT NULL,
			attempts BIGINT NOT NULL,
			failures BIGINT NOT NULL,
			published BOOLEAN NOT NULL,
			paused_at BIGINT NOT NULL)`,
	},
}

// migrationLockID is the advisory lock that serialises the migrations of
// replicas starting together ("otaseal" in ASCII, as a number).
const migrationLockID = 0x6f74617365616c

// openPostgres opens the PostgreSQL store at dsn (postgres://...). Every
// commit is durable as PostgreSQL's synchronous_commit makes it (on by
// default); the device's row lock orders its concurrent reports.
func openPostgres(ctx context.Context, dsn string) (*sqlStore, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("report database: %w", err)
	}
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(32)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("report database: %w", err)
	}
	s := &sqlStore{db: db, d: dialect{name: "postgres", dollar: true, forUpdate: " FOR UPDATE",
		migrations: postgresMigrations, lockMigrations: fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", migrationLockID)}}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("report database: %w", err)
	}
	return s, nil
}
