//go:build !race

package ext2fs

const raceEnabled = false
