//go:build race

package pagecache

// poisonReused fills reused frames that are handed out unzeroed with 0xa5
// in race-enabled builds (the tests in CI), so that a path which makes a
// page uptodate without filling all of it is caught by the tests that
// compare file contents.
const poisonReused = true
