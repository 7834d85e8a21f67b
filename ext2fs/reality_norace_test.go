//go:build !race

package ext2fs_test

// realityRace reports whether the race detector is on: the request
// comparison with the kernel then copies 64 MiB instead of 256 MiB.
const realityRace = false
