package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/otaseal/otaseal/encrypt"
	"github.com/otaseal/otaseal/manifest"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"
)

// TrustStore keeps the trusted metadata documents of a device, byte for
// byte as they were accepted. Package rollback's state implements it on
// flash with crash safety.
type TrustStore interface {
	// LoadMetadata returns the stored document of role, or nil and no error
	// when there is none.
	LoadMetadata(ctx context.Context, role string) ([]byte, error)
	// StoreMetadata durably replaces the document of role; nil deletes it.
	// It returns only once the bytes would survive a power cut.
	StoreMetadata(ctx context.Context, role string, data []byte) error
}

// Clock tells the time used for every expiry check.
type Clock interface {
	Now() time.Time
}

// TimeObserver is implemented by clocks that learn from verified metadata:
// after a timestamp document verifies, the client hands it the signing time
// the document carries (see manifest.SignedAt), so a device whose clock
// reset to 1970 still refuses metadata that expired since.
type TimeObserver interface {
	Observe(ctx context.Context, t time.Time) error
}

// SystemClock is the device's own clock, for devices with a trustworthy
// real-time clock. Devices without one should use package rollback's clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// Config sets up a Client. MetadataURL, Store and Clock are required.
type Config struct {
	// MetadataURL is the base URL of the metadata, ending in "/".
	MetadataURL string
	// TargetsURL is the base URL of targets, ending in "/". Required
	// unless MetadataOnly is set: a device that can verify an update but
	// not download it should fail at New, not after Begin.
	TargetsURL string
	// Mirrors are further places the same repository is served from,
	// tried after MetadataURL and TargetsURL (see Mirror): a fetch that
	// fails with a network error, a 5xx or a 429 goes on to the next
	// mirror, and a Refresh that fails, even on metadata refused as
	// forged, stale or rolled back, is tried again from each other mirror
	// before it gives up. The mirror that served last is asked first.
	// With an HTTPFetcher each mirror gets one attempt before any gets
	// the fetcher's retries, so a dead mirror delays a fetch by one
	// attempt, not by the whole retry schedule.
	Mirrors []Mirror
	// MetadataOnly allows an empty TargetsURL for a client that only
	// refreshes and looks up metadata (a TUF conformance client, an
	// inventory tool); Download and Install then fail with ErrConfig.
	MetadataOnly bool
	// Fetcher retrieves documents and targets; nil means an HTTPFetcher
	// with its safe defaults.
	Fetcher Fetcher
	// Store holds the trusted documents; it must already hold a root
	// (see Bootstrap) unless ShippedRoot is set.
	Store TrustStore
	// ShippedRoot is the root document shipped with the device, its
	// factory trust anchor. When set, New installs it into a Store that
	// holds no root, and re-installs it when the stored root is lost: no
	// intact copy (rollback.ErrCorrupt), or bytes that no longer parse or
	// verify against themselves. Refresh then walks the root chain forward
	// from it, each new root signed by the threshold of the one before, as
	// on a device's first start. A re-install is logged at WARN level as
	// "state recovered". nil means a lost root is an error.
	ShippedRoot []byte
	// Clock gives the time for expiry checks.
	Clock Clock
	// Limits bounds each document's size before it is parsed.
	Limits manifest.Limits
	// MaxRootRotations bounds the root versions fetched in one refresh; 0
	// means DefaultMaxRootRotations.
	MaxRootRotations int
	// MaxDelegations bounds the roles visited in one target lookup; 0
	// means DefaultMaxDelegations.
	MaxDelegations int
	// Logger receives progress at debug level; nil means none.
	Logger *slog.Logger
	// DecryptionKeys are the device's keys for encrypted releases (its
	// group key, its own key); Install unwraps a release's content key
	// with the first one the release lists as a recipient. None is needed
	// for releases that are not encrypted.
	DecryptionKeys []DecryptionKey
}

// Defaults of Config.
const (
	DefaultMaxRootRotations = 32
	DefaultMaxDelegations   = 32
)

// Errors of the client workflow, beside manifest's translated ones
// (manifest.ErrThreshold, ErrMetadataVersionLower, ErrExpired, ...).
var (
	ErrNoTrustedRoot      = errors.New("verify: no trusted root in the store")
	ErrNotRefreshed       = errors.New("verify: metadata not refreshed")
	ErrTargetNotFound     = errors.New("verify: target not found")
	ErrTooManyDelegations = errors.New("verify: too many delegations visited")
	ErrConfig             = errors.New("verify: invalid configuration")
	// ErrAlreadyBootstrapped: Bootstrap was given a root other than the
	// one the store holds (which may be a later, rotated root). An agent
	// that bootstraps at every start with its shipped root may ignore it.
	ErrAlreadyBootstrapped = errors.New("verify: the store already holds another trusted root")
)

// RoleError names the role whose document was refused, and why.
type RoleError struct {
	Role string
	Err  error
}

func (e *RoleError) Error() string {
	return fmt.Sprintf("verify: %s: %s", e.Role, strings.TrimPrefix(e.Err.Error(), "verify: "))
}
func (e *RoleError) Unwrap() error { return e.Err }

// Client runs the TUF client workflow (specification sections 5.3 to 5.6)
// for one repository. It is not safe for concurrent use; one device agent
// drives one client, refreshing as often as it likes. Download and Install
// only read it, so several may run at once between Refreshes.
type Client struct {
	cfg     Config
	fetcher Fetcher
	trusted *trustedmetadata.TrustedMetadata // of the last successful refresh
	// signedBytes holds, for each targets document trusted since the last
	// Refresh began, the canonical bytes its signatures were checked over,
	// so that lookups re-verify a cached role without re-encoding it.
	signedBytes map[*metadata.Metadata[metadata.TargetsType]][]byte
	log         *slog.Logger
	mirrors     *mirrorList

	keysMu sync.Mutex
	keys   map[string]encrypt.ContentKey // unwrapped content keys, by release (decrypt.go)
}

// Bootstrap stores rootJSON as the first trusted root of an empty store,
// after checking that it parses and is signed by its own threshold. It
// never replaces a root that is already there: given the same bytes again
// it returns nil, so an agent may call it at every start; given other
// bytes, ErrAlreadyBootstrapped. Ship the bytes package sign's
// Repository.DeviceRoot returns.
func Bootstrap(ctx context.Context, store TrustStore, rootJSON []byte, lim manifest.Limits) error {
	if _, err := checkRoot(rootJSON, lim); err != nil {
		return err
	}
	old, err := store.LoadMetadata(ctx, manifest.RoleRoot)
	if err != nil {
		return err
	}
	if bytes.Equal(old, rootJSON) {
		return nil
	}
	if old != nil {
		return ErrAlreadyBootstrapped
	}
	return store.StoreMetadata(ctx, manifest.RoleRoot, rootJSON)
}

// New returns a client for the repository at cfg.MetadataURL. It re-verifies
// the stored root so that a store corrupted or tampered with while the
// device was off is noticed at start.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.Store == nil || cfg.Clock == nil {
		return nil, fmt.Errorf("%w: Store and Clock are required", ErrConfig)
	}
	if !strings.HasSuffix(cfg.MetadataURL, "/") {
		return nil, fmt.Errorf("%w: MetadataURL %q must end in /", ErrConfig, cfg.MetadataURL)
	}
	if cfg.TargetsURL == "" && !cfg.MetadataOnly {
		return nil, fmt.Errorf("%w: TargetsURL is required (or set MetadataOnly)", ErrConfig)
	}
	if cfg.TargetsURL != "" && !strings.HasSuffix(cfg.TargetsURL, "/") {
		return nil, fmt.Errorf("%w: TargetsURL %q must end in /", ErrConfig, cfg.TargetsURL)
	}
	c := &Client{cfg: cfg, fetcher: cfg.Fetcher, log: cfg.Logger}
	var err error
	if c.mirrors, err = newMirrorList(cfg); err != nil {
		return nil, err
	}
	if c.fetcher == nil {
		c.fetcher = &HTTPFetcher{}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if _, err := c.loadRoot(ctx); err != nil {
		if cfg.ShippedRoot == nil || !rootLost(err) {
			return nil, err
		}
		if err := c.installShippedRoot(ctx, err); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *Client) loadRoot(ctx context.Context) (*trustedmetadata.TrustedMetadata, error) {
	data, err := c.cfg.Store.LoadMetadata(ctx, manifest.RoleRoot)
	if err != nil {
		return nil, err
	}
	if data == nil {
		return nil, ErrNoTrustedRoot
	}
	return checkRoot(data, c.cfg.Limits)
}

// checkRoot parses a root document and checks it is signed by its own
// threshold.
func checkRoot(data []byte, lim manifest.Limits) (*trustedmetadata.TrustedMetadata, error) {
	if _, err := manifest.ParseUnverified[manifest.Root](manifest.RoleRoot, data, lim); err != nil {
		return nil, &RoleError{Role: manifest.RoleRoot, Err: err}
	}
	tm, err := trustedmetadata.New(data)
	if err != nil {
		return nil, &RoleError{Role: manifest.RoleRoot, Err: manifest.TranslateError(err)}
	}
	return tm, nil
}

// Targets returns the trusted top-level targets document of the last
// successful Refresh.
func (c *Client) Targets() (*manifest.Metadata[manifest.Targets], error) {
	if c.trusted == nil {
		return nil, ErrNotRefreshed
	}
	return c.trusted.Targets[manifest.RoleTargets], nil
}
