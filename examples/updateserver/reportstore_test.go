package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/fleet"
)

// postgresEnv names the variable holding a PostgreSQL DSN for the tests
// (.ci/run starts a throwaway server and sets it). Each test gets its own
// database in it.
const postgresEnv = "OTASEAL_TEST_POSTGRES"

// testPostgresDSN returns a DSN of a fresh database, or skips the test
// when no server is configured, except under CI, where that fails.
func testPostgresDSN(t testing.TB) string {
	base := os.Getenv(postgresEnv)
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set: CI must start PostgreSQL (see .ci/run)", postgresEnv)
		}
		t.Skipf("%s not set: no PostgreSQL to test against", postgresEnv)
	}
	admin, err := sql.Open("pgx", base)
	require.NoError(t, err)
	defer admin.Close()
	name := fmt.Sprintf("otaseal_%d_%s", time.Now().UnixNano(), strings.ToLower(strings.NewReplacer("/", "_", "-", "_", "=", "_", ",", "_", " ", "_").Replace(t.Name())))
	if len(name) > 60 {
		name = name[:60]
	}
	_, err = admin.Exec(`CREATE DATABASE "` + name + `"`)
	require.NoError(t, err)
	t.Cleanup(func() {
		if a, err := sql.Open("pgx", base); err == nil {
			a.Exec(`DROP DATABASE IF EXISTS "` + name + `" WITH (FORCE)`)
			a.Close()
		}
	})
	return replaceDBName(t, base, name)
}

// replaceDBName points a postgres:// URL at another database.
func replaceDBName(t testing.TB, dsn, name string) string {
	i := strings.Index(dsn, "://")
	require.True(t, i > 0, "DSN %q is not a URL", dsn)
	rest := dsn[i+3:]
	q := ""
	if j := strings.IndexByte(rest, '?'); j >= 0 {
		rest, q = rest[:j], rest[j:]
	}
	if j := strings.IndexByte(rest, '/'); j >= 0 {
		rest = rest[:j]
	}
	return dsn[:i+3] + rest + "/" + name + q
}

// storeKinds are the drivers every conformance test runs on.
var storeKinds = []string{"sqlite", "postgres"}

// testDB returns a --db value for a fresh store of kind.
func testDB(t testing.TB, kind string) string {
	if kind == "postgres" {
		return testPostgresDSN(t)
	}
	return filepath.Join(t.TempDir(), "reports.db")
}

func openTestStore(t testing.TB, kind string) (reportStore, string) {
	db := testDB(t, kind)
	st, err := openReportStore(context.Background(), db)
	require.NoError(t, err)
	t.Cleanup(func() { st.close() })
	return st, db
}

func forEachStore(t *testing.T, f func(t *testing.T, st reportStore, db string)) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			st, db := openTestStore(t, kind)
			f(t, st, db)
		})
	}
}

func newStoredReport(device string, seq uint64, res fleet.Result, target string) *storedReport {
	r := &fleet.Report{DeviceID: device, RolloutID: "r-" + device, HardwareID: "acme-gw-r2", Seq: seq,
		Running: fleet.Release{Version: "1.0.0"}, Tried: fleet.Release{Target: target, Version: "1.1.0"}, Result: res,
		Metadata: fleet.MetadataVersions{Root: 1, Timestamp: 2, Snapshot: 3, Targets: 4}}
	switch res {
	case fleet.Failed:
		r.ErrorClass = fleet.ErrorInstall
	case fleet.Skipped:
		r.SkipReason = fleet.SkipPaused
	case fleet.Confirmed:
		r.Running = r.Tried
	}
	payload, err := r.Marshal()
	if err != nil {
		panic(err)
	}
	return &storedReport{Report: r, Payload: payload, Digest: fmt.Sprintf("digest-%s-%d-%s", device, seq, res), Auth: "signature", ReceivedAt: time.Now()}
}

const testTarget = "acme-gw-r2/1.1.0/firmware.bin"

func TestStoreConformance(t *testing.T) {
	ctx := context.Background()
	forEachStore(t, func(t *testing.T, st reportStore, _ string) {
		res, err := st.add(ctx, newStoredReport("d1", 1, fleet.Failed, testTarget))
		require.NoError(t, err)
		assert.Equal(t, addStored, res)

		// The same report again: a duplicate, stored once.
		res, err = st.add(ctx, newStoredReport("d1", 1, fleet.Failed, testTarget))
		require.NoError(t, err)
		assert.Equal(t, addDuplicate, res)

		// Another report under the same number: refused.
		_, err = st.add(ctx, newStoredReport("d1", 1, fleet.Confirmed, testTarget))
		var re *replayError
		require.ErrorAs(t, err, &re)
		assert.True(t, re.Conflict)

		// A newer one replaces the device's outcome; an older one is refused.
		_, err = st.add(ctx, newStoredReport("d1", 3, fleet.Confirmed, testTarget))
		require.NoError(t, err)
		_, err = st.add(ctx, newStoredReport("d1", 2, fleet.Reverted, testTarget))
		require.ErrorAs(t, err, &re)
		assert.Equal(t, uint64(3), re.LastSeq)

		_, err = st.add(ctx, newStoredReport("d2", 1, fleet.Reverted, testTarget))
		require.NoError(t, err)
		_, err = st.add(ctx, newStoredReport("d3", 1, fleet.Skipped, testTarget))
		require.NoError(t, err)
		cut := newStoredReport("d4", 1, fleet.Failed, testTarget)
		cut.ErrorClass = fleet.ErrorNetwork
		_, err = st.add(ctx, cut)
		require.NoError(t, err)

		seqs, err := st.seqs(ctx, "d1")
		require.NoError(t, err)
		assert.Equal(t, []uint64{1, 3}, seqs)

		attempts, failures, err := st.attempts(ctx, testTarget, 0)
		require.NoError(t, err)
		assert.Equal(t, int64(2), attempts, "d1 confirmed at last, d2 reverted; d3 skipped and d4 cut off by the network are no attempts")
		assert.Equal(t, int64(1), failures)

		outs, err := st.outcomes(ctx, testTarget)
		require.NoError(t, err)
		require.Len(t, outs, 2)
		assert.Equal(t, "d1", outs[0].DeviceID)
		assert.Equal(t, fleet.Confirmed, outs[0].Result)
		assert.Equal(t, fleet.Reverted, outs[1].Result)
		assert.Equal(t, "r-d2", outs[1].RolloutID)

		// Attempts after a report ID: the window a pause starts.
		attempts, _, err = st.attempts(ctx, testTarget, outs[1].ReportID)
		require.NoError(t, err)
		assert.Equal(t, int64(0), attempts)

		require.NoError(t, st.enrol(ctx, []knownDevice{{"d1", "other", "other"}, {"e1", "acme-gw-r2", "r-e1"}}))
		devs, err := st.devices(ctx)
		require.NoError(t, err)
		assert.Equal(t, []knownDevice{{"d1", "acme-gw-r2", "r-d1"}, {"d2", "acme-gw-r2", "r-d2"}, {"d3", "acme-gw-r2", "r-d3"}, {"d4", "acme-gw-r2", "r-d4"}, {"e1", "acme-gw-r2", "r-e1"}}, devs,
			"enrolment leaves known devices as they are")

		_, ok, err := st.lastPause(ctx, testTarget)
		require.NoError(t, err)
		assert.False(t, ok)
		p := fleet.HealthPause{Release: testTarget, AfterReportID: 7, Attempts: 20, Failures: 2, Published: true, At: time.Unix(1700000000, 0).UTC()}
		require.NoError(t, st.recordPause(ctx, p))
		p2 := p
		p2.AfterReportID, p2.Published = 9, false
		require.NoError(t, st.recordPause(ctx, p2))
		got, ok, err := st.lastPause(ctx, testTarget)
		require.NoError(t, err)
		require.True(t, ok)
		assert.Equal(t, p2, got)
	})
}

// TestStoreMigrationsVersioned: reopening runs no migration twice, and a
// database a newer server migrated is refused rather than misread.
func TestStoreMigrationsVersioned(t *testing.T) {
	ctx := context.Background()
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			db := testDB(t, kind)
			st, err := openReportStore(ctx, db)
			require.NoError(t, err)
			_, err = st.add(ctx, newStoredReport("d1", 1, fleet.Confirmed, testTarget))
			require.NoError(t, err)
			require.NoError(t, st.close())

			st, err = openReportStore(ctx, db)
			require.NoError(t, err, "reopening must not migrate again")
			seqs, err := st.seqs(ctx, "d1")
			require.NoError(t, err)
			assert.Equal(t, []uint64{1}, seqs)
			s := st.(*sqlStore)
			var n int
			require.NoError(t, s.db.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n))
			assert.Equal(t, len(s.d.migrations), n)
			_, err = s.db.Exec(s.q(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)`), len(s.d.migrations)+1)
			require.NoError(t, err)
			require.NoError(t, st.close())

			_, err = openReportStore(ctx, db)
			assert.ErrorContains(t, err, "newer server")
		})
	}
}

func TestSQLiteIsWAL(t *testing.T) {
	st, _ := openTestStore(t, "sqlite")
	var mode, sync string
	db := st.(*sqlStore).db
	require.NoError(t, db.QueryRow(`PRAGMA journal_mode`).Scan(&mode))
	require.NoError(t, db.QueryRow(`PRAGMA synchronous`).Scan(&sync))
	assert.Equal(t, "wal", mode)
	assert.Equal(t, "2", sync, "synchronous=FULL")
}

func testDeviceKey(t testing.TB) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return k
}
