package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The README's main command, end to end: both updates land and all three
// attacks are refused with the device's own error.
func TestDemo(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	require.NoError(t, run(context.Background(), &out, log, false), out.String())
	text := out.String()
	for _, want := range []string{
		"[ok  ] install 1.0.0 (full image): installed 1.0.0",
		"[ok  ] update to 1.1.0 (delta): installed 1.1.0 through a delta",
		"[ok  ] withdrawn release 1.1.1: skipped: the newest release was withdrawn; stays on 1.1.0",
		"[ok  ] tampered image: refused: verify: target \"acme-gw-r2/1.2.0/firmware.bin\": hash differs",
		"[ok  ] replayed old metadata (rollback): refused: verify: timestamp: manifest: metadata version lower than trusted",
		"[ok  ] expired timestamp (freeze): refused: verify: timestamp: manifest: metadata expired",
		"[ok  ] encrypted release 1.3.0: installed 1.3.0, decrypted into slot b",
		"[ok  ] encrypted 1.3.0 without the key: refused: verify: target \"acme-gw-r2/1.3.0/firmware.bin\": release is encrypted for none of this device's keys",
		"device runs 1.1.0 from slot a; security floor 2, hardware counter 2",
	} {
		assert.Contains(t, text, want)
	}
	assert.NotContains(t, text, "FAIL")
	assertStory(t, text)
}

// assertStory checks that every line tells the story it is part of (issue
// 13): the withdrawn release is shown published, withdrawn with its
// reason, and skipped by the device; the release the attacks name is shown being published, the delta
// the device refuses is explained as part of the tampering, and the freeze
// says that the demo moved the device's clock, to a time after the frozen
// timestamp's expiry.
func assertStory(t *testing.T, text string) {
	inOrder := []string{
		"== release engineer: 1.1.1, then withdrawn before devices take it",
		"  published 1.1.1, then withdrew it, signed by the targets key: \"bricks units with the rev-B radio\" (image kept on the server)",
		"  device: skips withdrawn release 1.1.1: \"bricks units with the rev-B radio\" (advisories OTA-2026-0007)",
		"[ok  ] withdrawn release 1.1.1:",
		"== release engineer: 1.2.0 with a delta from 1.1.0",
		"  published 1.2.0 (",
		"rollout 10% then 100% after a day",
		"== operator: pauses the 1.2.0 rollout with the online control key",
		"  paused 1.2.0, signed by the control key (no targets key): \"support tickets from wave 1\"",
		"[ok  ] paused rollout 1.2.0: release 1.2.0 is paused by the rollout control: \"support tickets from wave 1\"; stays on 1.1.0",
		"  resumed 1.2.0: the signed schedule is in force again",
		"== attacker in the middle, between the update server and the device",
		"  attack 1: flips a byte in every file the device downloads from targets/: the 1.2.0 image and its delta",
		"  device: security notice for 1.2.0: severity security, advisories CVE-2026-1003",
		"  device: delta refused (the attacker tampered it too): verify: target \"acme-gw-r2/deltas/1.1.0-1.2.0.otz\"",
		"[ok  ] tampered image: refused:",
		"  attack 2: answers with the first timestamp.json the server published (version 1)",
		"[ok  ] replayed old metadata (rollback): refused:",
		"  attack 3: freezes the repository, serving the current timestamp.json (expires ",
		"  the demo moves the device clock forward 7 days, to ",
		"[ok  ] expired timestamp (freeze): refused:",
	}
	at := 0
	for _, want := range inOrder {
		i := strings.Index(text[at:], want)
		if !assert.GreaterOrEqual(t, i, 0, "%q missing or out of order in:\n%s", want, text) {
			return
		}
		at += i + len(want)
	}
	// The clock line's date is after the expiry the freeze line names.
	m := regexp.MustCompile(`expires (\S+ \S+) UTC\).*\n.*forward 7 days, to (\S+ \S+) UTC`).FindStringSubmatch(text)
	require.Len(t, m, 3, text)
	expires, err := time.Parse(time.DateTime, m[1])
	require.NoError(t, err)
	deviceNow, err := time.Parse(time.DateTime, m[2])
	require.NoError(t, err)
	assert.True(t, deviceNow.After(expires), "device time %s after expiry %s", deviceNow, expires)
	assert.Contains(t, text, "timestamp expired "+expires.Format("2006-01-02T15:04:05Z"))
}

func TestFirmwareImagesMakeSmallDeltas(t *testing.T) {
	images := firmwareImages()
	require.Len(t, images, 4)
	assert.NotEqual(t, images["1.0.0"], images["1.1.0"])
	assert.True(t, strings.HasPrefix(imagePath("1.1.0"), hardwareID+"/"))
}
