// Package pagecache is the page cache: pages, the per-file index of pages
// (the address_space) with dirty, writeback and towrite tags, bounded
// memory with LRU eviction, dirty throttling, writeback error sequences,
// truncation, readahead, and the generic buffered read and write paths.
//
// It mirrors Linux's mm/filemap.c, mm/page-writeback.c, mm/readahead.c,
// mm/truncate.c, mm/vmscan.c (simplified), lib/errseq.c, lib/radix-tree.c
// and the page flag helpers of include/linux/page-flags.h.
//
// Lock order: page lock (Page.Lock, a sleeping lock) → Mapping.mu →
// Cache.mu. The mutexes of the page wait queues (pageWaitQueue) and
// errseq.mu are leaves: nothing is taken under them. Code holding
// Cache.mu only ever TryLocks a
// page, and the eviction scan drops Cache.mu before it locks pages or takes
// a Mapping.mu. Allocation (Mapping.NewPage) and BalanceDirty are called
// with no Mapping.mu or Cache.mu held; allocation may hold page locks,
// BalanceDirty may not. ReadaheadState.mu comes before Mapping.mu (sizing
// a window looks up pages) and is dropped before allocation and I/O.
// The arena's mutex (page memory, see arena.go) is a leaf too.
//
// Page memory: Mapping.NewPage takes a PageSize frame of the cache's arena
// (one mmap of Limit bytes), and the frame is reused for another page as
// soon as its page leaves the mapping; page memory is never garbage for
// the Go collector, and a cache's resident page memory stays within its
// limit. Page structs themselves are garbage-collected, which is what
// makes a stale *Page harmless: the rule for Data (use it only with the
// page locked and its mapping checked after locking) is written out in
// arena.go.
package pagecache

import (
	"sync"
	"sync/atomic"
	"unsafe"
)

// Page geometry: 4096-byte pages, as PAGE_CACHE_SIZE on x86.
const (
	PageShift = 12
	PageSize  = 1 << PageShift
)

// Flags are the state bits of a page (page->flags).
type Flags uint32

// Page flags.
const (
	Locked       Flags = 1 << iota // PG_locked: I/O or a state change is under way
	Uptodate                       // PG_uptodate: Data holds the file's contents
	Dirty                          // PG_dirty: Data is newer than the disk
	Writeback                      // PG_writeback: a write of Data is in flight
	Error                          // PG_error: the last I/O failed
	MappedToDisk                   // PG_mappedtodisk: every block is allocated on disk
	Referenced                     // PG_referenced: used since it entered the LRU
	Readahead                      // PG_readahead: reaching it starts the next async window

	// waiters is internal: a goroutine sleeps, or is about to, on the
	// page's wait queue for Locked or Writeback to clear (PG_waiters of
	// later Linux), so whoever clears them must wake the queue. Flags
	// hides it.
	waiters Flags = 1 << 30
	// freePending is internal: the page's frame goes back to its arena
	// when writeback ends (see Page.releaseFrame). Flags hides it.
	freePending Flags = 1 << 31

	internalFlags = waiters | freePending
)

// Page is one page of a file's data in memory (struct page).
//
// Index is set before the page is added to a mapping and never changes.
// Data is PageSize bytes; for a page made by Mapping.NewPage it is a frame
// of the cache's memory, reused once the page leaves its mapping, and nil
// from then on. Use Data only with the page locked and p.Mapping() checked
// after locking (or from I/O that the page's Locked or Writeback bit pins,
// or before the page is added); see the package doc. Private belongs to
// the layer above (the buffer heads of package buffer) and is guarded by
// the page lock.
type Page struct {
	Index   int64
	Data    []byte
	Private any

	flags   atomic.Uint32
	mapping atomic.Pointer[Mapping]

	// chargedTo is the cache whose memory limit counts this page, from
	// Mapping.NewPage (or AddPage) until the page leaves its mapping or is
	// released; nil when uncounted.
	chargedTo atomic.Pointer[Cache]

	// The frame of arena that Data is, from Mapping.NewPage until the
	// charge goes (Page.releaseFrame); arena is nil for heap pages. Set by
	// whoever owns the charge.
	arena *arena
	frame int32

	// lru links, guarded by Cache.mu.
	lruPrev, lruNext *Page
	onLRU            bool
}

// NewPage allocates a page that belongs to no mapping. Pages for a mapping
// are better made with Mapping.NewPage, which accounts them to the cache.
func NewPage(index int64) *Page {
	p := newPage(index)
	p.Data = make([]byte, PageSize)
	return p
}

// newPage makes a page without memory.
func newPage(index int64) *Page {
	return &Page{Index: index}
}

// Page wait queues. A goroutine waiting for a page's Locked or Writeback
// bit to clear sleeps on one of a fixed table of wait queues, chosen by
// the page's address (page_waitqueue's hashed table in Linux), rather than
// on a mutex and condition variable in every page: that kept 64 bytes in
// each Page and cost every unlock a mutex round and a broadcast although
// almost no unlock has a waiter. A waiter sets the page's waiters bit
// (PG_waiters) under its queue's mutex before its last look at the bit it
// waits for; whoever clears Locked or Writeback then wakes the queue only
// when the waiters bit was set. A wake-up clears the bit and wakes every
// waiter of the queue: those of other pages, or still waiting, set it
// again and sleep again.
type pageWaitQueue struct {
	mu   sync.Mutex // guards sleeps on cond; a leaf
	cond sync.Cond  // on mu
	_    [40]byte   // one queue per cache line
}

const pageWaitBits = 8

var pageWaitTable = func() *[1 << pageWaitBits]pageWaitQueue {
	t := new([1 << pageWaitBits]pageWaitQueue)
	for i := range t {
		t[i].cond.L = &t[i].mu
	}
	return t
}()

// waitQueue is the wait queue of p. Go's heap objects do not move, so
// the address is stable.
func (p *Page) waitQueue() *pageWaitQueue {
	h := uint64(uintptr(unsafe.Pointer(p))) * 0x9e3779b97f4a7c15
	return &pageWaitTable[h>>(64-pageWaitBits)]
}

// wakeWaiters wakes the goroutines waiting on p's queue if the waiters
// bit is set (wake_up_page). Call it after clearing the bit waited for.
func (p *Page) wakeWaiters() {
	if !p.Has(waiters) {
		return
	}
	q := p.waitQueue()
	q.mu.Lock()
	p.clear(waiters)
	q.cond.Broadcast()
	q.mu.Unlock()
}

// Mapping is the mapping the page belongs to, or nil once it is truncated
// or invalidated away (page->mapping).
func (p *Page) Mapping() *Mapping { return p.mapping.Load() }

// Flags returns a snapshot of the page's flags.
func (p *Page) Flags() Flags { return Flags(p.flags.Load()) &^ internalFlags }

// Has reports whether all of f are set.
func (p *Page) Has(f Flags) bool { return Flags(p.flags.Load())&f == f }

func (p *Page) set(f Flags) {
	for {
		old := p.flags.Load()
		if p.flags.CompareAndSwap(old, old|uint32(f)) {
			return
		}
	}
}

func (p *Page) clear(f Flags) (was bool) {
	for {
		old := p.flags.Load()
		if p.flags.CompareAndSwap(old, old&^uint32(f)) {
			return old&uint32(f) != 0
		}
	}
}

func (p *Page) testAndSet(f Flags) (was bool) {
	for {
		old := p.flags.Load()
		if old&uint32(f) != 0 {
			return true
		}
		if p.flags.CompareAndSwap(old, old|uint32(f)) {
			return false
		}
	}
}

// Uptodate reports PG_uptodate.
func (p *Page) Uptodate() bool { return p.Has(Uptodate) }

// SetUptodate sets PG_uptodate (SetPageUptodate).
func (p *Page) SetUptodate() { p.set(Uptodate) }

// ClearUptodate clears PG_uptodate.
func (p *Page) ClearUptodate() { p.clear(Uptodate) }

// SetError sets PG_error.
func (p *Page) SetError() { p.set(Error) }

// ClearError clears PG_error and reports whether it was set.
func (p *Page) ClearError() bool { return p.clear(Error) }

// SetMappedToDisk sets PG_mappedtodisk.
func (p *Page) SetMappedToDisk() { p.set(MappedToDisk) }

// ClearMappedToDisk clears PG_mappedtodisk.
func (p *Page) ClearMappedToDisk() { p.clear(MappedToDisk) }

// Lock takes the page lock, sleeping while another holder has it
// (lock_page).
func (p *Page) Lock() {
	if !p.testAndSet(Locked) {
		return
	}
	q := p.waitQueue()
	q.mu.Lock()
	for {
		p.set(waiters)
		if !p.testAndSet(Locked) {
			break
		}
		q.cond.Wait()
	}
	q.mu.Unlock()
}

// TryLock takes the page lock if it is free (TestSetPageLocked).
func (p *Page) TryLock() bool { return !p.testAndSet(Locked) }

// Unlock releases the page lock and wakes waiters (unlock_page). Any
// goroutine may unlock a page, as I/O completion does. An allocation
// waiting for memory is woken too: the page may now be evictable.
func (p *Page) Unlock() {
	p.unlockQuiet()
	if m := p.Mapping(); m != nil {
		m.cache.wake()
	}
}

// unlockQuiet releases the page lock waking only the page's own waiters:
// the eviction scan uses it so that its own TryLock/unlock of a page it
// could not evict does not wake the allocation it is working for.
func (p *Page) unlockQuiet() {
	p.clear(Locked)
	p.wakeWaiters()
}

// Release gives back the memory charge of a page made by Mapping.NewPage
// that never made it into a mapping, or that the caller is done with
// after it left one (page_cache_release of the last reference). It does
// nothing for a page that is in a mapping: removal uncharges those. Once
// released, the page's Data is nil: its memory may belong to another page.
func (p *Page) Release() {
	if p.Mapping() != nil {
		return
	}
	p.uncharge()
}

// uncharge returns the page's charge to its cache, once, and its frame to
// the cache's arena (first, so that an allocation the uncharge lets in
// finds a frame).
func (p *Page) uncharge() {
	if c := p.chargedTo.Swap(nil); c != nil {
		p.releaseFrame()
		c.uncharge()
	}
}

// WaitUnlocked sleeps until the page is not locked (wait_on_page_locked).
func (p *Page) WaitUnlocked() { p.waitClear(Locked) }

// WaitWriteback sleeps until the page is not under writeback
// (wait_on_page_writeback).
func (p *Page) WaitWriteback() { p.waitClear(Writeback) }

func (p *Page) waitClear(f Flags) {
	if !p.Has(f) {
		return
	}
	q := p.waitQueue()
	q.mu.Lock()
	for {
		p.set(waiters)
		if !p.Has(f) {
			break
		}
		q.cond.Wait()
	}
	q.mu.Unlock()
}
