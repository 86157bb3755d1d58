//go:build race

package verify

// raceEnabled reports whether the tests run with the race detector.
const raceEnabled = true
