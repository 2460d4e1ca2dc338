package rollback

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otaseal/otaseal/manifest"
)

// The crash test re-runs this test binary as a child that writes state in a
// loop, kills it with SIGKILL at a random moment, and checks the state it
// left: every record loads and holds a value some write put there, never a
// torn mix; floors, the clock floor and sequence numbers never go back.
const (
	crashDirEnv   = "ROLLBACK_CRASH_CHILD_DIR"
	crashItersEnv = "ROLLBACK_CRASH_ITERATIONS"
	crashHW       = "acme-gw-r2"
)

var crashEpoch = time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)

// crashValue is what the child writes as sequence n of the plain record:
// sizes differ so a copy torn between two values cannot pass as either.
func crashValue(n uint64) []byte {
	size := 100
	if n%2 == 1 {
		size = 20000
	}
	b := bytes.Repeat([]byte{byte('A' + n%2)}, size)
	return strconv.AppendUint(b, n, 10)
}

// crashMetadata is a large record, so that many kills land in the middle
// of writing it.
func crashMetadata(n uint64) []byte {
	b := bytes.Repeat([]byte{byte(n)}, 48<<10)
	return strconv.AppendUint(b, n, 10)
}

func crashImage(sv uint64, slot string) Image {
	return Image{
		HardwareID:      crashHW,
		TargetPath:      fmt.Sprintf("%s/1.%d.0/firmware.bin", crashHW, sv),
		Version:         manifest.MustParseVersion(fmt.Sprintf("1.%d.0", sv)),
		SecurityVersion: sv,
		Length:          int64(sv),
		SHA256:          bytes.Repeat([]byte{byte(sv)}, 32),
		Slot:            slot,
	}
}

// crashOpen opens the state and counter directories; the caller closes
// both (through the returned counter and store) before the next child
// starts, since each directory admits one FileStore at a time.
func crashOpen(t testing.TB, dir string) (*FileStore, *StoreCounter, *State) {
	ctx := context.Background()
	store, err := OpenFileStore(filepath.Join(dir, "state"), FileStoreOptions{})
	require.NoError(t, err)
	counter, err := OpenFileCounter(filepath.Join(dir, "counter"))
	require.NoError(t, err)
	st, err := OpenState(ctx, store, StateOptions{HardwareID: crashHW, Counter: counter})
	require.NoError(t, err)
	return store, counter, st
}

// TestHelperCrashChild is the child of TestCrashSafety; it does nothing in
// a normal test run.
func TestHelperCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("child of TestCrashSafety only")
	}
	ctx := context.Background()
	store, _, st := crashOpen(t, dir)
	clock, err := OpenTrustedClock(ctx, store, TrustedClockOptions{Now: time.Now})
	require.NoError(t, err)
	status, err := st.Status(ctx)
	require.NoError(t, err)
	if status.Installed == nil {
		require.NoError(t, st.Provision(ctx, crashImage(1, "a")))
	}
	// Each step writes one record; the child starts at a random step so
	// that kills land in every kind of write, not mostly in the first.
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid())))
	steps := []func(){
		func() {
			r, err := store.Load(ctx, "plain")
			require.NoError(t, err)
			_, err = store.CompareAndSwap(ctx, "plain", r.Seq, crashValue(r.Seq+1))
			require.NoError(t, err)
		},
		func() {
			next := crashEpoch.Add(time.Second)
			if f := clock.Floor(); !f.IsZero() {
				next = f.Add(time.Second)
			}
			require.NoError(t, clock.Observe(ctx, next))
		},
		func() {
			m, err := st.Metadata(ctx, "targets")
			require.NoError(t, err)
			_, err = st.SetMetadata(ctx, "targets", m.Seq, crashMetadata(m.Seq+1))
			require.NoError(t, err)
		},
		func() {
			status, err := st.Status(ctx)
			require.NoError(t, err)
			if p := status.Pending; p != nil {
				// Even security versions are confirmed, odd ones reverted.
				if p.SecurityVersion%2 == 0 {
					_, err = st.Confirm(ctx)
				} else {
					_, err = st.Revert(ctx)
				}
				require.NoError(t, err)
				return
			}
			in := status.Installed
			slot := "a"
			if in.Slot == "a" {
				slot = "b"
			}
			sv := in.SecurityVersion + 1 + rng.Uint64N(2)
			require.NoError(t, st.Begin(ctx, crashImage(sv, slot)))
		},
	}
	fmt.Println("ready")
	for i := rng.IntN(len(steps)); ; i++ {
		steps[i%len(steps)]()
		// The parent counts finished steps, so that the kills make
		// progress however loaded the machine is.
		fmt.Println("step")
	}
}

func crashIterations(t *testing.T) int {
	if s := os.Getenv(crashItersEnv); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(t, err)
		if os.Getenv("CI") == "true" && n < 500 {
			n = 500
		}
		return n
	}
	if os.Getenv("CI") == "true" {
		return 500
	}
	if testing.Short() {
		return 20
	}
	return 100
}

func TestCrashSafety(t *testing.T) {
	if os.Getenv(crashDirEnv) != "" {
		t.Skip("in the child")
	}
	exe, err := os.Executable()
	require.NoError(t, err)
	dir := t.TempDir()
	iterations := crashIterations(t)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	ctx := context.Background()
	start := time.Now()

	var lastSeq, lastFloor, lastInstalledSV uint64
	var lastClock time.Time
	var lastMeta uint64
	for i := 0; i < iterations; i++ {
		cmd := exec.Command(exe, "-test.run=^TestHelperCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		require.NoError(t, cmd.Start())
		lines := bufio.NewReader(out)
		line, err := lines.ReadString('\n')
		if err != nil || line != "ready\n" {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("iteration %d: child did not start: %q %v\n%s", i, line, err, stderr.String())
		}
		// Let the child finish 0 to 2 steps, then kill it from a few
		// microseconds to a few milliseconds later: each step is a
		// handful of fsyncs, so kills land before, inside and after
		// writes, and the state moves on even on a loaded machine.
		for range rng.IntN(3) {
			if _, err := lines.ReadString('\n'); err != nil {
				break // the child died: Wait below says how
			}
		}
		time.Sleep(time.Duration(rng.Int64N(4000)) * time.Microsecond)
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("iteration %d: child exited on its own (%v):\n%s", i, err, stderr.String())
		}

		store, counter, st := crashOpen(t, dir)
		r, err := store.Load(ctx, "plain")
		require.NoError(t, err, "iteration %d", i)
		if r.Seq > 0 {
			assert.Equal(t, crashValue(r.Seq), r.Data, "iteration %d: torn value at seq %d", i, r.Seq)
		}
		assert.GreaterOrEqual(t, r.Seq, lastSeq, "iteration %d: sequence went back", i)
		lastSeq = r.Seq

		m, err := st.Metadata(ctx, "targets")
		require.NoError(t, err, "iteration %d", i)
		if m.Seq > 0 {
			assert.Equal(t, crashMetadata(m.Seq), m.Data, "iteration %d: torn metadata at seq %d", i, m.Seq)
		}
		assert.GreaterOrEqual(t, m.Seq, lastMeta, "iteration %d: metadata sequence went back", i)
		lastMeta = m.Seq

		clock, err := OpenTrustedClock(ctx, store, TrustedClockOptions{Now: time.Now})
		require.NoError(t, err, "iteration %d", i)
		assert.False(t, clock.Floor().Before(lastClock), "iteration %d: clock floor fell", i)
		if f := clock.Floor(); !f.IsZero() {
			assert.Zero(t, f.Sub(crashEpoch)%time.Second, "iteration %d: clock floor %v", i, f)
		}
		lastClock = clock.Floor()

		status, err := st.Status(ctx)
		require.NoError(t, err, "iteration %d", i)
		require.NotNil(t, status.Installed)
		floor := status.Floors[crashHW]
		assert.GreaterOrEqual(t, floor, lastFloor, "iteration %d: floor fell", i)
		assert.Equal(t, status.Installed.SecurityVersion, floor, "iteration %d: floor is the installed security version", i)
		assert.GreaterOrEqual(t, status.Installed.SecurityVersion, lastInstalledSV, "iteration %d", i)
		if p := status.Pending; p != nil {
			assert.Greater(t, p.SecurityVersion, floor, "iteration %d: pending raised nothing", i)
			assert.NotEqual(t, status.Installed.Slot, p.Slot)
		}
		cv, err := counter.Value(ctx)
		require.NoError(t, err)
		assert.Equal(t, floor, cv, "iteration %d: Open reconciled the counter", i)
		require.NoError(t, counter.Close())
		require.NoError(t, store.Close())
		lastFloor, lastInstalledSV = floor, status.Installed.SecurityVersion
		if t.Failed() {
			return
		}
	}
	t.Logf("%d kills in %v; plain record at sequence %d, metadata at %d, floor %d, clock floor %s",
		iterations, time.Since(start).Round(time.Millisecond), lastSeq, lastMeta, lastFloor, lastClock.Format(time.RFC3339))
	progress := lastSeq + lastMeta + lastFloor
	if !lastClock.IsZero() {
		progress += uint64(lastClock.Sub(crashEpoch) / time.Second)
	}
	assert.Greater(t, progress, uint64(iterations/4), "the child made progress")
}
