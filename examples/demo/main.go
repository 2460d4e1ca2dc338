// Command demo runs a whole otaseal update cycle on one machine, with no
// set-up and no network beyond 127.0.0.1: a release engineer creates keys
// and a repository, publishes firmware 1.0.0, an update server serves it,
// a device with A/B slots installs it, then 1.1.0 arrives as a delta, and
// finally an attacker in the middle tries three classic attacks, each
// refused with the error the device logged.
//
// Usage:
//
//	go run ./examples/demo [-keep] [-v]
//
// It exits 0 when every step behaved as it should: updates installed and
// every attack refused; 1 otherwise.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"
)

func main() {
	keep := flag.Bool("keep", false, "keep the temporary directory (repository, device state, slots) and print its path")
	verbose := flag.Bool("v", false, "log the device's debug messages")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), `usage: demo [-keep] [-v]

Runs a release, an update server on 127.0.0.1, and a device with A/B slots:
installs 1.0.0, updates to 1.1.0 through a delta, then shows a tampered
image, replayed old metadata and an expired timestamp refused.

`)
		flag.PrintDefaults()
	}
	flag.Parse()
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if err := run(context.Background(), os.Stdout, log, *keep); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

// step is one row of the closing summary.
type step struct {
	what, outcome string
	ok            bool
}

func run(ctx context.Context, out io.Writer, log *slog.Logger, keep bool) error {
	start := time.Now()
	dir, err := os.MkdirTemp("", "otaseal-demo-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Fprintf(out, "working directory: %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	var steps []step
	record := func(what, outcome string, ok bool) {
		steps = append(steps, step{what, outcome, ok})
		mark := "ok  "
		if !ok {
			mark = "FAIL"
		}
		fmt.Fprintf(out, "  [%s] %s: %s\n", mark, what, outcome)
	}

	fmt.Fprintln(out, "== release engineer: keys and a repository")
	rel, err := newRelease(ctx, dir)
	if err != nil {
		return err
	}
	defer rel.close()
	images := firmwareImages()
	if _, err := rel.publishFirmware(ctx, "1.0.0", 1, images["1.0.0"], nil); err != nil {
		return err
	}
	fmt.Fprintf(out, "  published acme-gw-r2 1.0.0 (%d bytes), security version 1\n", len(images["1.0.0"]))

	srv, err := startServer(rel.storageDir, log)
	if err != nil {
		return err
	}
	defer srv.close()
	fmt.Fprintf(out, "== update server on %s\n", srv.url)
	firstTimestamp := srv.file("metadata/timestamp.json") // for the replay later

	dev, err := newDevice(ctx, dir, srv.url, rel.rootJSON, images["0.9.0"], log)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "== device acme-gw-r2 boots factory image 0.9.0 from slot %s\n", dev.active)

	res := dev.update(ctx)
	record("install 1.0.0 (full image)", res.describe(), res.err == nil && res.installed == "1.0.0" && !res.viaPatch)

	fmt.Fprintln(out, "== release engineer: 1.1.0 with a delta from 1.0.0")
	saved, err := rel.publishFirmware(ctx, "1.1.0", 2, images["1.1.0"], images["1.0.0"])
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  published 1.1.0 (%d bytes) and a delta of %d bytes\n", len(images["1.1.0"]), len(images["1.1.0"])-saved)
	res = dev.update(ctx)
	record("update to 1.1.0 (delta)", fmt.Sprintf("%s, %d bytes saved (%.0f%%)", res.describe(), res.saved,
		100*float64(res.saved)/float64(len(images["1.1.0"]))), res.err == nil && res.installed == "1.1.0" && res.viaPatch)

	fmt.Fprintln(out, "== attacker in the middle")
	if _, err := rel.publishFirmware(ctx, "1.2.0", 3, images["1.2.0"], images["1.1.0"]); err != nil {
		return err
	}
	srv.attack(tamperImages)
	res = dev.update(ctx)
	record("tampered image", "refused: "+res.errText(), res.err != nil && dev.version() == "1.1.0")
	srv.attack(nil)

	srv.attack(replay(map[string][]byte{"metadata/timestamp.json": firstTimestamp}))
	res = dev.update(ctx)
	record("replayed old metadata (rollback)", "refused: "+res.errText(), res.err != nil && dev.version() == "1.1.0")
	srv.attack(nil)

	// The attacker freezes the device on the timestamp it has and keeps
	// the new one away; a week later that timestamp has long expired.
	frozen := srv.file("metadata/timestamp.json")
	dev.advanceClock(7 * 24 * time.Hour)
	srv.attack(replay(map[string][]byte{"metadata/timestamp.json": frozen}))
	res = dev.update(ctx)
	record("expired timestamp (freeze)", "refused: "+res.errText(), res.err != nil && dev.version() == "1.1.0")
	srv.attack(nil)

	fmt.Fprintln(out, "== summary")
	failed := 0
	fmt.Fprintf(out, "  %-34s %-6s %s\n", "step", "result", "detail")
	for _, s := range steps {
		result := "ok"
		if !s.ok {
			result, failed = "FAIL", failed+1
		}
		fmt.Fprintf(out, "  %-34s %-6s %s\n", s.what, result, clip(s.outcome, 90))
	}
	fmt.Fprintf(out, "  device runs %s from slot %s; security floor %d; %.1fs\n", dev.version(), dev.active, dev.floor(), time.Since(start).Seconds())
	if failed > 0 {
		return fmt.Errorf("%d of %d steps did not behave as expected", failed, len(steps))
	}
	return nil
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n-3] + "..."
	}
	return s
}
