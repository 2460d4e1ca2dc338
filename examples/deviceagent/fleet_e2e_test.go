package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The end-to-end fleet test runs the three built programs as an operator
// would: the release tool publishes 1.1.0 with a health rule, the update
// server takes the devices' reports into SQLite or PostgreSQL, device
// agents whose health hook fails revert and report it, the server pauses
// the release through the rollout control role, devices not yet updated
// stay on 1.0.0, and after a resume they update.

const e2eKeys = "../../sign/testdata/keys/"

func e2eKey(name string) string { return e2eKeys + name + ".pem" }

// buildTool builds the program in dir once per test into tmp.
func buildTool(t *testing.T, tmp, dir string) string {
	bin := filepath.Join(tmp, filepath.Base(dir))
	out, err := exec.Command("go", "build", "-o", bin, dir).CombinedOutput()
	require.NoError(t, err, "go build %s: %s", dir, out)
	return bin
}

// runTool runs a built program and fails the test unless it exits 0.
func runTool(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	require.NoError(t, err, "%s %s:\n%s", filepath.Base(bin), strings.Join(args, " "), out)
	return string(out)
}

// e2ePostgres returns a DSN of a fresh PostgreSQL database, skipping
// without OTASEAL_TEST_POSTGRES unless CI is set.
func e2ePostgres(t *testing.T) string {
	base := os.Getenv("OTASEAL_TEST_POSTGRES")
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("OTASEAL_TEST_POSTGRES is not set: CI must start PostgreSQL (see .ci/run)")
		}
		t.Skip("OTASEAL_TEST_POSTGRES not set: no PostgreSQL to test against")
	}
	admin, err := sql.Open("pgx", base)
	require.NoError(t, err)
	defer admin.Close()
	name := fmt.Sprintf("otaseal_e2e_%d", time.Now().UnixNano())
	_, err = admin.Exec(`CREATE DATABASE "` + name + `"`)
	require.NoError(t, err)
	t.Cleanup(func() {
		if a, err := sql.Open("pgx", base); err == nil {
			a.Exec(`DROP DATABASE IF EXISTS "` + name + `" WITH (FORCE)`)
			a.Close()
		}
	})
	i := strings.Index(base, "://")
	rest, q := base[i+3:], ""
	if j := strings.IndexByte(rest, '?'); j >= 0 {
		rest, q = rest[:j], rest[j:]
	}
	if j := strings.IndexByte(rest, '/'); j >= 0 {
		rest = rest[:j]
	}
	return base[:i+3] + rest + "/" + name + q
}

// writeReportKey writes a device's ed25519 report key as the agent keeps
// it (PKCS #8 PEM, public half in .pub).
func writeReportKey(t *testing.T, path string) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	require.NoError(t, err)
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(path+".pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644))
}

// serverProc is the built update server, its addresses read from its log.
type serverProc struct {
	cmd          *exec.Cmd
	http, health string
	mu           sync.Mutex
	log          strings.Builder
}

func (p *serverProc) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

func startUpdateServer(t *testing.T, bin string, args ...string) *serverProc {
	p := &serverProc{cmd: exec.Command(bin, append([]string{"--log-format", "json"}, args...)...)}
	stderr, err := p.cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, p.cmd.Start())
	t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		n := 0
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.log.WriteString(line + "\n")
			var rec struct {
				Msg, Addr  string
				HealthOnly bool `json:"health_only"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
				if rec.HealthOnly {
					p.health = "http://" + rec.Addr
				} else {
					p.http = "http://" + rec.Addr
				}
				if n++; n == 2 {
					close(ready)
				}
			}
			p.mu.Unlock()
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatalf("update server did not listen:\n%s", p.logs())
	}
	return p
}

func TestFleetHealthPauseEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped with -short")
	}
	bins := t.TempDir()
	release := buildTool(t, bins, "../release")
	updateserver := buildTool(t, bins, "../updateserver")
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) { fleetEndToEnd(t, kind, release, updateserver) })
	}
}

func fleetEndToEnd(t *testing.T, kind, release, updateserver string) {
	tmp := t.TempDir()
	var db string
	if kind == "postgres" {
		db = e2ePostgres(t)
	} else {
		db = filepath.Join(tmp, "reports.db")
	}
	agent := agentBinary(t)

	// The repository: 1.0.0 (what the devices run), the rollout control
	// role, and 1.1.0 with a health rule: pause when 20% of at least 5
	// attempts revert or fail.
	repo := filepath.Join(tmp, "repo")
	targetsKey, online, control := e2eKey("ed25519-2"), e2eKey("ed25519-4")+","+e2eKey("ed25519-5"), e2eKey("ed25519-7")
	runTool(t, release, "init", "--repo", repo, "--root-key", e2eKey("ed25519-1"), "--targets-key", targetsKey,
		"--snapshot-key", e2eKey("ed25519-4"), "--timestamp-key", e2eKey("ed25519-5"))
	images := makeImages(32 << 10)
	img := func(v string) string {
		p := filepath.Join(tmp, v+".bin")
		require.NoError(t, os.WriteFile(p, images[v], 0o644))
		return p
	}
	runTool(t, release, "add", "--repo", repo, "--hardware-id", hw, "--new-hardware-id", "--version", "1.0.0", "--security-version", "1",
		"--key", targetsKey, "--key", online, img("1.0.0"))
	runTool(t, release, "control-init", "--repo", repo, "--control-key", control, "--key", targetsKey, "--key", online)
	out := runTool(t, release, "add", "--repo", repo, "--hardware-id", hw, "--version", "1.1.0", "--security-version", "2",
		"--pause-failures", "20%", "--pause-min-attempts", "5", "--key", targetsKey, "--key", online, img("1.1.0"))
	require.Contains(t, out, "health rule of "+hw+"/1.1.0/firmware.bin")
	const target = hw + "/1.1.0/firmware.bin"
	root := filepath.Join(repo, "metadata", "1.root.json")

	// Ten devices, enrolled with their report keys.
	const n = 10
	devices := filepath.Join(tmp, "devices.json")
	type dev struct{ dir, key, id string }
	ds := make([]dev, n)
	for i := range ds {
		ds[i] = dev{dir: filepath.Join(tmp, fmt.Sprintf("dev%d", i)), id: fmt.Sprintf("gw-%02d", i)}
		require.NoError(t, os.MkdirAll(ds[i].dir, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(ds[i].dir, "a.img"), images["1.0.0"], 0o644))
		ds[i].key = filepath.Join(ds[i].dir, "report-key.pem")
		writeReportKey(t, ds[i].key)
		runTool(t, release, "devices", "enroll", "--devices", devices, "--device-id", ds[i].id, "--hardware-id", hw,
			"--rollout-id", "serial-"+ds[i].id, "--public-key", ds[i].key+".pub")
	}

	srv := startUpdateServer(t, updateserver, "--repo", repo, "--snapshot-key", e2eKey("ed25519-4"), "--timestamp-key", e2eKey("ed25519-5"),
		"--control-key", control, "--http", "127.0.0.1:0", "--health", "127.0.0.1:0", "--db", db, "--devices", devices)

	// runDevice runs one agent cycle; healthy says whether its health
	// hook passes. It returns the version the device runs afterwards.
	runDevice := func(i int, healthy bool) (int, string) {
		d := ds[i]
		hook := "exit 0"
		if !healthy {
			hook = "echo watchdog fired; exit 1"
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, agent, "-server", srv.http, "-hardware-id", hw, "-state", filepath.Join(d.dir, "state"),
			"-slot-a", filepath.Join(d.dir, "a.img"), "-slot-b", filepath.Join(d.dir, "b.img"), "-root", root,
			"-factory-version", "1.0.0", "-factory-security-version", "1", "-once", "-health-check", hook,
			"-reports", "-report-key", d.key, "-device-id", d.id, "-rollout-id", "serial-"+d.id)
		logb, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else {
			require.NoError(t, err)
		}
		require.NotContains(t, string(logb), "refused the install report", "device %s", d.id)
		st := (&device{stateDir: filepath.Join(d.dir, "state")}).status(t)
		return code, st.Installed.Version.String() + "\n" + string(logb)
	}
	version := func(s string) string { return strings.SplitN(s, "\n", 2)[0] }
	statusOut := func() string {
		return runTool(t, release, "rollout", "status", "--repo", repo, "--server", srv.health, target)
	}

	// Two devices fail the health check and revert; three confirm. The
	// fifth attempt meets the minimum: 2 of 5 = 40% >= 20%: paused.
	for i, healthy := range []bool{false, false, true, true} {
		code, got := runDevice(i, healthy)
		want := map[bool]string{true: "1.1.0", false: "1.0.0"}[healthy]
		require.Equal(t, want, version(got), got)
		require.Equal(t, map[bool]int{true: exitOK, false: exitRefused}[healthy], code, got)
	}
	assert.Contains(t, statusOut(), "control:  none", "4 attempts are below the rule's minimum")
	_, got := runDevice(4, true)
	require.Equal(t, "1.1.0", version(got), got)

	st := statusOut()
	assert.Contains(t, st, "control:  paused: health rule: 2 of 5 attempts reverted or failed")
	assert.Contains(t, st, "paused by the health rule")
	assert.Regexp(t, `1\s+100%\s+-\s+10\s+10\s+5\s+3\s+2\s+0`, st)
	assert.Contains(t, srv.logs(), "release paused by its health rule")

	// Devices not yet updated do not install the paused release.
	for i := 5; i < 8; i++ {
		code, got := runDevice(i, true)
		assert.Equal(t, exitOK, code, got)
		assert.Equal(t, "1.0.0", version(got), "device %d installed a paused release:\n%s", i, got)
		assert.Contains(t, got, "held back by the rollout control")
	}

	// Resume with the control key: the next devices update, and their
	// good reports do not pause the release again.
	runTool(t, release, "rollout", "resume", "--repo", repo, "--key", control, "--key", online, target)
	for i := 5; i < n; i++ {
		code, got := runDevice(i, true)
		require.Equal(t, exitOK, code, got)
		assert.Equal(t, "1.1.0", version(got), got)
	}
	st = statusOut()
	assert.Contains(t, st, "control:  none")
	assert.Regexp(t, `1\s+100%\s+-\s+10\s+10\s+10\s+8\s+2\s+0`, st)
	require.NoError(t, srv.cmd.Process.Signal(os.Interrupt))
	require.NoError(t, srv.cmd.Wait(), srv.logs())
}
