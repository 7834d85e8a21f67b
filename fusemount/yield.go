package fusemount

import (
	"runtime"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// Yielding between READs.
//
// go-fuse serves each request on the goroutine that read it from
// /dev/fuse and then reads the next one, so a reader fed back to back
// (a program reading at random, one read(2) at a time) never passes
// through the Go scheduler: it runs, blocks in read(2), runs again. Its
// P's scheduling tick then stays the same, and after 10 ms the runtime's
// monitor thread (sysmon) takes it for a goroutine that has run too long:
// it stops waiting for the syscall to be short, takes the P away from
// every read(2) that blocks longer than its 20 µs tick, and keeps waking
// every 20 µs to do so, on a machine whose cores the kernel side of FUSE
// and the reading program need. About a tenth of the server's CPU went
// there in 4 KiB random reads.
//
// Yielding now and then (runtime.Gosched, every yieldEvery READs of the
// mount) passes through the scheduler, which advances the tick; sysmon
// then leaves a P in read(2) alone while other Ps are idle. fio's 4 KiB
// random reads of a 1 GiB file through the mount, 3 alternated rounds:
// 20.7-22.9k IOPS without, 23.0-24.1k with; a READ handler that does no
// work at all went from 23-24k to 28-29k IOPS with a yield every 2 ms
// (fuse2fs did 28.6-29.6k then). With fio verifying a crc32c of every
// block it reads, as the bench's job does, 3 alternated rounds showed no
// difference (17.4-21.5k without, 19.7-21.8k with): fio's own CPU then
// spaces the requests out. The yield costs an atomic add per READ, and a
// trip through the scheduler every yieldEvery.

// yieldEvery is how many READs of a mount go by between yields.
const yieldEvery = 32

// Read serves a READ through the node API, yielding first every
// yieldEvery READs of the mount.
func (r *rawFS) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	if r.m.reads.Add(1)%yieldEvery == 0 {
		runtime.Gosched()
	}
	return r.RawFileSystem.Read(cancel, in, buf)
}
