//go:build !race

package pagecache

// poisonReused: see poison_race.go.
const poisonReused = false
