//go:build !race

package pagecache

import (
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// resident reports which frames of the arena are in memory (mincore).
func (a *arena) resident(t *testing.T) []bool {
	t.Helper()
	vec := make([]byte, a.nframes)
	a.region.mu.Lock()
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&a.region.mem[0])),
		uintptr(len(a.region.mem)), uintptr(unsafe.Pointer(&vec[0])))
	a.region.mu.Unlock()
	if errno != 0 {
		t.Skipf("mincore: %v", errno)
	}
	r := make([]bool, len(vec))
	for i, v := range vec {
		r[i] = v&1 != 0
	}
	return r
}

func (a *arena) waitPrefault(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		a.mu.Lock()
		busy := a.prefaulting
		a.mu.Unlock()
		if !busy {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("prefault still running after 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// Taking fresh frames faults in the next ones ahead on another goroutine,
// a chunk at a time and no further than allocation comes near, without
// changing the bytes of frames in use.
func TestArenaPrefaultsAheadOfAllocation(t *testing.T) {
	const n = 4 * prefaultChunk
	a := newArena(n, false)
	defer a.close()
	if a.region == nil {
		t.Skip("no mmap arena")
	}
	if r := a.resident(t); r[0] || r[n-1] {
		t.Fatalf("fresh arena already resident: frame 0 %v, frame %d %v", r[0], n-1, r[n-1])
	}
	frame, data, zero, ok := a.alloc()
	if !ok || frame != 0 || !zero {
		t.Fatalf("alloc: frame %d zero %v ok %v", frame, zero, ok)
	}
	for i := range data {
		data[i] = byte(i) | 1
	}
	a.waitPrefault(t)
	r := a.resident(t)
	for f := 1; f <= prefaultChunk; f++ {
		if !r[f] {
			t.Fatalf("frame %d not resident after the first allocation; want frames 1..%d prefaulted", f, prefaultChunk)
		}
	}
	if r[n-1] {
		t.Fatalf("frame %d resident: prefault ran far ahead of allocation", n-1)
	}
	// Take frames up to the end of the faulted part: the next chunk
	// follows, and the first frame's bytes are untouched.
	for i := 1; i < prefaultChunk; i++ {
		if _, _, _, ok := a.alloc(); !ok {
			t.Fatal("alloc failed")
		}
	}
	a.waitPrefault(t)
	r = a.resident(t)
	if !r[2*prefaultChunk] {
		t.Fatalf("frame %d not resident after %d allocations", 2*prefaultChunk, prefaultChunk)
	}
	for i := range data {
		if data[i] != byte(i)|1 {
			t.Fatalf("byte %d of a frame in use changed to %d by prefaulting", i, data[i])
		}
	}
}
