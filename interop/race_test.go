//go:build race

package interop_test

// raceEnabled: the tests run with -race, so gospool is built with it too.
const raceEnabled = true
