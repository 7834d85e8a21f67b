//go:build race

package pagecache

// raceEnabled is set under the race detector: page frames then come from
// the Go heap, which the detector watches (see arena).
const raceEnabled = true
