// Command demo runs a whole otaseal update cycle on one machine, with no
// set-up and no network beyond 127.0.0.1: a release engineer creates keys
// and a repository, publishes firmware 1.0.0, an update server serves it,
// a device with A/B slots installs it, then 1.1.0 arrives as a delta, a
// 1.1.1 is published and withdrawn (the device skips it and logs why), and
// the release engineer publishes 1.2.0 with a staged rollout, which an
// operator pauses with the online control key (the device holds back and
// says why) and resumes, and which an attacker in the middle
// tries to abuse with three classic attacks, each refused with the error
// the device logged. Last, 1.3.0 is published encrypted for a device
// group: a device of the group decrypts and installs it, one without the
// group key refuses before it writes a byte.
//
// Usage:
//
//	go run ./examples/demo [-keep] [-v]
//
// It exits 0 when every step behaved as it should: updates installed and
// every attack refused; 1 otherwise.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/otaseal/otaseal/manifest"
)

func main() {
	keep := flag.Bool("keep", false, "keep the temporary directory (repository, device state, slots) and print its path")
	verbose := flag.Bool("v", false, "also print the device's own log, debug messages included, to stderr")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), `usage: demo [-keep] [-v]

Runs a release, an update server on 127.0.0.1, and a device with A/B slots:
installs 1.0.0, updates to 1.1.0 through a delta, skips a withdrawn
1.1.1, holds back while the 1.2.0 rollout is paused, then, as 1.2.0 is
offered again, shows a tampered image, replayed old metadata and a frozen
repository (an expired timestamp) refused.

`)
		flag.PrintDefaults()
	}
	flag.Parse()
	// The story on stdout says what the device did and why; its own log
	// would repeat it out of order, so it is printed only on request.
	log := slog.New(slog.DiscardHandler)
	if *verbose {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
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
	if _, err := rel.publishFirmware(ctx, "1.0.0", 1, images["1.0.0"], nil, nil); err != nil {
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
	res.tell(out)
	record("install 1.0.0 (full image)", res.describe(), res.err == nil && res.installed == "1.0.0" && !res.viaPatch)

	fmt.Fprintln(out, "== release engineer: 1.1.0 with a delta from 1.0.0")
	saved, err := rel.publishFirmware(ctx, "1.1.0", 2, images["1.1.0"], images["1.0.0"], nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  published 1.1.0 (%d bytes) and a delta of %d bytes\n", len(images["1.1.0"]), len(images["1.1.0"])-saved)
	res = dev.update(ctx)
	res.tell(out)
	record("update to 1.1.0 (delta)", fmt.Sprintf("%s, %d bytes saved (%.0f%%)", res.describe(), res.saved,
		100*float64(res.saved)/float64(len(images["1.1.0"]))), res.err == nil && res.installed == "1.1.0" && res.viaPatch)

	fmt.Fprintln(out, "== release engineer: 1.1.1, then withdrawn before devices take it")
	images["1.1.1"] = append(bytes.Clone(images["1.1.0"]), "1.1.1"...)
	if _, err := rel.publishFirmware(ctx, "1.1.1", 2, images["1.1.1"], nil, nil); err != nil {
		return err
	}
	w := manifest.Withdrawal{Reason: "bricks units with the rev-B radio", Advisories: []string{"OTA-2026-0007"}}
	if err := rel.withdraw(ctx, "1.1.1", images["1.1.1"], w); err != nil {
		return err
	}
	fmt.Fprintf(out, "  published 1.1.1, then withdrew it, signed by the targets key: %q (image kept on the server)\n", w.Reason)
	res = dev.update(ctx)
	res.tell(out)
	record("withdrawn release 1.1.1", "skipped: "+res.describe()+"; stays on "+dev.version(), res.err == nil && strings.Contains(res.notice, "skips withdrawn release 1.1.1") && dev.version() == "1.1.0")

	fmt.Fprintln(out, "== release engineer: 1.2.0 with a delta from 1.1.0")
	// A staged rollout whose waves have all opened: only the control
	// holds the device back below.
	rollout := &manifest.Rollout{Start: time.Now().Add(-48 * time.Hour).UTC().Truncate(time.Second),
		Waves: []manifest.Wave{{Offset: 0, Share: 1000}, {Offset: 24 * time.Hour, Share: manifest.FullShare}}}
	if saved, err = rel.publishFirmware(ctx, "1.2.0", 3, images["1.2.0"], images["1.1.0"], rollout); err != nil {
		return err
	}
	fmt.Fprintf(out, "  published 1.2.0 (%d bytes), security version 3, and a delta of %d bytes, rollout 10%% then 100%% after a day\n", len(images["1.2.0"]), len(images["1.2.0"])-saved)

	fmt.Fprintln(out, "== operator: pauses the 1.2.0 rollout with the online control key")
	pause := manifest.ReleaseControl{State: manifest.ControlPaused, Reason: "support tickets from wave 1"}
	if err := rel.control(ctx, "1.2.0", &pause); err != nil {
		return err
	}
	fmt.Fprintf(out, "  paused 1.2.0, signed by the control key (no targets key): %q\n", pause.Reason)
	res = dev.update(ctx)
	record("paused rollout 1.2.0", res.describe()+"; stays on "+dev.version(), res.err == nil && strings.Contains(res.nothing, "1.2.0 is paused") && dev.version() == "1.1.0")
	if err := rel.control(ctx, "1.2.0", nil); err != nil {
		return err
	}
	fmt.Fprintln(out, "  resumed 1.2.0: the signed schedule is in force again")

	fmt.Fprintln(out, "== attacker in the middle, between the update server and the device")
	fmt.Fprintln(out, "  attack 1: flips a byte in every file the device downloads from targets/: the 1.2.0 image and its delta")
	srv.attack(tamperImages)
	res = dev.update(ctx)
	res.tell(out)
	record("tampered image", "refused: "+res.errText(), res.err != nil && dev.version() == "1.1.0")
	srv.attack(nil)

	oldVersion, _ := timestampInfo(firstTimestamp)
	fmt.Fprintf(out, "  attack 2: answers with the first timestamp.json the server published (version %d), to roll the device back\n", oldVersion)
	srv.attack(replay(map[string][]byte{"metadata/timestamp.json": firstTimestamp}))
	res = dev.update(ctx)
	record("replayed old metadata (rollback)", "refused: "+res.errText(), res.err != nil && dev.version() == "1.1.0")
	srv.attack(nil)

	// A freeze is only visible once the frozen timestamp has expired: the
	// demo cannot wait a week, so it moves the device's clock instead.
	frozen := srv.file("metadata/timestamp.json")
	_, expires := timestampInfo(frozen)
	fmt.Fprintf(out, "  attack 3: freezes the repository, serving the current timestamp.json (expires %s UTC) and hiding any newer one\n", expires.UTC().Format(time.DateTime))
	const week = 7 * 24 * time.Hour
	deviceNow := dev.advanceClock(week)
	fmt.Fprintf(out, "  the demo moves the device clock forward %d days, to %s UTC, to simulate a repository frozen that long\n", int(week.Hours()/24), deviceNow.UTC().Format(time.DateTime))
	srv.attack(replay(map[string][]byte{"metadata/timestamp.json": frozen}))
	res = dev.update(ctx)
	record("expired timestamp (freeze)", "refused: "+res.errText(), res.err != nil && dev.version() == "1.1.0")
	srv.attack(nil)

	if err := encryptedRelease(ctx, out, rel, srv.url, dir, images, log, record); err != nil {
		return err
	}

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
	floor, counter := dev.floors()
	fmt.Fprintf(out, "  device runs %s from slot %s; security floor %d, hardware counter %d; %.1fs\n",
		dev.version(), dev.active, floor, counter, time.Since(start).Seconds())
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
