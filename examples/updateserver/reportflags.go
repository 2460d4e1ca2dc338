package main

import (
	"context"
	"flag"
	"path/filepath"
	"strings"
)

// reportFlags are the command line's report options.
type reportFlags struct {
	db        string
	noReports bool
	enrolment string
	limits    ReportLimits
}

// defaultDBSuffix names the SQLite file that holds reports by default:
// beside the repository directory (REPO.reports.db), never inside it, as
// the release tool keeps REPO.staged, so that copying the repository to a
// bucket or CDN does not publish the fleet's reports.
const defaultDBSuffix = ".reports.db"

const reportsUsage = `
Device reports: devices POST what each update cycle did to /reports
(package fleet's signed envelope, at most 8 KiB). A device is
authenticated by its TLS client certificate (--client-ca), else by the
ed25519 key the enrolment file (--devices, written by "release devices
enroll") lists for it. Reports are stored in --db: a SQLite file (default
REPO.reports.db, WAL mode) or a postgres:// URL for servers that run as
several replicas; the answer comes only after the commit. Refusals are 4xx
with a reason: 400 malformed, 403 wrong key or certificate or not
enrolled, 409 a replayed or older sequence number, 413 too large, 422 an
unknown release, 429 too many reports from one device.
GET /fleet/status?release=TARGET on the --health listener counts, per
wave, the devices known, eligible, and their attempts. A release's health
rule (release add --pause-failures) makes the server publish a pause with
the rollout control key once too many of its attempts fail.
`

func (rf *reportFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&rf.db, "db", "", "report database: a SQLite `file` (default REPO"+defaultDBSuffix+", beside the repository) or a postgres:// URL")
	fs.BoolVar(&rf.noReports, "no-reports", false, "take no device reports (no database)")
	fs.StringVar(&rf.enrolment, "devices", "", "enrolment `file` of device report keys (release devices enroll); re-read when it changes")
	fs.Float64Var(&rf.limits.Rate, "report-rate", defaultReportRate, "reports per second one device may send on average")
	fs.IntVar(&rf.limits.Burst, "report-burst", defaultReportBurst, "reports one device may send at once (a queue flushed after an outage)")
}

// open opens the report store the flags name, nil with --no-reports, and
// nil for a bucket repository without --db: stateless replicas have no
// disk to keep a SQLite file on.
func (rf *reportFlags) open(ctx context.Context, repo string) (reportStore, error) {
	if rf.noReports || (rf.db == "" && isBucketURL(repo)) {
		return nil, nil
	}
	db := rf.db
	if db == "" {
		db = filepath.Clean(repo) + defaultDBSuffix
	}
	return openReportStore(ctx, db)
}

// dbKind names the database for the logs without its credentials.
func dbKind(db string) string {
	if strings.HasPrefix(db, "postgres") {
		return "postgres"
	}
	return "sqlite"
}
