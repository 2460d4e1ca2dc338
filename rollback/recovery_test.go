package rollback

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otaseal/otaseal/manifest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// recoveryFloor is the clock floor of the device recoveryState builds:
// the signing time of its stored timestamp.
var recoveryFloor = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// recoveryState leaves in dir the state of a device that installed an
// update: install record with floor 5, a clock floor and a stored
// timestamp signed at recoveryFloor, a root document.
func recoveryState(t *testing.T, dir string) {
	t.Helper()
	ctx := context.Background()
	store, err := OpenFileStore(dir, FileStoreOptions{})
	require.NoError(t, err)
	defer store.Close()
	st, err := OpenState(ctx, store, StateOptions{HardwareID: hw, AllowNoCounter: true})
	require.NoError(t, err)
	require.NoError(t, st.Provision(ctx, slotImg("1.0.0", 3, "a")))
	require.NoError(t, st.Begin(ctx, slotImg("1.1.0", 5, "b")))
	_, err = st.Confirm(ctx)
	require.NoError(t, err)

	ts := metadata.Timestamp(recoveryFloor.Add(24 * time.Hour))
	manifest.SetSignedAt(&ts.Signed, recoveryFloor)
	tsJSON, err := ts.ToBytes(false)
	require.NoError(t, err)
	_, err = st.SetMetadata(ctx, manifest.RoleTimestamp, 0, tsJSON)
	require.NoError(t, err)
	_, err = st.SetMetadata(ctx, manifest.RoleRoot, 0, []byte(`{"root":"document"}`))
	require.NoError(t, err)
	clock, err := OpenTrustedClock(ctx, store, TrustedClockOptions{Now: time.Now})
	require.NoError(t, err)
	require.NoError(t, clock.Observe(ctx, recoveryFloor))
}

// startResult is what one start of the device found.
type startResult struct {
	floor      uint64    // security-version floor
	clockFloor time.Time // trusted clock floor
	installed  string    // slot of the installed image
	log        string
}

// start opens dir as an agent does at boot: store, state, clock, and the
// metadata that cannot be fetched again (root).
func start(t *testing.T, dir string) (startResult, error) {
	ctx := context.Background()
	var logged bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logged, nil))
	store, err := OpenFileStore(dir, FileStoreOptions{Logger: log})
	if err != nil {
		return startResult{}, err
	}
	defer store.Close()
	st, err := OpenState(ctx, store, StateOptions{HardwareID: hw, AllowNoCounter: true})
	if err != nil {
		return startResult{}, err
	}
	status, err := st.Status(ctx)
	if err != nil {
		return startResult{}, err
	}
	clock, err := OpenTrustedClock(ctx, store, TrustedClockOptions{Now: func() time.Time { return epoch }, Logger: log})
	if err != nil {
		return startResult{}, err
	}
	if _, err := st.Metadata(ctx, manifest.RoleRoot); err != nil {
		return startResult{}, err
	}
	return startResult{floor: status.Floors[hw], clockFloor: clock.Floor(), installed: status.Installed.Slot, log: logged.String()}, nil
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	require.NoError(t, os.CopyFS(to, os.DirFS(from)))
}

// TestStateFilesDamagedInTurn flips a byte in and truncates each file the
// FileStore wrote, one at a time. Every start recovers from the other
// copy, with the same floors, the same installed slot, and a "state
// recovered" log line.
func TestStateFilesDamagedInTurn(t *testing.T) {
	pristine := t.TempDir()
	recoveryState(t, pristine)
	want, err := start(t, pristine)
	require.NoError(t, err)
	require.Equal(t, uint64(5), want.floor)
	require.Equal(t, recoveryFloor, want.clockFloor)
	require.Empty(t, want.log, "an intact state recovers nothing")

	entries, err := os.ReadDir(pristine)
	require.NoError(t, err)
	var files []string
	for _, e := range entries {
		files = append(files, e.Name())
	}
	for _, record := range []string{"install", "clock", "metadata=2froot", "metadata=2ftimestamp"} {
		require.Contains(t, files, record+".0")
		require.Contains(t, files, record+".1", "two copies from the first write")
	}
	damages := map[string]func(b []byte) []byte{
		"flip first byte":  func(b []byte) []byte { b[0] ^= 1; return b },
		"flip middle byte": func(b []byte) []byte { b[len(b)/2] ^= 0x80; return b },
		"flip last byte":   func(b []byte) []byte { b[len(b)-1] ^= 1; return b },
		"truncate to zero": func(b []byte) []byte { return nil },
		"truncate by one":  func(b []byte) []byte { return b[:len(b)-1] },
	}
	for _, file := range files {
		for name, damage := range damages {
			t.Run(file+"/"+name, func(t *testing.T) {
				dir := t.TempDir()
				copyDir(t, pristine, dir)
				p := filepath.Join(dir, file)
				b, err := os.ReadFile(p)
				require.NoError(t, err)
				if len(b) > 0 {
					b = damage(b)
				}
				require.NoError(t, os.WriteFile(p, b, 0o600))

				got, err := start(t, dir)
				require.NoError(t, err)
				assert.Equal(t, want.floor, got.floor, "security-version floor")
				assert.Equal(t, want.clockFloor, got.clockFloor, "clock floor")
				assert.Equal(t, want.installed, got.installed, "installed slot")
				if file != lockFileName && !strings.HasPrefix(file, "metadata=2ftimestamp") {
					// The timestamp is read only when the clock needs it.
					// The line names the record and the copy it came from.
					base, n := file[:len(file)-2], file[len(file)-1:]
					other := base + ".0"
					if n == "0" {
						other = base + ".1"
					}
					assert.Contains(t, got.log, `"level":"WARN","msg":"state recovered","record":`)
					assert.Contains(t, got.log, `"from":"`+other+`","damaged":"`+file+`: `)
				}
				// The damaged copy was rewritten: the next start is clean.
				again, err := start(t, dir)
				require.NoError(t, err)
				assert.Equal(t, want.floor, again.floor)
				if !strings.HasPrefix(file, "metadata=2ftimestamp") {
					assert.Empty(t, again.log)
				}
			})
		}
	}
}

// TestStateRecordLostInBothCopies damages both copies of one record. The
// clock floor is re-derived from the stored timestamp; a record that
// nothing can re-derive fails with a *CorruptError naming it, never with
// lower floors.
func TestStateRecordLostInBothCopies(t *testing.T) {
	pristine := t.TempDir()
	recoveryState(t, pristine)
	for _, tt := range []struct {
		records     []string
		wantCorrupt string // record named in the CorruptError; "" means the start succeeds
	}{
		{[]string{"clock"}, ""},
		{[]string{"install"}, "install"},
		{[]string{"metadata=2froot"}, "metadata/root"},
		{[]string{"clock", "metadata=2ftimestamp"}, "clock"},
	} {
		for _, truncate := range []bool{false, true} {
			t.Run(fmt.Sprint(tt.records, " truncate=", truncate), func(t *testing.T) {
				dir := t.TempDir()
				copyDir(t, pristine, dir)
				for _, r := range tt.records {
					for _, c := range []string{".0", ".1"} {
						p := filepath.Join(dir, r+c)
						b, err := os.ReadFile(p)
						require.NoError(t, err)
						if truncate {
							b = b[:len(b)/2]
						} else {
							b[len(b)/3] ^= 4
						}
						require.NoError(t, os.WriteFile(p, b, 0o600))
					}
				}
				got, err := start(t, dir)
				if tt.wantCorrupt != "" {
					var ce *CorruptError
					require.ErrorAs(t, err, &ce)
					assert.ErrorIs(t, err, ErrCorrupt)
					assert.Equal(t, tt.wantCorrupt, ce.Name)
					return
				}
				require.NoError(t, err)
				assert.Equal(t, uint64(5), got.floor)
				assert.Equal(t, recoveryFloor, got.clockFloor, "clock floor re-derived, not zero")
				assert.Contains(t, got.log, `"level":"WARN","msg":"state recovered","record":"clock","from":"signing time of the stored timestamp"`)
			})
		}
	}
}

// TestClockRecordMissing: a clock record deleted next to a stored
// timestamp is a lost floor, not a new device.
func TestClockRecordMissing(t *testing.T) {
	dir := t.TempDir()
	recoveryState(t, dir)
	for _, c := range []string{"clock.0", "clock.1"} {
		require.NoError(t, os.Remove(filepath.Join(dir, c)))
	}
	got, err := start(t, dir)
	require.NoError(t, err)
	assert.Equal(t, recoveryFloor, got.clockFloor)
	assert.Contains(t, got.log, `"msg":"state recovered","record":"clock"`)

	// A device that never stored a timestamp starts with no floor, quietly.
	ctx := context.Background()
	var logged bytes.Buffer
	c, err := OpenTrustedClock(ctx, NewMemStore(), TrustedClockOptions{Now: time.Now, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	require.NoError(t, err)
	assert.True(t, c.Floor().IsZero())
	assert.Empty(t, logged.String())
}

// TestClockCatchesUpWithStoredTimestamp: a floor behind the stored
// timestamp (a crash between storing it and Observe) rises at open.
func TestClockCatchesUpWithStoredTimestamp(t *testing.T) {
	ctx := context.Background()
	store := NewMemStore()
	_, err := store.CompareAndSwap(ctx, clockRecordName, 0, []byte(recoveryFloor.Add(-time.Hour).Format(time.RFC3339Nano)))
	require.NoError(t, err)
	ts := metadata.Timestamp(recoveryFloor.Add(time.Hour))
	manifest.SetSignedAt(&ts.Signed, recoveryFloor)
	b, err := ts.ToBytes(false)
	require.NoError(t, err)
	_, err = store.CompareAndSwap(ctx, metadataPrefix+manifest.RoleTimestamp, 0, b)
	require.NoError(t, err)
	c, err := OpenTrustedClock(ctx, store, TrustedClockOptions{Now: time.Now})
	require.NoError(t, err)
	assert.Equal(t, recoveryFloor, c.Floor())
	r, err := store.Load(ctx, clockRecordName)
	require.NoError(t, err)
	assert.Equal(t, recoveryFloor.Format(time.RFC3339Nano), string(r.Data), "persisted")
}
