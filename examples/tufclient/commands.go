package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/otaseal/otaseal/manifest"
	"github.com/otaseal/otaseal/verify"
)

func needDir(flagName, dir string) error {
	if dir == "" {
		return fmt.Errorf("--%s is required", flagName)
	}
	return os.MkdirAll(dir, 0o755)
}

func needURL(flagName, u string) error {
	if u == "" || !strings.HasSuffix(u, "/") {
		return fmt.Errorf("--%s must be given and end in /", flagName)
	}
	return nil
}

// initCmd installs ROOTFILE as the trusted root. It checks the document's
// size and shape but nothing more: the first root is trusted by fiat.
func initCmd(ctx context.Context, o options, rootFile string) error {
	if err := needDir("metadata-dir", o.metadataDir); err != nil {
		return err
	}
	f, err := os.Open(rootFile)
	if err != nil {
		return err
	}
	defer f.Close()
	data, err := manifest.ReadLimited(f, manifest.Limits{}.For(manifest.RoleRoot))
	if err != nil {
		return err
	}
	if _, err := manifest.ParseUnverified[manifest.Root](manifest.RoleRoot, data, manifest.Limits{}); err != nil {
		return err
	}
	return verify.DirTrustStore{Dir: o.metadataDir}.StoreMetadata(ctx, manifest.RoleRoot, data)
}

func refreshCmd(ctx context.Context, o options) (*verify.Client, error) {
	if err := needURL("metadata-url", o.metadataURL); err != nil {
		return nil, err
	}
	if err := needDir("metadata-dir", o.metadataDir); err != nil {
		return nil, err
	}
	now, err := systemDate(ctx)
	if err != nil {
		return nil, err
	}
	c, err := verify.New(ctx, verify.Config{
		MetadataURL: o.metadataURL,
		TargetsURL:  o.targetBaseURL,
		// refresh alone needs no targets URL.
		MetadataOnly: o.targetBaseURL == "",
		// No retries: the conformance protocol counts every request.
		Fetcher: &verify.HTTPFetcher{UserAgent: "otaseal-tufclient", Retries: -1},
		Store:   verify.DirTrustStore{Dir: o.metadataDir},
		Clock:   dateClock{now},
	})
	if err != nil {
		return nil, err
	}
	return c, c.Refresh(ctx)
}

func downloadCmd(ctx context.Context, o options) error {
	if len(o.targetNames) == 0 {
		return errors.New("--target-name is required for download")
	}
	if err := needURL("target-base-url", o.targetBaseURL); err != nil {
		return err
	}
	if err := needDir("target-dir", o.targetDir); err != nil {
		return err
	}
	c, err := refreshCmd(ctx, o)
	if err != nil {
		return err
	}
	for _, name := range o.targetNames {
		if err := downloadOne(ctx, c, o.targetDir, name); err != nil {
			return err
		}
	}
	return nil
}

// downloadOne keeps a verified copy already in dir; otherwise it downloads
// into a temporary file beside the destination and renames it into place
// only after every byte checked out.
func downloadOne(ctx context.Context, c *verify.Client, dir, name string) error {
	tf, _, err := c.FindTarget(ctx, name)
	if err != nil {
		return err
	}
	dst := filepath.Join(dir, url.QueryEscape(name))
	if ok, err := verify.FileMatches(dst, tf); err != nil {
		return err
	} else if ok {
		return nil
	}
	tmp, err := os.CreateTemp(dir, ".download-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := c.Download(ctx, name, tf, tmp); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return err
	}
	// The rename must survive a power cut too.
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
