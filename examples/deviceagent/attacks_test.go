package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The attack table of DESIGN.md, driven against the agent by a malicious
// server or mirror on 127.0.0.1. Each attack is refused with its error and
// leaves the device as it was: same installed image, same floor, nothing
// pending, the active slot untouched. Fast-forward recovery and key
// compromise below the threshold need key rotations: keys_test.go. Power
// loss: crash_test.go.
func TestAttackTable(t *testing.T) {
	tamperTargets := func(match string) func(string, []byte) []byte {
		return func(p string, b []byte) []byte {
			if strings.HasPrefix(p, "/targets/") && strings.Contains(p, match) {
				b = bytes.Clone(b)
				b[len(b)/2] ^= 1
			}
			return b
		}
	}
	tests := []struct {
		name    string
		server  func(t *testing.T) *testServer
		setup   func(t *testing.T, s *testServer, d *device) // before the attack: may update the device
		attack  func(t *testing.T, s *testServer)
		hwID    string
		want    string // in the agent's log
		code    int
		version string // installed after the attack
	}{
		{name: "arbitrary image: tampered bytes", attack: func(t *testing.T, s *testServer) {
			s.setMITM(tamperTargets(""))
		}, want: "hash differs", code: 1, version: "1.0.0"},
		{name: "arbitrary image: wrong length", attack: func(t *testing.T, s *testServer) {
			s.setMITM(func(p string, b []byte) []byte {
				if strings.HasPrefix(p, "/targets/") {
					return b[:len(b)-1]
				}
				return b
			})
		}, want: "length", code: 1, version: "1.0.0"},
		{name: "rollback: replayed old timestamp", setup: func(t *testing.T, s *testServer, d *device) {
			old := s.file(t, "metadata/timestamp.json")
			code, log := agentRun(t, d.args(s)) // installs 1.1.0
			require.Equal(t, 0, code, log)
			s.publish(t, "snapshot", "timestamp")
			code, log = agentRun(t, d.args(s)) // sees the newer timestamp
			require.Equal(t, 0, code, log)
			s.setMITM(func(p string, b []byte) []byte {
				if p == "/metadata/timestamp.json" {
					return old
				}
				return b
			})
		}, attack: func(*testing.T, *testServer) {}, want: "metadata version lower than trusted", code: 1, version: "1.1.0"},
		{name: "rollback: only a lower security version offered", setup: func(t *testing.T, s *testServer, d *device) {
			code, log := agentRun(t, d.args(s))
			require.Equal(t, 0, code, log) // now on 1.1.0, floor 2
			require.NoError(t, s.repo.RemoveTarget(hw+"/deltas/1.0.0-1.1.0.otz"))
			require.NoError(t, s.repo.RemoveTarget(hw+"/1.1.0/firmware.bin"))
			s.publish(t, "targets", "snapshot", "timestamp")
		}, attack: func(*testing.T, *testServer) {}, want: "security version below floor", code: 0, version: "1.1.0"},
		{name: "indefinite freeze: expired timestamp", server: func(t *testing.T) *testServer {
			return newServerAt(t, 64<<10, func() time.Time { return time.Now().Add(-48 * time.Hour) })
		}, attack: func(*testing.T, *testServer) {}, want: "metadata expired", code: 1, version: "1.0.0"},
		{name: "endless data: huge timestamp", attack: func(t *testing.T, s *testServer) {
			s.setMITM(func(p string, b []byte) []byte {
				if p == "/metadata/timestamp.json" {
					return bytes.Repeat([]byte(" "), 1<<20)
				}
				return b
			})
		}, want: "longer than its limit", code: 1, version: "1.0.0"},
		{name: "mix and match: targets of another version", attack: func(t *testing.T, s *testServer) {
			s.setMITM(func(p string, b []byte) []byte {
				if strings.HasSuffix(p, ".targets.json") {
					// Any targets document other than the one the snapshot
					// names: here the right one with a byte changed.
					b = bytes.Clone(b)
					b[len(b)-3] ^= 1
				}
				return b
			})
		}, want: "targets", code: 1, version: "1.0.0"},
		{name: "wrong hardware", hwID: "acme-lock", attack: func(*testing.T, *testServer) {}, want: "the repository has no releases for this hardware ID", code: exitNoReleases, version: "1.0.0"},
		{name: "malicious delta, honest image", attack: func(t *testing.T, s *testServer) {
			s.setMITM(tamperTargets("deltas"))
		}, want: "delta refused; fetching the full image", code: 0, version: "1.1.0"},
		{name: "malicious delta and image", attack: func(t *testing.T, s *testServer) {
			s.setMITM(tamperTargets(""))
		}, want: "delta refused", code: 1, version: "1.0.0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s *testServer
			if tc.server != nil {
				s = tc.server(t)
			} else {
				s = newServer(t, 64<<10)
			}
			d := newDevice(t, s)
			if tc.setup != nil {
				tc.setup(t, s, d)
			}
			before := map[string][]byte{}
			for name, path := range map[string]string{"a": d.slotA, "b": d.slotB} {
				before[name], _ = os.ReadFile(path)
			}
			var floorBefore uint64
			if _, err := os.Stat(d.stateDir); err == nil {
				floorBefore = d.status(t).Floors[hw]
			}
			tc.attack(t, s)
			args := d.args(s)
			if tc.hwID != "" {
				args = append(args, "-hardware-id", tc.hwID)
			}
			code, log := agentRun(t, args)
			assert.Equal(t, tc.code, code, log)
			assert.Contains(t, log, tc.want)
			st := d.status(t)
			assert.Equal(t, tc.version, st.Installed.Version.String())
			assert.Nil(t, st.Pending)
			slot := map[string]string{"a": d.slotA, "b": d.slotB}[st.Installed.Slot]
			got, _ := os.ReadFile(slot)
			assert.Equal(t, s.images[tc.version], got, "the active slot holds the installed image")
			if tc.code != 0 {
				if floorBefore > 0 {
					assert.Equal(t, floorBefore, st.Floors[hw], "floor unchanged")
				}
				assert.Equal(t, before[st.Installed.Slot], got, "active slot untouched")
			}
		})
	}
}
