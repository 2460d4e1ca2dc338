package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
	"github.com/otaseal/otaseal/verify"
)

// TestLoadBucketReplicas: three update server processes serve one bucket
// while their timestamps are renewed every few seconds; agents, each
// knowing the three as mirrors (spread so each replica is someone's
// first), refresh and download the image; one replica is killed
// (SIGKILL) mid-load. No update may fail, and every renewal period gets
// exactly one timestamp version, whichever replica signs it. 500 agents
// under CI=true without the race detector, 50 otherwise.
func TestLoadBucketReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("load test skipped with -short")
	}
	agents, rounds := 50, 2
	if os.Getenv("CI") != "" && !raceEnabled {
		agents, rounds = 500, 3
	}
	br := newBucketRepo(t, time.Now().UTC().Truncate(time.Second), 64<<10, 6*time.Second)
	br.srv.SetCredentialsEnv(t) // inherited by the replicas
	args := []string{"--repo", br.bucket.URL, "--http", "127.0.0.1:0",
		"--snapshot-key", snapshotKeyFile, "--timestamp-key", timestampKeyFile,
		"--timestamp-expiry", "6s", "--resign-before", "3s", "--check-every", "250ms", "--cache-ttl", "1s",
		"--max-conns-per-addr", loadConnCap}
	var replicas []*child
	var mirrors []verify.Mirror
	for range 3 {
		c := startChild(t, args...)
		replicas = append(replicas, c)
		base := "http://" + c.addr
		mirrors = append(mirrors, verify.Mirror{MetadataURL: base + "/metadata/", TargetsURL: base + "/targets/"})
	}

	transport := &http.Transport{MaxIdleConnsPerHost: agents, IdleConnTimeout: time.Minute}
	defer transport.CloseIdleConnections()
	hc := &http.Client{Transport: transport}
	var requests atomic.Int64
	fetcher := &verify.HTTPFetcher{Client: hc, Retries: -1, HeaderTimeout: 10 * time.Second}
	counting := verify.FetcherFunc(func(ctx context.Context, url string, max int64) (io.ReadCloser, error) {
		requests.Add(1)
		return fetcher.Fetch(ctx, url, max)
	})
	ctx := context.Background()
	clients := make([]*verify.Client, agents)
	for i := range clients {
		store := &verify.MemTrustStore{}
		require.NoError(t, verify.Bootstrap(ctx, store, br.rootJSON, manifest.Limits{}))
		// Agent i asks replica i%3 first, then the others.
		order := []verify.Mirror{mirrors[i%3], mirrors[(i+1)%3], mirrors[(i+2)%3]}
		client, err := verify.New(ctx, verify.Config{
			MetadataURL: order[0].MetadataURL, TargetsURL: order[0].TargetsURL, Mirrors: order[1:],
			Fetcher: counting, Store: store, Clock: verify.SystemClock{},
		})
		require.NoError(t, err)
		clients[i] = client
	}

	var (
		wg      sync.WaitGroup
		failed  atomic.Int64
		updates atomic.Int64
		first   sync.Once
		gate    = make(chan struct{})
	)
	for _, client := range clients {
		wg.Go(func() {
			<-gate
			for r := range rounds {
				err := func() error {
					if err := client.Refresh(ctx); err != nil {
						return err
					}
					tf, _, err := client.FindTarget(ctx, firmwarePath)
					if err != nil {
						return err
					}
					var buf bytes.Buffer
					if err := client.Download(ctx, firmwarePath, tf, &buf); err != nil {
						return err
					}
					if !bytes.Equal(buf.Bytes(), br.image) {
						return fmt.Errorf("image differs")
					}
					return nil
				}()
				if err != nil {
					failed.Add(1)
					first.Do(func() { t.Errorf("agent round %d: %v", r, err) })
					return
				}
				updates.Add(1)
				// Spread the rounds over the renewal periods.
				time.Sleep(time.Second)
			}
		})
	}
	begin := time.Now()
	close(gate)
	// Kill one replica once the load is under way.
	for updates.Load() < int64(agents/4) && failed.Load() == 0 && time.Since(begin) < time.Minute {
		time.Sleep(5 * time.Millisecond)
	}
	require.NoError(t, replicas[0].cmd.Process.Kill())
	killedAt := time.Since(begin)
	wg.Wait()
	elapsed := time.Since(begin)
	n := requests.Load()
	assert.Zero(t, failed.Load(), "failed updates")
	assert.Equal(t, int64(agents*rounds), updates.Load())
	t.Logf("%d agents x %d updates over 3 replicas of one bucket, replica 1 killed at %v: %d requests in %v = %.0f requests/s, %d failed updates (race detector: %v)",
		agents, rounds, killedAt.Round(time.Millisecond), n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), failed.Load(), raceEnabled)

	// Exactly one timestamp per renewal period: every version's claim
	// in the bucket, each signed at least a period's worth after the one
	// before (a second replica renewing the same period would sign
	// within the check interval).
	store := sign.NewBlobStorage(br.bucket.Blob, sign.BlobStorageOptions{})
	type signed struct {
		version int64
		at      time.Time
	}
	readClaims := func() []signed {
		names, err := store.List(ctx, "metadata/")
		require.NoError(t, err)
		var claims []signed
		for _, name := range names {
			var v int64
			if _, err := fmt.Sscanf(name, "metadata/%d.timestamp.json", &v); err != nil {
				continue
			}
			rc, err := store.Get(ctx, name)
			require.NoError(t, err)
			b, err := io.ReadAll(rc)
			rc.Close()
			require.NoError(t, err)
			ts, err := manifest.ParseUnverified[manifest.Timestamp](manifest.RoleTimestamp, b, manifest.Limits{})
			require.NoError(t, err)
			at, ok, err := manifest.SignedAt(&ts.Signed)
			require.NoError(t, err)
			require.True(t, ok)
			claims = append(claims, signed{ts.Signed.Version, at})
		}
		sort.Slice(claims, func(i, j int) bool { return claims[i].version < claims[j].version })
		return claims
	}
	// A short load (the race detector's size) may end before the first
	// renewal: the surviving replicas renew all the same.
	claims := readClaims()
	for deadline := time.Now().Add(15 * time.Second); len(claims) < 2 && time.Now().Before(deadline); claims = readClaims() {
		time.Sleep(200 * time.Millisecond)
	}
	require.GreaterOrEqual(t, len(claims), 2, "the surviving replicas renewed the timestamp")
	for i := 1; i < len(claims); i++ {
		assert.Equal(t, claims[i-1].version+1, claims[i].version, "no version skipped or doubled")
		gap := claims[i].at.Sub(claims[i-1].at)
		assert.GreaterOrEqual(t, gap, 2*time.Second, "versions %d and %d signed %v apart: two renewals in one period", claims[i-1].version, claims[i].version, gap)
	}
	t.Logf("%d timestamp renewals by 3 replicas since the repository was published, one per 3 s period", len(claims)-1)
	for _, c := range replicas[1:] {
		code, _ := c.stop(t)
		assert.Equal(t, exitOK, code, c.log())
	}
}
