package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/fleet"
)

func writeDeviceKey(t *testing.T, dir, name string) (string, ed25519.PublicKey) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(pub)
	require.NoError(t, err)
	p := filepath.Join(dir, name+".pub.pem")
	require.NoError(t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644))
	return p, pub
}

func TestDevicesEnroll(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "devices.json")
	k1, pub1 := writeDeviceKey(t, dir, "gw-1")
	k2, pub2 := writeDeviceKey(t, dir, "gw-2")
	enroll := func(id, rid, key string, extra ...string) result {
		return cli(t, append([]string{"devices", "enroll", "--devices", file, "--device-id", id, "--hardware-id", "acme-gw-r2",
			"--rollout-id", rid, "--public-key", key}, extra...)...)
	}
	r := enroll("gw-1", "serial-1", k1)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "enrolled gw-1")
	require.Equal(t, 0, enroll("gw-2", "serial-2", k2).code)

	r = enroll("gw-1", "serial-1", k2)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "--replace")
	r = enroll("gw-3", "serial-3", k1)
	assert.Equal(t, 1, r.code, "a key enrolled for gw-1 cannot be gw-3's")
	r = cli(t, "devices", "enroll", "--devices", file, "--device-id", "gw-4")
	assert.Equal(t, 2, r.code)

	b, err := os.ReadFile(file)
	require.NoError(t, err)
	e, err := fleet.ParseEnrolment(b)
	require.NoError(t, err)
	require.Equal(t, 2, e.Len())
	d, _ := e.Lookup("gw-1")
	assert.Equal(t, pub1, d.PublicKey)
	assert.Equal(t, "serial-1", d.RolloutID)

	// --replace gives gw-1 a new key (the old one freed).
	k5, pub5 := writeDeviceKey(t, dir, "gw-1b")
	require.Equal(t, 0, enroll("gw-1", "serial-1", k5, "--replace").code)
	b, _ = os.ReadFile(file)
	e, err = fleet.ParseEnrolment(b)
	require.NoError(t, err)
	d, _ = e.Lookup("gw-1")
	assert.Equal(t, pub5, d.PublicKey)
	d, _ = e.Lookup("gw-2")
	assert.Equal(t, pub2, d.PublicKey)

	r = cli(t, "devices", "list", "--devices", file)
	require.Equal(t, 0, r.code)
	assert.Contains(t, r.stdout, "gw-2")
}

func TestAddHealthRule(t *testing.T) {
	repo := initRepo(t)
	old, _ := images()
	targetsKeys := key("ed25519-2") + "," + key("ed25519-3")
	r := cli(t, "add", "--repo", repo, "--hardware-id", "acme-gw-r2", "--new-hardware-id", "--version", "1.0.0", "--security-version", "1",
		"--pause-failures", "0%", "--key", targetsKeys, "--key", onlineKeys, writeImage(t, t.TempDir(), "1.0.0.bin", old))
	assert.Equal(t, 2, r.code, "a 0%% rule pauses on nothing")
	ok(t, "add", "--repo", repo, "--hardware-id", "acme-gw-r2", "--new-hardware-id", "--version", "1.0.0", "--security-version", "1",
		"--pause-failures", "5%", "--pause-min-attempts", "20", "--key", targetsKeys, "--key", onlineKeys, writeImage(t, t.TempDir(), "1.0.0.bin", old))
	b, err := os.ReadFile(filepath.Join(repo, fleet.HealthRulesFile))
	require.NoError(t, err)
	rules, err := fleet.ParseHealthRules(b)
	require.NoError(t, err)
	assert.Equal(t, fleet.HealthRule{FailureShare: 500, MinAttempts: 20}, rules.Releases["acme-gw-r2/1.0.0/firmware.bin"])
}

func TestStatusFromServer(t *testing.T) {
	repo := initRepo(t)
	old, _ := images()
	ok(t, "add", "--repo", repo, "--hardware-id", "acme-gw-r2", "--new-hardware-id", "--version", "1.0.0", "--security-version", "1",
		"--key", key("ed25519-2")+","+key("ed25519-3"), "--key", onlineKeys, writeImage(t, t.TempDir(), "1.0.0.bin", old))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, "/fleet/status", r.URL.Path)
		assert.Equal(t, "acme-gw-r2/1.0.0/firmware.bin", r.URL.Query().Get("release"))
		w.Write([]byte(`{"release":"acme-gw-r2/1.0.0/firmware.bin","waves":[{"wave":1,"share_basis_points":10000,"opens":"0001-01-01T00:00:00Z","open":true,"devices":30,"eligible":30,"attempted":25,"confirmed":20,"reverted":4,"failed":1}],
			"health_rule":{"failure_basis_points":500,"min_attempts":20},"last_health_pause":{"attempts":20,"failures":2,"published":true,"at":"2026-11-28T10:00:00Z"}}`))
	}))
	defer srv.Close()
	r := ok(t, "rollout", "status", "--repo", repo, "--server", srv.URL, "acme-gw-r2/1.0.0/firmware.bin")
	assert.Contains(t, r.stdout, "pause when reverted+failed >= 5% of at least 20 attempts")
	assert.Contains(t, r.stdout, "paused by the health rule at 2026-11-28 10:00 UTC: 2 of 20 attempts")
	assert.Regexp(t, `1\s+100%\s+-\s+30\s+30\s+25\s+20\s+4\s+1`, r.stdout)
}
