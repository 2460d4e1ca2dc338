//go:build !race

package delta

// raceEnabled: see race_test.go.
const raceEnabled = false
