package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

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
		"[ok  ] tampered image: refused: verify: target \"acme-gw-r2/1.2.0/firmware.bin\": hash differs",
		"[ok  ] replayed old metadata (rollback): refused: verify: timestamp: manifest: metadata version lower than trusted",
		"[ok  ] expired timestamp (freeze): refused: verify: timestamp: manifest: metadata expired",
		"device runs 1.1.0 from slot a; security floor 2",
	} {
		assert.Contains(t, text, want)
	}
	assert.NotContains(t, text, "FAIL")
}

func TestFirmwareImagesMakeSmallDeltas(t *testing.T) {
	images := firmwareImages()
	require.Len(t, images, 4)
	assert.NotEqual(t, images["1.0.0"], images["1.1.0"])
	assert.True(t, strings.HasPrefix(imagePath("1.1.0"), hardwareID+"/"))
}
