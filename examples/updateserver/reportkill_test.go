package main

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/fleet"
)

// TestReportsSurviveSIGKILL: the built server takes reports from many
// devices into each database and is killed with SIGKILL in the middle of
// the load; after a restart every acknowledged report is there (counted),
// and each device's report that was in flight at the kill, sent again,
// is taken exactly once (stored, or a duplicate when it had been
// committed without an answer).
func TestReportsSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("built-server test skipped with -short")
	}
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			n := loadDevices()
			ds := newTestDevices(t, n)
			repo := newRepo(t, 1024, time.Hour)
			db := testDB(t, kind)
			args := []string{"--repo", repo.dir, "--snapshot-key", snapshotKeyFile, "--timestamp-key", timestampKeyFile,
				"--http", "127.0.0.1:0", "--db", db, "--devices", writeEnrolment(t, t.TempDir(), ds),
				"--report-rate", "100000", "--report-burst", "100000", "--max-conns-per-addr", loadConnCap}
			srv := startChild(t, args...)
			base := "http://" + srv.addr

			tr := &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}
			defer tr.CloseIdleConnections()
			hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
			acked := make([][]uint64, n)
			inFlight := make([][]byte, n)
			var total atomic.Int64
			var wg sync.WaitGroup
			for i, d := range ds {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for seq := uint64(1); ; seq++ {
						env := d.seal(t, d.report(seq, fleet.Confirmed))
						inFlight[i] = env
						code, _, err := post(hc, base, env)
						if err != nil || code != http.StatusOK {
							return // the server is gone: env's fate is unknown
						}
						acked[i] = append(acked[i], seq)
						inFlight[i] = nil
						total.Add(1)
					}
				}()
			}
			// Kill once the load is well under way.
			for deadline := time.Now().Add(30 * time.Second); total.Load() < int64(2*n) && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
			require.NoError(t, srv.cmd.Process.Kill())
			srv.cmd.Wait()
			wg.Wait()
			require.Greater(t, total.Load(), int64(n), "the load had not started when the server was killed:\n%s", srv.log())
			t.Logf("%s: killed after %d acknowledged reports from %d devices", kind, total.Load(), n)

			// Every acknowledged report is in the database, counted.
			st, err := openReportStore(context.Background(), db)
			require.NoError(t, err)
			var found int64
			for i, d := range ds {
				seqs, err := st.seqs(context.Background(), d.id)
				require.NoError(t, err)
				stored := map[uint64]bool{}
				for _, s := range seqs {
					stored[s] = true
				}
				for _, s := range acked[i] {
					if stored[s] {
						found++
					} else {
						t.Errorf("%s: acknowledged report %d lost", d.id, s)
					}
				}
			}
			require.NoError(t, st.close())
			assert.Equal(t, total.Load(), found, "acknowledged reports found after the kill")

			// Restart on the same database; resend what was in flight.
			srv = startChild(t, args...)
			base = "http://" + srv.addr
			var stored, dups int
			for i, env := range inFlight {
				if env == nil {
					continue
				}
				code, body, err := post(hc, base, env)
				require.NoError(t, err)
				require.Equal(t, http.StatusOK, code, "%s: %s", ds[i].id, body)
				if strings.Contains(body, "duplicate") {
					dups++
				} else {
					stored++
				}
			}
			t.Logf("%s: in flight at the kill: %d stored on resend, %d had been committed (duplicates)", kind, stored, dups)
			code, _ := srv.stop(t)
			assert.Equal(t, exitOK, code)
		})
	}
}
