//go:build race

package delta

// raceEnabled lets the slowest tests skip themselves under the race
// detector, which makes them many times slower without checking anything
// more: they are single-goroutine apart from Diff's chunked scan, which the
// smaller round trips already cover under -race.
const raceEnabled = true
