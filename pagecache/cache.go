package pagecache

import (
	"sync"
	"sync/atomic"
	"time"
)

// Config sets the limits of a Cache. Zero values take the defaults.
type Config struct {
	// Limit is the most memory, in bytes, that cached pages may use,
	// counting pages allocated for a mapping but not yet added. Default
	// 256 MiB; at least 16 pages.
	Limit int64
	// DirtyRatio is the percentage of Limit that dirty plus writeback
	// pages may reach before writers are throttled (vm_dirty_ratio).
	// Default 20.
	DirtyRatio int
	// DirtyBackgroundRatio is the percentage of Limit of dirty pages past
	// which background writeback starts (dirty_background_ratio). Default
	// 10; it is halved below DirtyRatio if not smaller.
	DirtyBackgroundRatio int
	// MaxReadahead is the largest readahead window in pages (ra_pages).
	// Default DefaultMaxReadahead (1024 pages, 4 MiB), at most
	// MaxReadaheadLimit, and at most a quarter of the cache
	// (max_sane_readahead kept readahead to half of free memory; a quarter
	// leaves room for the async window and a second stream).
	MaxReadahead int
	// HugePages backs the cache's memory with transparent huge pages
	// (MADV_HUGEPAGE), so that the pages of a large request lie in
	// physically contiguous memory: direct writes of 4 MiB requests then
	// reach the disk in a few segments and ran about 1.7x as fast here.
	// Each first touch of a huge page zeroes 2 MiB, which on VMs that give
	// free memory back to the host costs more than it saves until the
	// cache's memory has been used once; see the arena. Default off.
	HugePages bool
}

// Defaults of Config.
const (
	DefaultLimit                = 256 << 20
	DefaultDirtyRatio           = 20
	DefaultDirtyBackgroundRatio = 10
	// DefaultMaxReadahead is 1024 pages (4 MiB), far above Linux's
	// default ra_pages (VM_MAX_READAHEAD, 128 KiB). Linux can keep windows
	// small because the block layer merges the bios of consecutive windows
	// into large requests and the device queue is deep; here each device
	// call is a system call on the image file, and a window is read in
	// calls of at most the queue's request size (4 MiB for block.File).
	// A full window of 1024 pages is one such call, so a contiguous cold
	// read makes 0.25 device calls per MiB where a 128-page window makes 2
	// (measured in internal/flat's BenchmarkSequentialRead, which is no
	// slower with the large window). Once a stream runs at the full
	// window, readahead keeps two windows requested ahead of the reader
	// (see ondemandLocked), so up to three windows (12 MiB) are in
	// flight when three fit in half the cache. NewCache caps the window at a quarter
	// of the cache, so small caches stay sane: a 16 MiB cache still gets
	// 1024 pages, a 1 MiB cache 64.
	DefaultMaxReadahead = 1024
	MaxReadaheadLimit   = 1024
	minLimitPages       = 16
)

// waitRecheck bounds every sleep of an allocation or a throttled writer:
// on waking it re-kicks writeback and looks again, so a wakeup that no
// event delivers cannot strand it.
const waitRecheck = 50 * time.Millisecond

// Cache is the memory all mappings' pages share: an LRU of pages and the
// dirty count that throttles writers.
//
// Memory: each page from Mapping.NewPage is charged until it leaves its
// mapping (eviction, truncation, Remove) or is released. A charge beyond
// the limit evicts clean pages from the LRU (Cache.shrink); if none can
// go, the allocation kicks writeback and sleeps until a page is unlocked,
// ends writeback or is freed, and looks again (allocWait).
type Cache struct {
	limit        int64 // bytes; never changes
	limitPages   int64 // never changes
	dirtyThresh  int64 // pages; never changes
	bgThresh     int64 // pages; never changes
	resumeThresh int64 // pages; never changes: see BalanceDirty
	maxReadahead int   // pages; never changes

	nrDirty     atomic.Int64 // pages with Dirty set in some mapping
	nrWriteback atomic.Int64 // pages with Writeback set in some mapping
	waiters     atomic.Int32 // goroutines in allocWait, or in BalanceDirty without a flusher
	// dirtyWaiters counts writers that BalanceDirty put to sleep until
	// dirty plus writeback pages fall to resumeThresh (dirtyCond).
	dirtyWaiters atomic.Int32
	evicted      atomic.Int64
	allocWaits   atomic.Int64
	throttled    atomic.Int64

	arena *arena // page memory; never changes

	ra raStreams // which readahead streams are active, to share the cache

	kick    atomic.Pointer[func()]
	release atomic.Pointer[func(*Page) bool]

	mu            sync.Mutex // guards the fields below and the LRU links of pages
	cond          sync.Cond  // on mu: gen moved
	gen           uint64     // bumped by every event a waiter may be waiting for
	dirtyCond     sync.Cond  // on mu: dirtyGen moved
	dirtyGen      uint64     // bumped when dirty plus writeback pages fall to resumeThresh
	nrPages       int64      // charged pages
	peakPages     int64
	lruHead       Page // sentinel of the LRU list: lruHead.lruNext is the oldest
	lruLen        int
	dirtyMappings map[*Mapping]struct{} // mappings with dirty pages
}

// NewCache makes a page cache.
func NewCache(cfg Config) *Cache {
	if cfg.Limit <= 0 {
		cfg.Limit = DefaultLimit
	}
	if cfg.Limit < minLimitPages*PageSize {
		cfg.Limit = minLimitPages * PageSize
	}
	if cfg.DirtyRatio <= 0 || cfg.DirtyRatio > 100 {
		cfg.DirtyRatio = DefaultDirtyRatio
	}
	if cfg.DirtyBackgroundRatio <= 0 || cfg.DirtyBackgroundRatio > 100 {
		cfg.DirtyBackgroundRatio = DefaultDirtyBackgroundRatio
	}
	if cfg.MaxReadahead <= 0 {
		cfg.MaxReadahead = DefaultMaxReadahead
	}
	if cfg.MaxReadahead > MaxReadaheadLimit {
		cfg.MaxReadahead = MaxReadaheadLimit
	}
	limitPages := cfg.Limit / PageSize
	if q := int(limitPages / 4); cfg.MaxReadahead > q {
		cfg.MaxReadahead = q
	}
	c := &Cache{
		limit:         cfg.Limit,
		limitPages:    limitPages,
		dirtyThresh:   max(1, limitPages*int64(cfg.DirtyRatio)/100),
		bgThresh:      max(1, limitPages*int64(cfg.DirtyBackgroundRatio)/100),
		maxReadahead:  cfg.MaxReadahead,
		arena:         newArena(limitPages, cfg.HugePages),
		dirtyMappings: make(map[*Mapping]struct{}),
	}
	// get_dirty_limits(): background must stay below the hard limit.
	if c.bgThresh >= c.dirtyThresh {
		c.bgThresh = max(1, c.dirtyThresh/2)
	}
	c.resumeThresh = c.dirtyThresh - min(resumeMargin, max(0, (c.dirtyThresh-c.bgThresh)/2))
	c.cond.L = &c.mu
	c.dirtyCond.L = &c.mu
	c.lruHead.lruNext = &c.lruHead
	c.lruHead.lruPrev = &c.lruHead
	return c
}

// Limit is the cache's memory limit in bytes.
func (c *Cache) Limit() int64 { return c.limit }

// LimitPages is the cache's memory limit in pages.
func (c *Cache) LimitPages() int64 { return c.limitPages }

// MaxReadahead is the default largest readahead window in pages.
func (c *Cache) MaxReadahead() int { return c.maxReadahead }

// DirtyThresholds returns the background and the throttling thresholds in
// pages (get_dirty_limits).
func (c *Cache) DirtyThresholds() (background, dirty int64) {
	return c.bgThresh, c.dirtyThresh
}

// Stats are the cache's counters.
type Stats struct {
	Pages, Dirty int64
	Writeback    int64 // pages under writeback
	PeakPages    int64 // most pages charged at once
	Evicted      int64 // pages evicted by the LRU scan
	AllocWaits   int64 // times an allocation slept for memory
	Throttled    int64 // times BalanceDirty slept
}

// Stats returns a snapshot of the counters.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{
		Pages:      c.nrPages,
		Dirty:      c.nrDirty.Load(),
		Writeback:  c.nrWriteback.Load(),
		PeakPages:  c.peakPages,
		Evicted:    c.evicted.Load(),
		AllocWaits: c.allocWaits.Load(),
		Throttled:  c.throttled.Load(),
	}
}

// SetReleasePage registers the hook that frees a page's Private data (its
// buffer heads) before eviction (try_to_release_page →
// try_to_free_buffers). It is called with the page locked, clean and not
// under writeback, and reports whether Private is gone. Without it, pages
// with Private are never evicted.
func (c *Cache) SetReleasePage(f func(*Page) bool) {
	if f == nil {
		c.release.Store(nil)
		return
	}
	c.release.Store(&f)
}

// SetWritebackKick registers the function that wakes the flusher
// (wakeup_bdflush / wb_start_background_writeback). It is called with no
// lock held, must not block for long and may be called often.
func (c *Cache) SetWritebackKick(f func()) {
	if f == nil {
		c.kick.Store(nil)
		return
	}
	c.kick.Store(&f)
}

// kickWriteback calls the kick and reports whether there is one.
func (c *Cache) kickWriteback() bool {
	if f := c.kick.Load(); f != nil {
		(*f)()
		return true
	}
	return false
}

// wake tells waiters that something they may wait for happened: a page
// was unlocked, freed, or came clean.
func (c *Cache) wake() {
	if c.waiters.Load() == 0 {
		return
	}
	c.mu.Lock()
	c.gen++
	c.cond.Broadcast()
	c.mu.Unlock()
}

// prepareWait registers a waiter and samples the event generation. It
// comes before the waiter's last look at the state, so an event after that
// look either sees the waiter (and bumps gen) or happened before it.
func (c *Cache) prepareWait() uint64 {
	c.waiters.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// finishWait undoes prepareWait without sleeping.
func (c *Cache) finishWait() { c.waiters.Add(-1) }

// sleep waits until gen moves past the sample or waitRecheck passes, and
// unregisters the waiter.
func (c *Cache) sleep(gen uint64) {
	t := time.AfterFunc(waitRecheck, func() {
		c.mu.Lock()
		c.gen++
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	c.mu.Lock()
	for c.gen == gen {
		c.cond.Wait()
	}
	c.mu.Unlock()
	t.Stop()
	c.waiters.Add(-1)
}

// charge counts p against the limit, evicting to make room. With wait it
// sleeps until room can be made (allocWait); without, it reports false
// when the cache stays full.
//
// allocWait, the "never deadlock" argument: an allocation that finds
// nothing to evict kicks writeback and sleeps until a page is unlocked,
// ends writeback, comes clean or is freed, or waitRecheck passes; then it
// scans again. Dirty pages are bounded by BalanceDirty to DirtyRatio of
// the cache, readahead never waits (it shrinks its window instead), and
// the pages an allocator may hold locked are few, so writeback completions
// always make pages evictable again. What it cannot survive is a cache
// filled entirely by pages that nobody will unlock or write back (e.g.
// dirty pages with no flusher and no writer throttled in BalanceDirty);
// it then keeps waiting rather than break the limit.
//
// Preconditions: no Mapping.mu or Cache.mu held.
func (c *Cache) charge(p *Page, wait bool) bool {
	for {
		c.mu.Lock()
		if c.nrPages < c.limitPages {
			c.chargeLocked(p)
			c.mu.Unlock()
			return true
		}
		c.mu.Unlock()
		gen := c.prepareWait()
		if c.shrink(1) > 0 {
			c.finishWait()
			continue
		}
		if !wait {
			c.finishWait()
			return false
		}
		c.allocWaits.Add(1)
		c.kickWriteback()
		c.sleep(gen)
	}
}

// chargeForce counts p even past the limit.
func (c *Cache) chargeForce(p *Page) {
	c.mu.Lock()
	c.chargeLocked(p)
	c.mu.Unlock()
}

// chargeLocked counts p.
//
// Preconditions: c.mu is held.
func (c *Cache) chargeLocked(p *Page) {
	c.nrPages++
	c.peakPages = max(c.peakPages, c.nrPages)
	p.chargedTo.Store(c)
}

// uncharge gives back one page's charge and wakes waiters.
func (c *Cache) uncharge() {
	c.mu.Lock()
	c.nrPages--
	if c.waiters.Load() > 0 {
		c.gen++
		c.cond.Broadcast()
	}
	c.mu.Unlock()
}

// setMappingDirty records whether m has dirty pages, for BalanceDirty's own
// writeback.
func (c *Cache) setMappingDirty(m *Mapping, dirty bool) {
	c.mu.Lock()
	if dirty {
		c.dirtyMappings[m] = struct{}{}
	} else {
		delete(c.dirtyMappings, m)
	}
	c.mu.Unlock()
}

// addLRU puts p at the young end of the LRU (lru_cache_add).
func (c *Cache) addLRU(p *Page) {
	c.mu.Lock()
	c.addLRULocked(p)
	c.mu.Unlock()
}

// addLRULocked links p at the tail.
//
// Preconditions: c.mu is held.
func (c *Cache) addLRULocked(p *Page) {
	if p.onLRU {
		return
	}
	p.onLRU = true
	p.lruPrev = c.lruHead.lruPrev
	p.lruNext = &c.lruHead
	c.lruHead.lruPrev.lruNext = p
	c.lruHead.lruPrev = p
	c.lruLen++
}

// removeLRU unlinks p (del_page_from_lru).
func (c *Cache) removeLRU(p *Page) {
	c.mu.Lock()
	c.removeLRULocked(p)
	c.mu.Unlock()
}

// removeLRULocked unlinks p.
//
// Preconditions: c.mu is held.
func (c *Cache) removeLRULocked(p *Page) {
	if !p.onLRU {
		return
	}
	p.lruPrev.lruNext = p.lruNext
	p.lruNext.lruPrev = p.lruPrev
	p.lruPrev, p.lruNext, p.onLRU = nil, nil, false
	c.lruLen--
}

// shrink evicts up to want clean pages, oldest first, and returns how many
// it freed. It takes only as many candidates per round as it still needs
// (Linux takes SWAP_CLUSTER_MAX = 32), so an allocation evicts one page. It mirrors mm/vmscan.c:shrink_list() simplified to one CLOCK
// list: a page with Referenced set loses the bit and goes to the young end
// (second chance); a locked, dirty or under-writeback page goes there too;
// the others are taken off the list (isolate_lru_pages) and then, outside
// Cache.mu, locked with TryLock and removed from their mapping if still
// clean (remove_mapping), after the release hook has dropped Private.
//
// New pages enter with Referenced set (AddPage): with one list, a page
// that readahead brought in and the reader has not reached yet would
// otherwise be the first victim, behind every page already read once.
// Linux avoids that with its active/inactive lists.
//
// Preconditions: no Mapping.mu or Cache.mu held.
func (c *Cache) shrink(want int) int {
	freed := 0
	c.mu.Lock()
	budget := 2 * c.lruLen // two sweeps: the first may only clear bits
	c.mu.Unlock()
	var arr [32]*Page // no allocation for the one page an allocation wants
	batch := arr[:0]
	for freed < want && budget > 0 {
		batch = batch[:0]
		c.mu.Lock()
		for len(batch) < want-freed && budget > 0 && c.lruLen > 0 {
			budget--
			p := c.lruHead.lruNext
			if p.clear(Referenced) || p.Flags()&(Locked|Dirty|Writeback) != 0 {
				c.removeLRULocked(p)
				c.addLRULocked(p)
				continue
			}
			c.removeLRULocked(p)
			batch = append(batch, p)
		}
		c.mu.Unlock()
		if len(batch) == 0 {
			break
		}
		for _, p := range batch {
			if c.evict(p) {
				freed++
				continue
			}
			c.mu.Lock()
			if p.Mapping() != nil { // else it left its mapping meanwhile
				c.addLRULocked(p)
			}
			c.mu.Unlock()
		}
	}
	c.evicted.Add(int64(freed))
	return freed
}

// evict removes one isolated page from its mapping if it is clean,
// unlocked, not under writeback and without Private (or the release hook
// drops it) (shrink_list's "free it" path + remove_mapping).
func (c *Cache) evict(p *Page) bool {
	if !p.TryLock() {
		return false
	}
	m := p.Mapping()
	if m == nil || p.Flags()&(Dirty|Writeback) != 0 {
		p.unlockQuiet()
		return false
	}
	if p.Private != nil {
		rel := c.release.Load()
		if rel == nil || !(*rel)(p) || p.Private != nil {
			p.unlockQuiet()
			return false
		}
	}
	m.mu.Lock()
	ok := p.Flags()&(Dirty|Writeback) == 0 && m.removeLocked(p)
	m.mu.Unlock()
	if ok {
		p.uncharge() // under the page lock: see the arena's doc
	}
	p.unlockQuiet()
	return ok
}

// OverBackgroundThreshold reports whether dirty pages exceed the
// background threshold, so the flusher should keep writing
// (over_bground_thresh).
func (c *Cache) OverBackgroundThreshold() bool {
	return c.nrDirty.Load() > c.bgThresh
}

// writeChunk is how many pages a throttled writer writes back itself per
// round when no flusher is registered (sync_writeback_pages: 1.5 times the
// ratelimit of 32 pages).
const writeChunk = 48

// resumeMargin is how far below the dirty threshold dirty plus writeback
// pages must fall before a writer that BalanceDirty put to sleep is woken
// (at most half the distance to the background threshold): 1024 pages,
// one flusher chunk (writeback.DefaultChunkPages) and one full bio.
const resumeMargin = 1024

// BalanceDirty throttles a writer that just dirtied pages
// (mm/page-writeback.c:balance_dirty_pages). While dirty plus writeback
// pages exceed the dirty threshold, it kicks the flusher and sleeps until
// writeback brings them down; with no flusher registered
// (SetWritebackKick) it writes dirty pages back itself, as Linux 2.6.12
// did with writeback_inodes() from the writer, and sleeps until any page
// comes clean. Past the background threshold it kicks background
// writeback before returning.
//
// With a flusher the writer sleeps until dirty plus writeback pages are
// resumeMargin below the threshold (or waitRecheck passes), woken once by
// the page completion that gets them there, not by every page unlock and
// writeback completion: a 4 MiB bio ends 1024 pages' writeback in a
// burst, and waking on each made the writer re-check and re-sleep up to
// a thousand times per bio, taking Cache.mu and a timer each time, on the
// CPUs the flusher and the I/O workers need. Linux 2.6.12 slept in
// blk_congestion_wait (until a request completed, or 100 ms); later Linux
// sleeps for a pause computed from the writeback bandwidth. The margin is
// our hysteresis: the writer then has room for a chunk's worth of pages
// before it is throttled again. Writeback cannot stall below the margin:
// the flusher writes while dirty pages exceed the background threshold,
// which is at most resumeThresh, and writeback always ends.
//
// Preconditions: the caller holds no page lock and no Mapping.mu.
func (c *Cache) BalanceDirty() {
	for c.overDirty() {
		c.throttled.Add(1)
		if c.kickWriteback() {
			gen := c.prepareDirtyWait()
			if !c.overDirty() {
				c.dirtyWaiters.Add(-1)
				break
			}
			c.sleepDirty(gen)
			continue
		}
		gen := c.prepareWait()
		c.writebackSelf(writeChunk)
		if !c.overDirty() {
			c.finishWait()
			break
		}
		c.sleep(gen)
	}
	if c.OverBackgroundThreshold() {
		c.kickWriteback()
	}
}

// overDirty reports whether dirty plus writeback pages exceed the dirty
// threshold.
func (c *Cache) overDirty() bool {
	return c.nrDirty.Load()+c.nrWriteback.Load() > c.dirtyThresh
}

// prepareDirtyWait registers a writer waiting for the dirty count to fall
// and samples dirtyGen, before the writer's last look at the count (see
// prepareWait).
func (c *Cache) prepareDirtyWait() uint64 {
	c.dirtyWaiters.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dirtyGen
}

// sleepDirty waits until dirtyGen moves past the sample or waitRecheck
// passes, and unregisters the waiter.
func (c *Cache) sleepDirty(gen uint64) {
	t := time.AfterFunc(waitRecheck, func() {
		c.mu.Lock()
		c.dirtyGen++
		c.dirtyCond.Broadcast()
		c.mu.Unlock()
	})
	c.mu.Lock()
	for c.dirtyGen == gen {
		c.dirtyCond.Wait()
	}
	c.mu.Unlock()
	t.Stop()
	c.dirtyWaiters.Add(-1)
}

// wakeDirty wakes the writers BalanceDirty put to sleep if dirty plus
// writeback pages are down to resumeThresh. It is called after every
// decrement of either count.
func (c *Cache) wakeDirty() {
	if c.dirtyWaiters.Load() == 0 || c.nrDirty.Load()+c.nrWriteback.Load() > c.resumeThresh {
		return
	}
	c.mu.Lock()
	c.dirtyGen++
	c.dirtyCond.Broadcast()
	c.mu.Unlock()
}

// writebackSelf writes up to n dirty pages of the dirty mappings through
// their WritePages (writeback_inodes with WB_SYNC_NONE).
func (c *Cache) writebackSelf(n int64) {
	c.mu.Lock()
	ms := make([]*Mapping, 0, len(c.dirtyMappings))
	for m := range c.dirtyMappings {
		ms = append(ms, m)
	}
	c.mu.Unlock()
	for _, m := range ms {
		if n <= 0 {
			return
		}
		wbc := &WritebackControl{SyncMode: SyncNone, NrToWrite: n, RangeCyclic: true}
		m.ops.WritePages(m, wbc) // errors reach the mapping through SetError
		n = wbc.NrToWrite
	}
}
