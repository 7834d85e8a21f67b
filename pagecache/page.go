// Package pagecache is the page cache: pages, the per-file index of pages
// (the address_space) with dirty and writeback tags, bounded memory with LRU
// eviction, dirty throttling and readahead state.
//
// It mirrors Linux's mm/filemap.c, mm/page-writeback.c, mm/readahead.c,
// mm/truncate.c and the page flag helpers of include/linux/page-flags.h.
package pagecache

import (
	"sync"
	"sync/atomic"
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
)

// Page is one page of a file's data in memory (struct page).
//
// Index is set before the page is added to a mapping and never changes.
// Data is always PageSize bytes. Private belongs to the layer above (the
// buffer heads of package buffer) and is guarded by the page lock.
type Page struct {
	Index   int64
	Data    []byte
	Private any

	flags   atomic.Uint32
	mapping atomic.Pointer[Mapping]

	mu   sync.Mutex // guards waits on Locked and Writeback; pairs with cond
	cond sync.Cond

	// lru links, guarded by Cache.mu.
	lruPrev, lruNext *Page
	onLRU            bool
}

// NewPage allocates a page that belongs to no mapping. Pages for a mapping
// are better made with Mapping.NewPage, which accounts them to the cache.
func NewPage(index int64) *Page {
	p := &Page{Index: index, Data: make([]byte, PageSize)}
	p.cond.L = &p.mu
	return p
}

// Mapping is the mapping the page belongs to, or nil once it is truncated
// or invalidated away (page->mapping).
func (p *Page) Mapping() *Mapping { return p.mapping.Load() }

// Flags returns a snapshot of the page's flags.
func (p *Page) Flags() Flags { return Flags(p.flags.Load()) }

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
	p.mu.Lock()
	for p.testAndSet(Locked) {
		p.cond.Wait()
	}
	p.mu.Unlock()
}

// TryLock takes the page lock if it is free (TestSetPageLocked).
func (p *Page) TryLock() bool { return !p.testAndSet(Locked) }

// Unlock releases the page lock and wakes waiters (unlock_page). Any
// goroutine may unlock a page, as I/O completion does.
func (p *Page) Unlock() {
	p.mu.Lock()
	p.clear(Locked)
	p.cond.Broadcast()
	p.mu.Unlock()
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
	p.mu.Lock()
	for p.Has(f) {
		p.cond.Wait()
	}
	p.mu.Unlock()
}
