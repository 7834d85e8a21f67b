package fusemount

import (
	"os"
	"runtime"
	"sync"
)

// Processor slots for go-fuse's reader goroutines.
//
// go-fuse reads requests with blocking read(2) calls on /dev/fuse, from
// up to max(2, GOMAXPROCS) goroutines (one more while a new one starts),
// and each of them serves the request it read. A goroutine blocked in a
// system call keeps its P (the runtime's processor slot). With GOMAXPROCS
// equal to the CPU count, as by default, the readers waiting for the next
// request often hold every P; the runtime's monitor thread (sysmon) then
// finds no idle P, takes the P back from each blocked reader every 20 µs
// (retake, handoffp), and never backs off to its long sleeps. On a
// 2-CPU machine sysmon was then 16-19% of the daemon's CPU in fio's
// 4 KiB random reads.
//
// So while a mount is served, GOMAXPROCS is raised by the most readers the
// mount's server can have blocked: readers sleeping in the kernel use no
// CPU, and Go code still gets its CPU count of Ps besides them. The value
// in place before the first mount comes back when the last one ends. An
// explicit GOMAXPROCS in the environment is left alone. Measured with
// that fio job (1 GiB file, 256 MiB cache, 3 alternated runs): daemon
// CPU per request 32.5-35 -> 24-27 µs, 17.0-19.4k -> 19.4-22.8k IOPS
// (fuse2fs 29-31k in the same runs).
var procs struct {
	mu     sync.Mutex
	mounts int // mounts being served that raised GOMAXPROCS
	base   int // GOMAXPROCS before the first of them
	extra  int // Ps added for the readers of all of them
}

// readersOf is the most go-fuse readers a server created with GOMAXPROCS
// n can have blocked in read(2): max(2, min(n, 16)) (fuse.minMaxReaders,
// fuse.maxMaxReaders), plus the one that may be starting.
func readersOf(n int) int { return max(2, min(n, 16)) + 1 }

// raiseProcs adds the Ps for the readers of a server just created (with
// the current GOMAXPROCS) and returns the function that gives them back.
func raiseProcs() (lower func()) {
	if os.Getenv("GOMAXPROCS") != "" {
		return func() {}
	}
	procs.mu.Lock()
	defer procs.mu.Unlock()
	cur := runtime.GOMAXPROCS(0)
	if procs.mounts == 0 {
		procs.base = cur
		procs.extra = 0
	}
	n := readersOf(cur)
	procs.mounts++
	procs.extra += n
	runtime.GOMAXPROCS(procs.base + procs.extra)
	var once sync.Once
	return func() {
		once.Do(func() {
			procs.mu.Lock()
			defer procs.mu.Unlock()
			procs.mounts--
			procs.extra -= n
			if procs.mounts == 0 {
				runtime.GOMAXPROCS(procs.base)
				return
			}
			runtime.GOMAXPROCS(procs.base + procs.extra)
		})
	}
}
