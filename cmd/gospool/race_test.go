//go:build race

package main

// raceEnabled: the tests run with -race, so the binary they build gets it too.
const raceEnabled = true
