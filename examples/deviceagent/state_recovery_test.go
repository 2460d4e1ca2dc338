package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otaseal/otaseal/rollback"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stateTestBinary builds the agent for the tests of this file: each run is
// its own process, as on a device, so a lock dies with its holder.
func stateTestBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "deviceagent")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, string(out))
	return bin
}

// gatedServer forwards to upstream once release is closed; until then
// each request waits, and the first one closes arrived.
func gatedServer(t *testing.T, upstream string) (u string, arrived, release chan struct{}) {
	target, err := url.Parse(upstream)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	arrived, release = make(chan struct{}), make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(arrived) })
		select {
		case <-release:
			proxy.ServeHTTP(w, r)
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL, arrived, release
}

// TestTwoAgentsOneState starts two agents on one state directory at the
// same moment. One takes the state and waits at the server; the other
// exits at once with a nonzero status and a message naming the directory
// and the holder's process ID, having touched nothing. The first then
// installs the update, and its slot holds the image.
func TestTwoAgentsOneState(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("rollback locks a state directory only where flock exists")
	}
	bin := stateTestBinary(t)
	s := newServer(t, 64<<10)
	d := newDevice(t, s)
	gate, arrived, release := gatedServer(t, s.url)

	type result struct {
		i    int
		code int
	}
	var outs [2]bytes.Buffer
	var cmds [2]*exec.Cmd
	done := make(chan result, 2)
	for i := range cmds {
		cmds[i] = exec.Command(bin, d.args(s, "-server", gate)...)
		cmds[i].Stdout, cmds[i].Stderr = &outs[i], &outs[i]
	}
	for i := range cmds {
		require.NoError(t, cmds[i].Start())
	}
	for i := range cmds {
		go func() {
			err := cmds[i].Wait()
			code := 0
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				code = exit.ExitCode()
			}
			done <- result{i, code}
		}()
	}
	t.Cleanup(func() {
		for _, c := range cmds {
			_ = c.Process.Kill()
		}
	})
	wait := func(what string) result {
		select {
		case r := <-done:
			return r
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: no agent exited within 20 s\nfirst:\n%s\nsecond:\n%s", what, &outs[0], &outs[1])
			return result{}
		}
	}

	loser := wait("the second agent")
	winner := 1 - loser.i
	assert.NotZero(t, loser.code, "the refused agent's exit status")
	msg := outs[loser.i].String()
	assert.Contains(t, msg, "state directory in use by another process")
	assert.Contains(t, msg, d.stateDir)
	// The holder's process ID is named once it is written, right after
	// the lock is taken: a start in between sees the lock without it.
	if strings.Contains(msg, "held by process") {
		assert.Contains(t, msg, "held by process "+strconv.Itoa(cmds[winner].Process.Pid))
	}
	assert.NotContains(t, msg, "provisioned")
	select {
	case <-arrived: // the winner holds the state and waits at the server
	case <-time.After(20 * time.Second):
		t.Fatalf("the first agent never reached the server:\n%s", &outs[winner])
	}

	close(release)
	w := wait("the first agent")
	require.Equal(t, winner, w.i)
	require.Zero(t, w.code, outs[winner].String())
	st := d.status(t)
	require.NotNil(t, st.Installed)
	assert.Equal(t, "1.1.0", st.Installed.Version.String())
	assert.Equal(t, "b", st.Installed.Slot)
	assert.Nil(t, st.Pending)
	b, err := os.ReadFile(d.slotB)
	require.NoError(t, err)
	assert.Equal(t, s.images["1.1.0"], b, "the active slot holds the installed image")
}

// TestAgentRecoversDamagedStateFiles installs an update, then damages each
// file of the state directory in turn (a flipped byte or a truncation)
// and starts the agent on a copy. Every start succeeds, keeps the
// installed image, the security-version floor and the clock floor, and
// leaves the two copies of the damaged record alike again. Losing both
// copies of the clock record re-derives the clock floor from the stored
// timestamp.
func TestAgentRecoversDamagedStateFiles(t *testing.T) {
	bin, s, d, want := updatedDevice(t)
	require.False(t, want.clockFloor.IsZero())

	var cases [][]string // files damaged together, the counter's among them
	require.NoError(t, filepath.WalkDir(d.stateDir, func(p string, e fs.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			rel, _ := filepath.Rel(d.stateDir, p)
			cases = append(cases, []string{rel})
		}
		return err
	}))
	cases = append(cases, []string{"clock.0", "clock.1"})
	for i, files := range cases {
		t.Run(filepath.Join(files...), func(t *testing.T) {
			dev := *d
			dev.stateDir = filepath.Join(t.TempDir(), "state")
			require.NoError(t, os.CopyFS(dev.stateDir, os.DirFS(d.stateDir)))
			for _, f := range files {
				p := filepath.Join(dev.stateDir, f)
				b, err := os.ReadFile(p)
				require.NoError(t, err)
				if i%2 == 0 && len(b) > 0 {
					b[len(b)/2] ^= 0x20
				} else {
					b = b[:len(b)/2]
				}
				require.NoError(t, os.WriteFile(p, b, 0o600))
			}
			out, err := exec.Command(bin, dev.args(s)...).CombinedOutput()
			require.NoError(t, err, "the agent starts on the damaged state:\n%s", out)
			if f := files[0]; filepath.Base(f) != ".lock" {
				base := f[:len(f)-len(filepath.Ext(f))]
				c0, err := os.ReadFile(filepath.Join(dev.stateDir, base+".0"))
				require.NoError(t, err)
				c1, err := os.ReadFile(filepath.Join(dev.stateDir, base+".1"))
				require.NoError(t, err)
				assert.Equal(t, c0, c1, "the damaged copy was rewritten from the intact one")
			}
			got := deviceState(t, dev.stateDir)
			assert.Equal(t, want.version, got.version)
			assert.Equal(t, want.slot, got.slot)
			assert.Equal(t, want.floor, got.floor, "security-version floor")
			assert.False(t, got.clockFloor.Before(want.clockFloor), "clock floor %v fell below %v", got.clockFloor, want.clockFloor)
		})
	}
}

// TestAgentRecoversLostRoot loses both copies of the stored root; the
// agent starts again from the root it was shipped with (-root), walks the
// chain forward and logs the recovery as a security event.
func TestAgentRecoversLostRoot(t *testing.T) {
	bin, s, d, want := updatedDevice(t)
	for _, c := range []string{"metadata=2froot.0", "metadata=2froot.1"} {
		require.NoError(t, os.Truncate(filepath.Join(d.stateDir, c), 7))
	}
	out, err := exec.Command(bin, d.args(s)...).CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Contains(t, string(out), `level=WARN msg="state recovered" record=root from="shipped root"`)
	got := deviceState(t, d.stateDir)
	assert.Equal(t, want, got)
}

// updatedDevice builds the agent and runs it once on a new device, which
// installs 1.1.0 in slot b; it returns what the state then holds.
func updatedDevice(t *testing.T) (string, *testServer, *device, stateSummary) {
	bin := stateTestBinary(t)
	s := newServer(t, 64<<10)
	d := newDevice(t, s)
	out, err := exec.Command(bin, d.args(s)...).CombinedOutput()
	require.NoError(t, err, string(out))
	want := deviceState(t, d.stateDir)
	require.Equal(t, "1.1.0", want.version)
	return bin, s, d, want
}

// stateSummary is what a start must never lose.
type stateSummary struct {
	version, slot string
	floor         uint64
	clockFloor    time.Time
}

func deviceState(t *testing.T, dir string) stateSummary {
	t.Helper()
	ctx := context.Background()
	store, err := rollback.OpenFileStore(dir, rollback.FileStoreOptions{})
	require.NoError(t, err)
	defer store.Close()
	st, err := rollback.OpenState(ctx, store, rollback.StateOptions{HardwareID: hw, AllowNoCounter: true})
	require.NoError(t, err)
	status, err := st.Status(ctx)
	require.NoError(t, err)
	require.NotNil(t, status.Installed)
	clock, err := rollback.OpenTrustedClock(ctx, store, rollback.TrustedClockOptions{Now: time.Now})
	require.NoError(t, err)
	return stateSummary{status.Installed.Version.String(), status.Installed.Slot, status.Floors[hw], clock.Floor()}
}
