//go:build !race

package oracle

// RaceEnabled reports whether the binary was built with the race
// detector, for tests that shrink their work under it (or build a
// command the same way).
const RaceEnabled = false
