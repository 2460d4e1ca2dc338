package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"gocloud.dev/blob"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/sign"
)

// config is what a server needs; the zero expiry and check durations are
// not defaults here (parseFlags fills them), but Now defaults to time.Now
// and the zero connection limits (ConnLimits) to their safe defaults.
type config struct {
	Dir                       string
	SnapshotKey, TimestampKey *sign.Signer
	// ControlKey signs the rollout control role; nil means the server
	// does not hold it and only warns as that document nears expiry.
	ControlKey *sign.Signer
	// AllowSharedKeys starts the server on a root that gives a root or
	// targets key to snapshot or timestamp too (sign.CheckRoleSeparation);
	// only for test repositories.
	AllowSharedKeys          bool
	TimestampExpiry          time.Duration
	SnapshotExpiry           time.Duration
	ResignBefore, CheckEvery time.Duration
	Now                      func() time.Time
	Log                      *slog.Logger
	// Store is the repository as package sign reads and writes it; nil
	// means a sign.DirStorage on Dir. Files are always served from Dir.
	// Tests put a failing or racing one here.
	Store sign.Storage
	// Bucket, when set, is the repository instead of Dir: package sign
	// publishes to it through a sign.BlobStorage and files are served
	// from it (bucket.go). BucketURL names it in logs and /healthz.
	Bucket    *blob.Bucket
	BucketURL string
	// CDNBase, with Bucket, redirects target downloads there.
	CDNBase string
	// CacheTTL is how long timestamp.json, root.json and misses are
	// served from memory in bucket mode, and also their Cache-Control
	// max-age; zero means defaultCacheTTL.
	CacheTTL time.Duration
	ConnLimits
	// Reports, when not nil, is where device reports go (POST /reports)
	// and what GET /fleet/status counts; nil means the server takes none.
	Reports reportStore
	// Enrolment is the enrolment file of device report keys ("" none:
	// only devices with a TLS client certificate can report).
	Enrolment    string
	ReportLimits ReportLimits
}

// ConnLimits bound what one client can hold of the server: descriptors,
// goroutines and open files. A zero field means its default.
type ConnLimits struct {
	// StallTimeout drops a response that hands no progressChunk bytes to
	// the network for this long: a device that stops reading keeps a
	// socket and an open file, and enough of them starve everyone.
	StallTimeout time.Duration
	// ReadHeaderTimeout bounds the wait for a request's headers (and the
	// TLS handshake); IdleTimeout the wait for the next request on a
	// kept-alive connection.
	ReadHeaderTimeout, IdleTimeout time.Duration
	// MaxConnsPerAddr caps the open connections from one client address
	// (one /64 for IPv6); the connections past it are closed at accept.
	MaxConnsPerAddr int
}

// Defaults of ConnLimits. A stall of a minute at 16 KiB chunks still lets
// a device on a link of about 300 bytes/s finish; 64 connections per
// address leave room for a few dozen devices behind one NAT while one
// client can hold at most 128 descriptors (a socket and a file each).
const (
	defaultStallTimeout      = time.Minute
	defaultReadHeaderTimeout = 10 * time.Second
	defaultIdleTimeout       = 2 * time.Minute
	defaultMaxConnsPerAddr   = 64
)

// withDefaults fills the zero fields.
func (l ConnLimits) withDefaults() ConnLimits {
	if l.StallTimeout <= 0 {
		l.StallTimeout = defaultStallTimeout
	}
	if l.ReadHeaderTimeout <= 0 {
		l.ReadHeaderTimeout = defaultReadHeaderTimeout
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = defaultIdleTimeout
	}
	if l.MaxConnsPerAddr <= 0 {
		l.MaxConnsPerAddr = defaultMaxConnsPerAddr
	}
	return l
}

// server serves one repository directory and keeps its freshness metadata
// alive. Its handler is safe for concurrent use; the re-sign checks run one
// at a time (checkMu).
type server struct {
	cfg     config
	store   sign.Storage
	signers []*sign.Signer
	now     func() time.Time
	log     *slog.Logger
	// metaRoot and targetsRoot confine every file served: os.Root refuses
	// ".." and symbolic links that lead outside, on top of the checks on
	// the request path.
	metaRoot, targetsRoot fileRoot
	// bucket is set when the repository is a bucket; then metaRoot and
	// targetsRoot are nil.
	bucket *bucketFiles

	checkMu sync.Mutex

	mu     sync.Mutex
	status freshness

	// dash is the fleet page, nil when it is off.
	dash *dashboard
	// reports is the report intake, nil without cfg.Reports; releases
	// the firmware releases it checks reports against; healthMu runs
	// one health-rule evaluation at a time.
	reports  *reports
	releases releaseIndex
	healthMu sync.Mutex
}

// freshness is what the last check learned, for /healthz.
type freshness struct {
	checked          time.Time
	err              error
	timestampVersion int64
	timestampExpires time.Time
	snapshotVersion  int64
	snapshotExpires  time.Time
	targetsExpires   time.Time
	rootExpires      time.Time
	controlExpires   time.Time // zero when rollout control is not delegated
	lastResign       time.Time
}

// newServer opens the repository, checks that the keys are the
// repository's snapshot and timestamp keys and nothing more, and runs a
// first check, so that a server started on a stale repository re-signs
// before it serves.
func newServer(ctx context.Context, cfg config) (*server, error) {
	if cfg.SnapshotKey == nil || cfg.TimestampKey == nil {
		return nil, errors.New("updateserver: snapshot and timestamp keys are required")
	}
	if err := checkTiming(cfg.TimestampExpiry, cfg.SnapshotExpiry, cfg.ResignBefore, cfg.CheckEvery); err != nil {
		return nil, err
	}
	cfg.ConnLimits = cfg.ConnLimits.withDefaults()
	s := &server{cfg: cfg, store: cfg.Store, now: cfg.Now, log: cfg.Log,
		signers: []*sign.Signer{cfg.SnapshotKey, cfg.TimestampKey}}
	if cfg.ControlKey != nil {
		s.signers = append(s.signers, cfg.ControlKey)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Bucket != nil {
		return newBucketServer(ctx, s)
	}
	if st, err := os.Stat(cfg.Dir); err != nil || !st.IsDir() {
		// NewDirStorage would create it: a typo must not start a server
		// on an empty directory.
		return nil, fmt.Errorf("repository directory %s: not a directory (%v)", cfg.Dir, err)
	}
	if s.store == nil {
		st, err := sign.NewDirStorage(cfg.Dir)
		if err != nil {
			return nil, err
		}
		s.store = st
	}
	if err := s.openAndCheckKeys(ctx); err != nil {
		return nil, err
	}
	metaRoot, err := os.OpenRoot(filepath.Join(cfg.Dir, sign.MetadataDir))
	if err != nil {
		return nil, err
	}
	// A repository without firmware yet has no targets directory; make it,
	// so that the first release's files are served without a restart.
	var targetsRoot *os.Root
	targetsDir := filepath.Join(cfg.Dir, sign.TargetsDir)
	if err = os.MkdirAll(targetsDir, 0o755); err == nil {
		targetsRoot, err = os.OpenRoot(targetsDir)
	}
	if err != nil {
		metaRoot.Close()
		return nil, err
	}
	s.metaRoot, s.targetsRoot = metaRoot, targetsRoot
	if cfg.Reports != nil {
		s.reports = &reports{store: cfg.Reports, log: s.log, now: s.now, limits: newDeviceLimiter(cfg.ReportLimits), enrolPath: cfg.Enrolment}
		if _, err := s.reports.loadEnrolment(ctx); err != nil {
			s.close()
			return nil, err
		}
	}
	// A failure here is reported by /healthz and retried by the loop.
	s.check(ctx)
	return s, nil
}

// openAndCheckKeys opens the repository once to check the keys against it.
func (s *server) openAndCheckKeys(ctx context.Context) error {
	repo, err := sign.OpenRepository(ctx, s.store, s.signOptions())
	if err != nil {
		return fmt.Errorf("opening the repository: %w", err)
	}
	defer repo.Close()
	err = checkKeys(repo, s.cfg.SnapshotKey, s.cfg.TimestampKey, s.cfg.ControlKey)
	if err == nil && !s.cfg.AllowSharedKeys {
		// A shared key anywhere in the root makes this server's keys as
		// good as offline ones, whichever of them it holds.
		if err = sign.CheckRoleSeparation(sign.SpecOf(&repo.Root().Signed)); err != nil {
			err = fmt.Errorf("%w (give each role its own key with a root rotation; --allow-shared-keys serves a test repository anyway)", err)
		}
	}
	if _, delegated := repo.Targets(manifest.RoleRolloutControl); err == nil && delegated && s.cfg.ControlKey == nil {
		s.log.Warn("the repository delegates rollout control but no control key was given: the server cannot re-sign the control document, and devices stop updating once it expires",
			"role", manifest.RoleRolloutControl)
	}
	return err
}

// checkKeys refuses keys that cannot do their job, and keys that must
// never sit on an online server: an offline (root or targets) key here
// would let whoever steals the server forge firmware or a new root.
// The control key (nil when not held) must be a key of the rollout
// control role and of no other.
func checkKeys(repo *sign.Repository, snapshotKey, timestampKey, controlKey *sign.Signer) error {
	p, err := repo.Policy()
	if err != nil {
		return err
	}
	type roleKey struct {
		role string
		s    *sign.Signer
	}
	keys := []roleKey{{manifest.RoleSnapshot, snapshotKey}, {manifest.RoleTimestamp, timestampKey}}
	if controlKey != nil {
		keys = append(keys, roleKey{manifest.RoleRolloutControl, controlKey})
	}
	for _, k := range keys {
		if err := p.Authorize(k.role, k.s.KeyID()); err != nil {
			return fmt.Errorf("the %s key: %w", k.role, err)
		}
		for _, offline := range []string{manifest.RoleRoot, manifest.RoleTargets} {
			if p.Authorize(offline, k.s.KeyID()) == nil {
				return fmt.Errorf("the %s key %s is also a %s key: an online server must hold only online keys", k.role, k.s.KeyID(), offline)
			}
		}
		if role := delegatedKeyRole(repo, k.s.KeyID(), k.role); role != "" {
			return fmt.Errorf("the %s key %s is also a key that %s delegates to: an online server must hold only online keys", k.role, k.s.KeyID(), role)
		}
	}
	return nil
}

// delegatedKeyRole returns the targets role that delegates to keyID (hash
// bins included) for a role other than allowed, or "".
func delegatedKeyRole(repo *sign.Repository, keyID, allowed string) string {
	found := ""
	eachTargetsRole(repo, func(role string, md *manifest.Metadata[manifest.Targets]) bool {
		dl := md.Signed.Delegations
		if dl == nil {
			return true
		}
		if _, ok := dl.Keys[keyID]; ok && delegatesOtherThan(dl, keyID, allowed) {
			found = role
			return false
		}
		return true
	})
	return found
}

// delegatesOtherThan reports whether dl gives keyID to a role not named
// allowed. A listed key that no role uses counts: it has no business on
// an online server either.
func delegatesOtherThan(dl *manifest.Delegations, keyID, allowed string) bool {
	if dl.SuccinctRoles != nil {
		return true
	}
	used := false
	for _, r := range dl.Roles {
		if slices.Contains(r.KeyIDs, keyID) {
			if r.Name != allowed {
				return true
			}
			used = true
		}
	}
	return !used
}

func (s *server) signOptions() sign.RepositoryOptions {
	return sign.RepositoryOptions{Now: s.now, TimestampExpiry: s.cfg.TimestampExpiry, SnapshotExpiry: s.cfg.SnapshotExpiry}
}

func (s *server) close() {
	if s.metaRoot != nil {
		s.metaRoot.Close()
		s.targetsRoot.Close()
	}
}

// endpointKind says what a listener serves.
type endpointKind int

const (
	serveAll       endpointKind = iota // repository and /healthz
	serveHealth                        // only /healthz
	serveDashboard                     // only the fleet page
)

// endpoint is one listener; tls nil means plain HTTP.
type endpoint struct {
	ln   net.Listener
	kind endpointKind
	tls  *tls.Config
}

// serve serves eps and runs the re-sign loop until ctx is done or a
// listener fails, then shuts every listener down gracefully, giving
// requests in flight up to timeout. It closes the listeners.
func (s *server) serve(ctx context.Context, eps []endpoint, timeout time.Duration) error {
	errLog := slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)
	lim := s.cfg.ConnLimits
	// One count for all listeners: a client's descriptors are the same
	// whichever port it comes in by.
	perAddr := newAddrLimiter(lim.MaxConnsPerAddr, s.log)
	var servers []*http.Server
	errc := make(chan error, len(eps))
	for _, ep := range eps {
		h := http.Handler(s.handler())
		switch ep.kind {
		case serveHealth:
			h = http.HandlerFunc(s.healthOnly)
		case serveDashboard:
			h = s.dash
		}
		hs := &http.Server{
			Handler:           s.dropStalled(h),
			TLSConfig:         ep.tls,
			ReadHeaderTimeout: lim.ReadHeaderTimeout,
			IdleTimeout:       lim.IdleTimeout,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          errLog,
			// No WriteTimeout: a firmware image over a slow cellular
			// link may rightly take an hour. dropStalled drops only the
			// responses that stop moving.
		}
		servers = append(servers, hs)
		scheme := "http"
		if ep.tls != nil {
			scheme = "https"
		}
		s.log.Info("listening", "scheme", scheme, "addr", ep.ln.Addr().String(),
			"mtls", ep.tls != nil && ep.tls.ClientAuth == tls.RequireAndVerifyClientCert, "health_only", ep.kind == serveHealth,
			"fleet_page", ep.kind == serveDashboard)
		go func(ln net.Listener) {
			var err error
			if hs.TLSConfig != nil {
				err = hs.ServeTLS(ln, "", "")
			} else {
				err = hs.Serve(ln)
			}
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
			errc <- err
		}(perAddr.listener(ep.ln))
	}

	loopCtx, stopLoop := context.WithCancel(ctx)
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		s.resignLoop(loopCtx)
	}()

	var failed error
	select {
	case <-ctx.Done():
		s.log.Info("shutting down", "timeout", timeout)
	case failed = <-errc:
		s.log.Error("listener failed", "err", failed)
	}
	stopLoop()
	<-loopDone

	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	shutdownErrs := make([]error, len(servers))
	for i, hs := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := hs.Shutdown(sctx); err != nil {
				shutdownErrs[i] = fmt.Errorf("shutdown: %w", err)
				hs.Close()
			}
		}()
	}
	wg.Wait()
	// Every Serve has returned once Shutdown has; collect them.
	n := len(servers)
	if failed != nil {
		n--
	}
	for range n {
		if err := <-errc; err != nil && failed == nil {
			failed = err
		}
	}
	return errors.Join(append([]error{failed}, shutdownErrs...)...)
}
