package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// chromium finds Debian's headless browser: skipped without it unless CI
// is set, where .ci/run installs it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed (.ci/run installs Debian's chromium package)")
	}
	t.Skip("chromium is not installed; apt-get install chromium to run the fleet page's browser test")
	return ""
}

// runChromium runs a headless Chromium on url with the extra args and
// returns its standard output.
func runChromium(t *testing.T, bin, url string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir=" + t.TempDir(), "--window-size=1280,1800",
	}
	cmd := exec.CommandContext(ctx, bin, append(append(base, args...), url)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "chromium: %s", stderr.String())
	return string(out)
}

// A real browser renders the fleet page of a seeded fleet: a rollout in
// wave 2 and a paused one. The test reads the DOM the browser built and
// keeps a screenshot.
func TestDashboardInBrowser(t *testing.T) {
	bin := chromium(t)
	f := seedFleet(t, true)
	ds := startDashboard(t, f, nil, false)

	dom := runChromium(t, bin, ds.dashURL+"/", "--dump-dom")
	require.Contains(t, dom, "<h1>otaseal fleet</h1>", dom)
	versions := regexp.MustCompile(`<tr class="release[^"]*" data-path="[^"]+" data-version="([^"]+)"`).FindAllStringSubmatch(dom, -1)
	var got []string
	for _, v := range versions {
		got = append(got, v[1])
	}
	assert.Equal(t, []string{"1.0.0", "2.6.0", "2.5.0", "2.4.1", "2.3.0"}, got)
	// The browser decoded the escaped markup into text, not into an element.
	assert.Contains(t, dom, "&lt;img src=x onerror=alert(1)&gt;")
	assert.NotContains(t, dom, "<img")
	// Waves and the chart as seeded.
	assert.Contains(t, dom, `<b class="current">wave 2 of 3 (10%)</b>`)
	assert.Regexp(t, `<div class="rollout paused tripped" data-path="`+regexp.QuoteMeta(pausedPath)+`">`, dom)
	assert.Equal(t, map[string]string{
		"eligible": "12 108 0", "attempted": "12 40 0", "confirmed": "11 37 0", "reverted": "1 1 0", "failed": "0 2 0",
	}, chartValues(t, dom, rolloutPath))
	assert.Equal(t, "1200", chartValues(t, dom, pausedPath)["eligible"])
	waves := regexp.MustCompile(`<tr data-wave="(\d+)"`).FindAllStringSubmatch(dom, -1)
	assert.Len(t, waves, 4) // one wave of 2.6.0, three of 2.5.0

	// The screenshot, of the same fleet without the hostile text,
	// outlives the test for CI to keep. OTASEAL_FLEET_PAGE_PNG names
	// where to put it instead (the README's picture is made so).
	ds = startDashboard(t, seedFleet(t, false), nil, false)
	shot := os.Getenv("OTASEAL_FLEET_PAGE_PNG")
	if shot == "" {
		dir, err := os.MkdirTemp("", "otaseal-fleet-page-")
		require.NoError(t, err)
		shot = filepath.Join(dir, "fleet-page.png")
	}
	runChromium(t, bin, ds.dashURL+"/", "--screenshot="+shot, "--hide-scrollbars")
	st, err := os.Stat(shot)
	require.NoError(t, err)
	require.Greater(t, st.Size(), int64(10<<10), "the screenshot is too small to show the page")
	fmt.Printf("fleet page screenshot: %s\n", shot)
	t.Logf("fleet page screenshot: %s", shot)
}
