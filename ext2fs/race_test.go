//go:build race

package ext2fs

const raceEnabled = true
