package sign

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/manifest"
)

// tufJS runs tuf-js (pinned in testdata/tufjs/package-lock.json) to
// download and verify one target. It returns tuf-js's exit code and report.
type tufJSResult struct {
	Path   string          `json:"path"`
	Length int64           `json:"length"`
	SHA256 string          `json:"sha256"`
	Custom json.RawMessage `json:"custom"`
}

func requireTufJS(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	_, modErr := os.Stat(filepath.Join("testdata", "tufjs", "node_modules", "tuf-js"))
	requireTool(t, "node and tuf-js (npm ci --prefix sign/testdata/tufjs)", err == nil && modErr == nil)
	return node
}

func runTufJS(t *testing.T, node, url string, rootFile, cacheDir string, targets ...string) ([]tufJSResult, int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{filepath.Join("testdata", "tufjs", "fetch.js"), url + "/metadata/", url + "/targets/", rootFile, cacheDir}, targets...)
	cmd := exec.CommandContext(ctx, node, args...)
	var stderr stringsBuilder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		require.True(t, errors.As(err, &ee), "running node: %v", err)
		return nil, ee.ExitCode(), stderr.String()
	}
	var res []tufJSResult
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var r tufJSResult
		require.NoError(t, dec.Decode(&r), string(out))
		res = append(res, r)
	}
	return res, 0, stderr.String()
}

type stringsBuilder struct{ b []byte }

func (s *stringsBuilder) Write(p []byte) (int, error) { s.b = append(s.b, p...); return len(p), nil }
func (s *stringsBuilder) String() string              { return string(s.b) }

func TestTufJSReadsRepository(t *testing.T) {
	node := requireTufJS(t)
	for _, consistent := range []bool{true, false} {
		t.Run(fmt.Sprintf("consistent=%v", consistent), func(t *testing.T) {
			tr := newTestRepo(t, consistent)
			withRolloutRelease(t, tr)
			url := serveDir(t, tr.dir)
			rootFile := filepath.Join(t.TempDir(), "root.json")
			require.NoError(t, os.WriteFile(rootFile, rootBytesOf(t, tr.root), 0o644))

			// A top-level target, one behind a path delegation, one in a
			// hash bin, a delta, and a paused staged release beside the
			// rollout-control role (paths: []).
			paths := []string{"plain.bin", "acme/1.0.0/firmware.bin", "catalog/gw/2.0.0/firmware.bin", "acme/deltas/1.0.0-1.1.0.bsdiff", rolloutPath}
			results, code, stderr := runTufJS(t, node, url, rootFile, t.TempDir(), paths...)
			require.Equal(t, 0, code, stderr)
			require.Len(t, results, len(paths))
			for i, p := range paths {
				res := results[i]
				assert.Equal(t, p, res.Path)
				sum := sha256.Sum256(tr.images[p])
				assert.Equal(t, hex.EncodeToString(sum[:]), res.SHA256, p)
				assert.Equal(t, int64(len(tr.images[p])), res.Length)
				// tuf-js hands back the same otaseal object we signed.
				e, err := manifest.ParseCustom(res.Custom)
				require.NoError(t, err, p)
				assert.NotEmpty(t, e.Kind)
			}

			// tuf-js refuses a tampered target file (it checks hashes).
			if consistent {
				return
			}
			require.NoError(t, os.WriteFile(filepath.Join(tr.dir, "targets", "plain.bin"), []byte("evil"), 0o644))
			_, code, _ = runTufJS(t, node, url, rootFile, t.TempDir(), "plain.bin")
			assert.Equal(t, 1, code)
			_, code, _ = runTufJS(t, node, url, rootFile, t.TempDir(), "not/listed.bin")
			assert.Equal(t, 2, code)
		})
	}
}

// rolloutPath is the staged release withRolloutRelease adds.
const rolloutPath = "acme/1.2.0/firmware.bin"

// withRolloutRelease adds a release with a rollout schedule and the
// rollout control role, pauses the release and publishes: what a TUF
// client that knows nothing of either must still read.
func withRolloutRelease(t *testing.T, tr *testRepo) {
	t.Helper()
	fw := firmware("1.2.0", 2)
	fw.Rollout = &manifest.Rollout{Start: tr.now, Waves: []manifest.Wave{{Offset: 0, Share: 100}, {Offset: 24 * time.Hour, Share: manifest.FullShare}}}
	tr.add(t, rolloutPath, image("a3", 3200), fw)
	withControl(t, tr)
	require.NoError(t, tr.repo.SetRolloutControl(rolloutPath, manifest.ReleaseControl{State: manifest.ControlPaused, Reason: "interop"}))
	require.NoError(t, tr.repo.Publish(context.Background(), append(onlineSigners(t), controlSigner(t)...)))
}
