package pagecache

import (
	"runtime"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The page memory of a Cache.
//
// Each Cache owns an arena of Limit bytes (rounded down to pages) carved
// into PageSize frames. A page made by Mapping.NewPage takes a frame, and
// the frame goes back to the arena's free list when the page's memory
// charge goes (it leaves its mapping, or is released never added), so that
// page memory is reused rather than left to the garbage collector: the
// resident page memory of a Cache never exceeds its limit, and a frame
// that was touched once costs no page fault when it is used again.
//
// The arena is one anonymous private mapping (mmap): a frame the program
// never touched costs nothing.
//
// Huge pages (Config.HugePages) back the arena with transparent huge pages
// (MADV_HUGEPAGE on a mapping aligned to 2 MiB). Frames handed out in order
// then lie in physically contiguous memory, 512 to a huge page, and a
// direct write of a 4 MiB request is a few segments for the disk instead of
// 1,024: the kernel no longer splits it at the disk's segment limit (254
// on this machine's virtio disk) and pins two folios instead of 1,024
// pages. Measured on a 2-vCPU VM, 2026-11-26: 4 MiB O_DIRECT pwrites from
// huge-page memory 3.3-3.9 GB/s against 1.9-2.2 from 4 KiB pages; the
// device calls of internal/flat's sequential write took 0.75 s of worker
// time per GiB against 1.34; a write through a cache whose memory was
// already faulted in ran 2354-2673 MB/s against 2007-2333, and cold reads
// (direct, see block.FileOptions.DirectReads) 1455-1689 MB/s against
// 870-894 buffered into 4 KiB pages (alternated runs; internal/flat's
// bench comments have the tables). The price is the first touch: each
// fault zeroes 2 MiB, and on a VM whose balloon reports free memory to the
// host (VIRTIO_BALLOON_F_REPORTING, as here) every huge page comes from
// memory the host took back, so it costs 512 host faults: a write through
// a fresh cache ran 1004-1888 MB/s against 1663-2237, because prefaulting
// could not keep ahead of the writer. Hence off by default (mpage
// --huge-pages turns it on, with direct reads). (An
// earlier try, before prefaulting, had the writer take every one of
// those faults itself.)
// Freed frames are not given back to the kernel (no MADV_DONTNEED per
// free): the arena stays bounded by the limit anyway. Cache.Close unmaps
// it; a cache never closed is unmapped once neither it nor any page holding
// one of its frames is reachable.
//
// Under the race detector the frames are instead allocated one by one on
// the Go heap (and still reused), because the race detector does not watch
// memory outside the Go heap: that way a use of Data that breaks the rules
// below shows up as a race with the frame's next owner. When mmap fails,
// the arena also falls back to heap frames.
//
// Frame ownership (why no page reference count is needed): Page structs
// themselves stay garbage-collected; only their Data is recycled. A page's
// frame is freed exactly once, by whoever drops the page's memory charge
// (Page.uncharge), and every such path in this package runs with the page
// locked and, for a page leaving a mapping, not under writeback (eviction,
// truncation, invalidation, Mapping.Remove), or for a page nobody else ever
// saw (an AddPage that lost the race, readahead pages ReadPages did not
// add, Page.Release). Data is then set to nil. Users of Data were already
// required to hold the page lock and to have checked p.Mapping() == m after
// taking it (Go's memory model has no benign races), or to be I/O that the
// page's Locked or Writeback bit pins; a page cannot leave its mapping
// while either holds. So a stale *Page found by a lookup that raced with
// eviction is harmless: locking it and seeing Mapping() != m, the caller
// drops it without touching Data. If a page is removed while under
// writeback anyway, its frame is freed when the writeback ends.
type arena struct {
	nframes int32   // never changes
	region  *region // the mmap; nil for heap frames; never changes

	mu sync.Mutex // guards the fields below; a leaf lock
	// free holds the free frames from free[freeHead] on, first freed
	// first reused: pages evicted in file order give their frames, in
	// that order, to the next pages a sequential writer or reader takes,
	// so a run of pages in file order tends to be a run of adjacent frames
	// (one segment for the device, not one per page).
	free     []int32
	freeHead int
	next     int32    // frames [next, nframes) were never used
	heap     [][]byte // heap frames by number, made on first use
	closed   bool
	// Frames [0, faulted) are faulted in, or being faulted in by the
	// prefault goroutine (running while prefaulting is set).
	faulted     int32
	prefaulting bool
}

// region is the arena's mapping, apart from the arena so that a cleanup
// attached to the arena can unmap it.
type region struct {
	mu  sync.Mutex // guards mem
	mem []byte
}

// hugePageSize is the size of a transparent huge page on x86-64 and
// arm64 with 4 KiB pages (HPAGE_PMD_SIZE).
const hugePageSize = 2 << 20

// mapFrames maps size bytes of anonymous memory for frames (unmapped by
// region.unmap). With huge set the mapping starts on a 2 MiB boundary (a
// larger mapping is made and its ends unmapped) and is advised
// MADV_HUGEPAGE; where the kernel has no transparent huge pages the advice
// fails and the memory keeps 4 KiB pages.
func mapFrames(size int, huge bool) ([]byte, error) {
	const prot, flags = unix.PROT_READ | unix.PROT_WRITE, unix.MAP_PRIVATE | unix.MAP_ANONYMOUS
	huge = huge && size >= hugePageSize
	n := size
	if huge {
		n += hugePageSize
	}
	p, err := unix.MmapPtr(-1, 0, nil, uintptr(n), prot, flags)
	if err != nil {
		return nil, err
	}
	if !huge {
		return unsafe.Slice((*byte)(p), size), nil
	}
	base := uintptr(p)
	skip := (hugePageSize - base%hugePageSize) % hugePageSize
	if skip > 0 {
		unix.MunmapPtr(p, skip) // nothing to do about an error
	}
	if tail := hugePageSize - skip; tail > 0 {
		unix.MunmapPtr(unsafe.Add(p, skip+uintptr(size)), tail)
	}
	mem := unsafe.Slice((*byte)(unsafe.Add(p, skip)), size)
	unix.Madvise(mem, unix.MADV_HUGEPAGE) // EINVAL without THP: 4 KiB pages
	return mem, nil
}

func (r *region) unmap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mem != nil {
		unix.MunmapPtr(unsafe.Pointer(unsafe.SliceData(r.mem)), uintptr(len(r.mem))) // nothing to do about an error
		r.mem = nil
	}
}

// newArena makes an arena of n frames, on huge pages if huge is set.
func newArena(n int64, huge bool) *arena {
	a := &arena{nframes: int32(min(n, 1<<31-1))}
	if !raceEnabled {
		mem, err := mapFrames(int(a.nframes)*PageSize, huge)
		if err == nil {
			a.region = &region{mem: mem}
			runtime.AddCleanup(a, (*region).unmap, a.region)
		}
	}
	if a.region == nil {
		a.heap = make([][]byte, a.nframes)
	}
	return a
}

// alloc takes a free frame and returns its number and bytes, and whether
// they are known to be zero (a frame never used). ok is false when every
// frame is in use or the arena is closed.
func (a *arena) alloc() (frame int32, data []byte, zero, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.allocLocked()
}

// allocLocked is alloc.
//
// Preconditions: a.mu is held.
func (a *arena) allocLocked() (frame int32, data []byte, zero, ok bool) {
	switch {
	case a.closed:
		return 0, nil, false, false
	case len(a.free) > a.freeHead:
		frame = a.free[a.freeHead]
		a.freeHead++
		if a.freeHead == len(a.free) {
			a.free, a.freeHead = a.free[:0], 0
		} else if a.freeHead >= 1024 && a.freeHead*2 >= len(a.free) {
			n := copy(a.free, a.free[a.freeHead:])
			a.free, a.freeHead = a.free[:n], 0
		}
	case a.next < a.nframes:
		frame = a.next
		a.next++
		zero = true
		a.prefaultLocked()
	default:
		return 0, nil, false, false
	}
	if a.region != nil {
		off := int(frame) * PageSize
		return frame, a.region.mem[off : off+PageSize : off+PageSize], zero, true
	}
	if a.heap[frame] == nil {
		a.heap[frame] = make([]byte, PageSize)
	}
	return frame, a.heap[frame], zero, true
}

// Prefaulting: the first touch of a never-used frame costs a page fault
// (the kernel zeroes a page and maps it, 5-8 µs in a VM), which a writer
// filling fresh cache memory paid once per page on its own goroutine. The
// arena instead faults in the never-used frames just ahead of allocation
// with MADV_POPULATE_WRITE, a chunk at a time, on another goroutine, so
// that on a second core it overlaps the writer's copying. Only
// allocation that reaches within prefaultAhead frames of the faulted part
// starts a chunk, so a cache that is barely used stays barely resident,
// and nothing is faulted beyond the arena, whose size is the cache limit.
const (
	prefaultChunk = 1024 // frames faulted in by one madvise (4 MiB)
	prefaultAhead = 2048 // start a chunk when next is this close to faulted
)

// prefaultLocked starts faulting in the next chunk of never-used frames
// if allocation is near the end of the faulted part and no chunk is
// being faulted in.
//
// Preconditions: a.mu is held.
func (a *arena) prefaultLocked() {
	if a.region == nil || a.prefaulting || a.faulted >= a.nframes || a.next+prefaultAhead < a.faulted {
		return
	}
	lo := max(a.faulted, a.next)
	hi := min(lo+prefaultChunk, a.nframes)
	a.faulted = hi
	a.prefaulting = true
	go func() {
		a.region.populate(int(lo)*PageSize, int(hi)*PageSize)
		a.mu.Lock()
		a.prefaulting = false
		a.mu.Unlock()
	}()
}

// populate faults in mem[lo:hi] for writing (MADV_POPULATE_WRITE) unless
// the region is unmapped. It changes no byte: pages already present,
// possibly in use by a page's owner, are left as they are, and missing
// ones appear zeroed as a first touch would make them. Errors (a kernel
// before 5.14 has no MADV_POPULATE_WRITE) leave the faults to the first
// touch, as without prefaulting.
func (r *region) populate(lo, hi int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mem != nil {
		unix.Madvise(r.mem[lo:hi], unix.MADV_POPULATE_WRITE)
	}
}

// release puts a frame back on the free list.
func (a *arena) release(frame int32) {
	a.mu.Lock()
	if !a.closed {
		a.free = append(a.free, frame)
	}
	a.mu.Unlock()
}

// close unmaps the arena; later allocations fail.
func (a *arena) close() {
	a.mu.Lock()
	a.closed = true
	a.free, a.freeHead = nil, 0
	a.heap = nil
	a.mu.Unlock()
	if a.region != nil {
		a.region.unmap()
	}
}

// inUse is the number of frames taken.
func (a *arena) inUse() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return int64(a.next) - int64(len(a.free)-a.freeHead)
}

// attachFrame gives a page made for a mapping its memory: a frame of the
// cache's arena, zeroed if zero is set, or a heap page when the arena has
// none (it is closed, or frames are held by pages removed under writeback).
func (c *Cache) attachFrame(p *Page, zero bool) {
	frame, data, fresh, ok := c.arena.alloc()
	if !ok {
		p.Data = make([]byte, PageSize)
		return
	}
	if zero && !fresh {
		clear(data)
	} else if !zero && !fresh && poisonReused {
		// Test builds: a path that exposes bytes it did not fill
		// shows garbage rather than the zeroes it was relying on.
		for i := range data {
			data[i] = 0xa5
		}
	}
	p.Data = data
	p.frame = frame
	p.arena = c.arena
}

// releaseFrame gives the page's frame back to its arena, now, or when its
// writeback ends if it is under writeback (see EndWriteback). The page's
// Data is nil afterwards.
//
// Preconditions: the page has left its mapping (or never entered one) and
// its charge is gone; the caller is the one that dropped the charge.
func (p *Page) releaseFrame() {
	if p.arena == nil {
		return
	}
	p.set(freePending)
	if !p.Has(Writeback) && p.clear(freePending) {
		p.freeFrame()
	}
}

// freeFrame returns the frame to the arena.
func (p *Page) freeFrame() {
	a, frame := p.arena, p.frame
	p.arena, p.frame, p.Data = nil, 0, nil
	a.release(frame)
}

// Close unmaps the cache's page memory. Every page made by Mapping.NewPage
// for one of its mappings must be out of use before (its Data would no
// longer be mapped: touching it faults); pages allocated afterwards come
// from the Go heap. Close is for the owner of the cache, once its
// filesystem is unmounted; calling it again does nothing.
func (c *Cache) Close() {
	c.arena.close()
}
