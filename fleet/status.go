package fleet

import "time"

// StatusPath is where an update server that takes reports answers, on its
// health listener, what it counted for one release:
// GET StatusPath?release=TARGET gives a ReleaseStatus as JSON.
const StatusPath = "/fleet/status"

// ReleaseStatus is an update server's count of one release's rollout.
type ReleaseStatus struct {
	Release     string       `json:"release"`
	Version     string       `json:"version"`
	HardwareIDs []string     `json:"hardware_ids"`
	Waves       []WaveStatus `json:"waves"`
	// Rule is the release's health rule, if it has one.
	Rule *HealthRule `json:"health_rule,omitempty"`
	// Control is what the rollout control role says of the release now.
	Control *ControlStatus `json:"control,omitempty"`
	// LastPause is the last time the health rule tripped.
	LastPause *HealthPause `json:"last_health_pause,omitempty"`
}

// WaveStatus counts one wave of a release's schedule: the devices the
// server knows for the release's hardware whose rollout bucket falls in
// the wave, those of them eligible (the wave has opened), and the latest
// attempt of each device that reported one, by result. An immediate
// release is one wave of every device, open from the start.
type WaveStatus struct {
	Wave      int       `json:"wave"` // from 1
	Share     int       `json:"share_basis_points"`
	Opens     time.Time `json:"opens"`
	Open      bool      `json:"open"`
	Devices   int       `json:"devices"`
	Eligible  int       `json:"eligible"`
	Attempted int       `json:"attempted"`
	Confirmed int       `json:"confirmed"`
	Reverted  int       `json:"reverted"`
	Failed    int       `json:"failed"`
}

// ControlStatus is a release's entry in the rollout control role.
type ControlStatus struct {
	State    string `json:"state"`
	CapShare int    `json:"cap_basis_points,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// HealthPause is a trip of a release's health rule: the attempts and
// failures it counted, AfterReportID the newest report among them (after
// a resume the rule judges only newer reports), and whether the pause was
// published (false when the server holds no rollout control key).
type HealthPause struct {
	Release       string    `json:"release"`
	AfterReportID int64     `json:"after_report_id"`
	Attempts      int64     `json:"attempts"`
	Failures      int64     `json:"failures"`
	Published     bool      `json:"published"`
	At            time.Time `json:"at"`
}
