//go:build race

package main

// raceEnabled makes TestMain build the command with the race detector
// when the tests run under it.
const raceEnabled = true
