//go:build race

package chaos

// raceEnabled: the test runs with -race, so the binaries it builds get it too.
const raceEnabled = true
