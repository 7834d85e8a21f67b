// Package writeback is the flusher of one filesystem and the data-integrity
// sync of its files: the per-device writeback thread of later Linux
// (fs/fs-writeback.c: wb_workfn, wb_do_writeback, wb_writeback,
// wb_check_old_data_flush, wb_check_background_flush) and the
// filemap_write_and_wait of mm/filemap.c, on the policy knobs of
// mm/page-writeback.c (dirty_writeback_interval, dirty_expire_interval,
// dirty_background_ratio, MAX_WRITEBACK_PAGES).
//
// The flusher never writes a page itself: it calls the mapping's
// Operations.WritePages with a WritebackControl, as Linux calls
// do_writepages, and the filesystem (through fs/mpage.c's writepages)
// does the rest.
//
// # Syncing a filesystem
//
// A filesystem's sync (sync_filesystem) is three steps, in this order, and
// the third is the caller's job:
//
//  1. Flusher.SyncAll writes and waits for the data of every registered
//     mapping (this package);
//  2. the metadata buffer cache's Sync writes the inode tables, bitmaps and
//     indirect blocks that step 1 may have dirtied (package buffer);
//  3. the request queue's Flush makes it all durable (package block).
//
// Lock order: Flusher.mu is a leaf; it is never held while calling into a
// mapping's Operations or while waiting for a page.
package writeback

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/mpagefs/mpage/pagecache"
)

// Sentinel errors of the writeback package.
var (
	// ErrPageIO is reported for a page whose writeback ended with its
	// error flag set (PageError seen by filemap_fdatawait).
	ErrPageIO = errors.New("writeback: I/O error writing page")
)

// Defaults of Config.
const (
	DefaultInterval   = 5 * time.Second  // dirty_writeback_interval: 500 centisecs
	DefaultExpire     = 30 * time.Second // dirty_expire_interval: 3000 centisecs
	DefaultChunkPages = 1024             // MAX_WRITEBACK_PAGES
	// DefaultBackgroundRatio is dirty_background_ratio: background
	// writeback starts when this percentage of the page cache is dirty.
	DefaultBackgroundRatio = 10
)

// Config tunes a Flusher. Zero values take the defaults.
type Config struct {
	// Interval is how often the flusher wakes by itself
	// (dirty_writeback_interval).
	Interval time.Duration
	// Expire is how long data may stay dirty before the periodic pass
	// writes it (dirty_expire_interval).
	Expire time.Duration
	// ChunkPages is the page budget of one WritePages call on one mapping
	// (nr_to_write per pass, MAX_WRITEBACK_PAGES).
	ChunkPages int64
	// BackgroundDirty is the number of dirty pages in the cache above
	// which the flusher writes in the background until it is below
	// again (background_thresh). When zero, the cache's own
	// OverBackgroundThreshold decides if it has one (dirty_background_ratio
	// of pagecache.Config), else DefaultBackgroundRatio percent of the
	// cache's limit.
	BackgroundDirty int64
}

// Stats are the counters of a Flusher.
type Stats struct {
	Wakeups         int64 // passes of the flusher goroutine
	Chunks          int64 // WritePages calls made by the flusher
	ExpiredPages    int64 // pages written because they were old (kupdate)
	BackgroundPages int64 // pages written because the cache was over the threshold
	Congested       int64 // passes cut short by a congested device
	Errors          int64 // WritePages calls of the flusher that failed
}

// The optional abilities of a page cache, checked with type assertions so
// that the flusher uses them when the pagecache package provides them.
type (
	// backgroundThresholder reports whether so much of the cache is dirty
	// that background writeback should run (dirty_background_ratio test
	// of wb_over_bg_thresh).
	backgroundThresholder interface{ OverBackgroundThreshold() bool }
	// kickSetter installs the function the cache calls when writers need
	// the flusher (wb_start_background_writeback from balance_dirty_pages).
	kickSetter interface{ SetWritebackKick(func()) }
	// dirtyHookSetter installs a function called when a mapping gets its
	// first dirty page (__mark_inode_dirty(I_DIRTY_PAGES)).
	dirtyHookSetter interface {
		SetDirtyHook(func(*pagecache.Mapping))
	}
	// errorChecker returns and clears a mapping's recorded writeback
	// error (filemap_check_errors).
	errorChecker interface{ CheckErrors() error }
)

// mappingState is what the flusher knows of one registered mapping.
// Its fields are guarded by Flusher.mu.
type mappingState struct {
	m   *pagecache.Mapping // never changes
	idx int                // position in Flusher.mu.order
	// dirtiedWhen is when the mapping was first seen dirty since it was
	// last clean (inode->dirtied_when); zero while clean.
	dirtiedWhen time.Time
	// seen is the refreshDirty generation in which the cache last listed
	// the mapping as dirty.
	seen uint64
	// prev and next link the state into Flusher.mu.dirty while
	// dirtiedWhen is set (the inode on b_dirty); nil otherwise.
	prev, next *mappingState
}

// Flusher is the writeback thread of one filesystem (struct bdi_writeback
// and its wb_workfn): it writes old dirty data periodically and writes in
// chunks while the page cache is over its background threshold.
type Flusher struct {
	cache *pagecache.Cache // never changes
	cfg   Config           // never changes
	ownBG bool             // cfg.BackgroundDirty was given; never changes
	kick  chan struct{}    // capacity 1: a pending wake-up
	// plugger is held plugged across passes and SyncAll's writes;
	// nil when none was set. Set before Start, never changed after.
	plugger Plugger

	// scratch is the buffer refreshDirty lists the cache's dirty
	// mappings into; used only by the flusher goroutine.
	scratch []*pagecache.Mapping

	mu struct {
		sync.Mutex
		maps  map[*pagecache.Mapping]*mappingState
		order []*pagecache.Mapping // every registered mapping, for SyncAll
		// dirty is the sentinel of the ring of the states with a dirty
		// age (b_dirty): in the order they were found dirty, a mapping
		// that background writeback left dirty moved to the end. The
		// flusher's passes walk it, never every registered mapping.
		dirty  mappingState
		nDirty int    // states on the dirty ring
		gen    uint64 // refreshDirty generation
		busy   map[*pagecache.Mapping]int
		idle   sync.Cond // signalled when busy shrinks; L is &mu.Mutex
		stop   chan struct{}
		done   chan struct{}
		stats  Stats
	}
}

// New makes the flusher of the mappings of one filesystem whose pages live
// in cache. It does not run until Start. If the cache can report a
// mapping's first dirty page (SetDirtyHook), the flusher installs
// MarkDirty there; otherwise the filesystem Registers every mapping that
// may get dirty pages.
func New(cache *pagecache.Cache, cfg Config) *Flusher {
	ownBG := cfg.BackgroundDirty > 0
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Expire <= 0 {
		cfg.Expire = DefaultExpire
	}
	if cfg.ChunkPages <= 0 {
		cfg.ChunkPages = DefaultChunkPages
	}
	if cfg.BackgroundDirty <= 0 {
		cfg.BackgroundDirty = max(1, cache.Limit()/pagecache.PageSize*DefaultBackgroundRatio/100)
	}
	f := &Flusher{cache: cache, cfg: cfg, ownBG: ownBG, kick: make(chan struct{}, 1)}
	f.mu.maps = make(map[*pagecache.Mapping]*mappingState)
	f.mu.dirty.prev, f.mu.dirty.next = &f.mu.dirty, &f.mu.dirty
	f.mu.busy = make(map[*pagecache.Mapping]int)
	f.mu.idle.L = &f.mu.Mutex
	if h, ok := any(cache).(dirtyHookSetter); ok {
		h.SetDirtyHook(f.MarkDirty)
	}
	return f
}

// Config is the flusher's configuration with defaults filled in.
func (f *Flusher) Config() Config { return f.cfg }

// Register adds a mapping that may get dirty pages, such as the mapping of
// an inode being read in (the inode joining the bdi's lists).
func (f *Flusher) Register(m *pagecache.Mapping) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.registerLocked(m)
}

// registerLocked adds m if it is new and returns its state.
//
// Preconditions: f.mu is held.
func (f *Flusher) registerLocked(m *pagecache.Mapping) *mappingState {
	st := f.mu.maps[m]
	if st == nil {
		st = &mappingState{m: m, idx: len(f.mu.order)}
		f.mu.maps[m] = st
		f.mu.order = append(f.mu.order, m)
	}
	return st
}

// markDirtyLocked starts st's dirty age at now and puts it at the end of
// the dirty ring if it was clean.
//
// Preconditions: f.mu is held.
func (f *Flusher) markDirtyLocked(st *mappingState, now time.Time) {
	if !st.dirtiedWhen.IsZero() {
		return
	}
	st.dirtiedWhen = now
	f.linkTailLocked(st)
	f.mu.nDirty++
}

// markCleanLocked clears st's dirty age and takes it off the dirty ring.
//
// Preconditions: f.mu is held.
func (f *Flusher) markCleanLocked(st *mappingState) {
	if st.dirtiedWhen.IsZero() {
		return
	}
	st.dirtiedWhen = time.Time{}
	unlinkLocked(st)
	f.mu.nDirty--
}

// linkTailLocked puts st, on no ring, at the end of the dirty ring.
//
// Preconditions: f.mu is held.
func (f *Flusher) linkTailLocked(st *mappingState) {
	head := &f.mu.dirty
	st.prev, st.next = head.prev, head
	head.prev.next = st
	head.prev = st
}

// unlinkLocked takes st off the dirty ring.
//
// Preconditions: f.mu of st's flusher is held.
func unlinkLocked(st *mappingState) {
	st.prev.next = st.next
	st.next.prev = st.prev
	st.prev, st.next = nil, nil
}

// Unregister removes a mapping, as an inode is evicted, and waits until no
// flusher pass is writing it (the I_SYNC wait of evict's
// inode_wait_for_writeback). It must not be called from the mapping's
// WritePages. Dirty pages are not written: sync the mapping first.
func (f *Flusher) Unregister(m *pagecache.Mapping) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st, ok := f.mu.maps[m]; ok {
		f.markCleanLocked(st)
		// The last mapping takes m's place in order.
		last := len(f.mu.order) - 1
		moved := f.mu.order[last]
		f.mu.order[st.idx] = moved
		f.mu.maps[moved].idx = st.idx
		f.mu.order[last] = nil
		f.mu.order = f.mu.order[:last]
		delete(f.mu.maps, m)
	}
	for f.mu.busy[m] > 0 {
		f.mu.idle.Wait()
	}
}

// MarkDirty tells the flusher that m has just got dirty pages
// (__mark_inode_dirty with I_DIRTY_PAGES): it registers m if needed and
// starts its dirty age now if it was clean. Without it the flusher notices
// dirty mappings itself when it wakes, so their age counts from then.
func (f *Flusher) MarkDirty(m *pagecache.Mapping) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.markDirtyLocked(f.registerLocked(m), time.Now())
}

// Kick wakes the flusher now, to check the background threshold
// (wb_wakeup). It never blocks.
func (f *Flusher) Kick() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// Start starts the flusher goroutine. If the cache can kick a flusher
// (SetWritebackKick), Kick is installed there, so writers throttled by the
// cache wake this flusher; a cache holds one kick, so of several flushers
// sharing a cache the last started is kicked. Starting a running flusher
// does nothing.
func (f *Flusher) Start() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mu.stop != nil {
		return
	}
	f.mu.stop = make(chan struct{})
	f.mu.done = make(chan struct{})
	go f.run(f.mu.stop, f.mu.done)
	if k, ok := any(f.cache).(kickSetter); ok {
		k.SetWritebackKick(f.Kick)
	}
}

// Stop stops the flusher goroutine and waits until it has returned,
// which is after any WritePages call it is in. Dirty data stays dirty:
// call SyncAll to write it. Stopping a stopped flusher does nothing.
func (f *Flusher) Stop() {
	f.mu.Lock()
	stop, done := f.mu.stop, f.mu.done
	f.mu.stop, f.mu.done = nil, nil
	f.mu.Unlock()
	if stop == nil {
		return
	}
	if k, ok := any(f.cache).(kickSetter); ok {
		// Writers throttled from now on write back themselves.
		k.SetWritebackKick(nil)
	}
	close(stop)
	<-done
}

// Stats returns a snapshot of the counters.
func (f *Flusher) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mu.stats
}

// run is the flusher goroutine (wb_workfn): it wakes every Interval, or
// sooner when kicked, and does one pass.
func (f *Flusher) run(stop, done chan struct{}) {
	defer close(done)
	timer := time.NewTimer(f.cfg.Interval)
	defer timer.Stop()
	lastOld := time.Now()
	for {
		select {
		case <-stop:
			return
		case <-timer.C:
		case <-f.kick:
		}
		pl := f.startPlug()
		retry := f.pass(stop, &lastOld)
		f.finishPlug(pl, false)
		wait := f.cfg.Interval
		if retry {
			// A congested device: look again soon rather than a whole
			// interval later (congestion_wait).
			wait = min(wait, 10*time.Millisecond)
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// pass is one wake-up of the flusher (wb_do_writeback): the periodic
// write of old data when an interval has gone by (wb_check_old_data_flush),
// then background writeback while the cache is over its threshold
// (wb_check_background_flush). It reports whether it stopped because a
// device was congested.
func (f *Flusher) pass(stop chan struct{}, lastOld *time.Time) (congested bool) {
	f.mu.Lock()
	f.mu.stats.Wakeups++
	f.mu.Unlock()
	now := time.Now()
	f.refreshDirty(now)
	if now.Sub(*lastOld) >= f.cfg.Interval {
		*lastOld = now
		if f.writeOld(stop, now) {
			congested = true
		}
	}
	if !congested && f.writeBackground(stop) {
		congested = true
	}
	if congested {
		f.mu.Lock()
		f.mu.stats.Congested++
		f.mu.Unlock()
	}
	return congested
}

// refreshDirty notes which registered mappings are dirty: a mapping seen
// dirty for the first time gets its dirty age started now and joins the
// end of the dirty ring, one on the ring that is clean leaves it. It asks
// the cache for its dirty mappings (the bdi's dirty inode list) rather
// than looking at each registered mapping, so a pass costs in proportion
// to the dirty mappings, not to every inode the filesystem has cached.
// It runs only on the flusher goroutine.
func (f *Flusher) refreshDirty(now time.Time) {
	dirty := f.cache.DirtyMappings(f.scratch[:0])
	f.mu.Lock()
	f.mu.gen++
	gen := f.mu.gen
	for _, m := range dirty {
		if st := f.mu.maps[m]; st != nil {
			st.seen = gen
			f.markDirtyLocked(st, now)
		}
	}
	for st := f.mu.dirty.next; st != &f.mu.dirty; {
		next := st.next
		if st.seen != gen {
			f.markCleanLocked(st)
		}
		st = next
	}
	f.mu.Unlock()
	clear(dirty) // hold no evicted mapping until the next pass
	f.scratch = dirty[:0]
}

// mappings returns the registered mappings.
func (f *Flusher) mappings() []*pagecache.Mapping {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*pagecache.Mapping(nil), f.mu.order...)
}

func stopped(stop chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// writeOld writes the mappings dirty for longer than Expire, oldest first,
// one chunk each in turn until they are clean (wb_writeback with
// for_kupdate and older_than_this). Its budget is the cache's dirty count
// when it starts, so data dirtied while it runs cannot keep it going
// forever. It reports whether it stopped on congestion.
func (f *Flusher) writeOld(stop chan struct{}, now time.Time) bool {
	cutoff := now.Add(-f.cfg.Expire)
	type aged struct {
		m    *pagecache.Mapping
		when time.Time
	}
	var old []aged
	f.mu.Lock()
	for st := f.mu.dirty.next; st != &f.mu.dirty; st = st.next {
		if !st.dirtiedWhen.After(cutoff) {
			old = append(old, aged{st.m, st.dirtiedWhen})
		}
	}
	f.mu.Unlock()
	if len(old) == 0 {
		return false
	}
	// Oldest first, as b_io is ordered by dirtied_when.
	slices.SortStableFunc(old, func(a, b aged) int { return a.when.Compare(b.when) })
	expired := make([]*pagecache.Mapping, len(old))
	for i, a := range old {
		expired[i] = a.m
	}
	budget := max(f.cache.Stats().Dirty, f.cfg.ChunkPages)
	for len(expired) > 0 && budget > 0 {
		progress := false
		still := expired[:0]
		for _, m := range expired {
			if stopped(stop) {
				return false
			}
			wbc := f.writeChunk(m, min(f.cfg.ChunkPages, budget))
			n := written(wbc, min(f.cfg.ChunkPages, budget))
			budget -= n
			progress = progress || n > 0
			f.mu.Lock()
			f.mu.stats.ExpiredPages += n
			f.mu.Unlock()
			if wbc.EncounteredCongestion {
				return true
			}
			if m.Tagged(pagecache.TagDirty) {
				still = append(still, m)
			} else {
				f.markClean(m)
			}
		}
		expired = still
		if !progress {
			break
		}
	}
	return false
}

func (f *Flusher) markClean(m *pagecache.Mapping) {
	f.mu.Lock()
	if st := f.mu.maps[m]; st != nil {
		f.markCleanLocked(st)
	}
	f.mu.Unlock()
}

// overBackground reports whether the cache is over the background dirty
// threshold (wb_over_bg_thresh).
func (f *Flusher) overBackground() bool {
	if t, ok := any(f.cache).(backgroundThresholder); ok && !f.ownBG {
		return t.OverBackgroundThreshold()
	}
	return f.cache.Stats().Dirty > f.cfg.BackgroundDirty
}

// writeBackground writes chunks of ChunkPages pages, round robin over the
// dirty mappings, while the cache is over its background threshold
// (wb_writeback for background work; a mapping left dirty goes to the end
// of the ring, as requeue_io moves an inode to b_more_io). After a full
// round that wrote nothing it looks once for mappings dirtied since the
// pass began, and stops if there are none to write; it also stops when a
// device is congested (reported) or on stop. The threshold is looked at
// again only after ChunkPages pages were written, over as many mappings as
// it takes (writeback_sb_inodes writes the inodes of b_io one after the
// other before wb_writeback checks wb_over_bg_thresh), so that a pass
// hands the device a run of small files at once rather than one file
// each time the cache creeps over the threshold.
func (f *Flusher) writeBackground(stop chan struct{}) bool {
	idle := 0         // mappings tried in a row without progress
	refreshed := true // pass just refreshed the dirty ring
	var quota int64   // pages to write before the threshold is looked at again
	for {
		if quota <= 0 {
			if !f.overBackground() {
				return false
			}
			quota = f.cfg.ChunkPages
		}
		if stopped(stop) {
			return false
		}
		m, n := f.nextDirty()
		if m == nil || idle >= n {
			if refreshed {
				return false
			}
			f.refreshDirty(time.Now())
			refreshed, idle = true, 0
			continue
		}
		if !m.Tagged(pagecache.TagDirty) {
			f.markClean(m)
			idle++
			continue
		}
		wbc := f.writeChunk(m, f.cfg.ChunkPages)
		w := written(wbc, f.cfg.ChunkPages)
		f.mu.Lock()
		f.mu.stats.BackgroundPages += w
		f.mu.Unlock()
		quota -= w
		if w > 0 {
			idle, refreshed = 0, false
		} else {
			idle++
		}
		if !m.Tagged(pagecache.TagDirty) {
			f.markClean(m)
		}
		if wbc.EncounteredCongestion {
			return true
		}
	}
}

// nextDirty returns the mapping at the head of the dirty ring, moving it
// to the end, and how many mappings are on the ring; nil if none.
func (f *Flusher) nextDirty() (*pagecache.Mapping, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.mu.dirty.next
	if st == &f.mu.dirty {
		return nil, 0
	}
	unlinkLocked(st)
	f.linkTailLocked(st)
	return st.m, f.mu.nDirty
}

// writeChunk calls WritePages on m for at most budget pages, for memory
// cleaning: WB_SYNC_NONE, range_cyclic, nonblocking
// (writeback_sb_inodes -> __writeback_single_inode -> do_writepages). A
// failure is recorded against the mapping, so a later fsync sees it.
func (f *Flusher) writeChunk(m *pagecache.Mapping, budget int64) *pagecache.WritebackControl {
	wbc := &pagecache.WritebackControl{
		SyncMode:    pagecache.SyncNone,
		NrToWrite:   budget,
		RangeCyclic: true,
		Nonblocking: true,
	}
	f.mu.Lock()
	if _, ok := f.mu.maps[m]; !ok { // unregistered meanwhile
		f.mu.Unlock()
		return wbc
	}
	f.mu.busy[m]++
	f.mu.stats.Chunks++
	f.mu.Unlock()

	err := m.Ops().WritePages(m, wbc)

	f.mu.Lock()
	if f.mu.busy[m]--; f.mu.busy[m] == 0 {
		delete(f.mu.busy, m)
	}
	if err != nil {
		f.mu.stats.Errors++
	}
	f.mu.idle.Broadcast()
	f.mu.Unlock()
	if err != nil {
		m.SetError(err)
	}
	return wbc
}

// written is how many pages a WritePages call with the given budget
// handed to I/O: PagesWritten, or the budget it used up.
func written(wbc *pagecache.WritebackControl, budget int64) int64 {
	return max(wbc.PagesWritten, budget-max(wbc.NrToWrite, 0))
}

// SyncAll writes every registered mapping's dirty pages and waits for
// them, for a filesystem sync (the data part of sync_filesystem: a
// WB_SYNC_ALL pass over every inode, then the waits of
// wait_sb_inodes). All mappings are started before any is waited for, so
// their I/O overlaps. It returns the first error and still syncs the
// other mappings after one fails.
//
// The filesystem then writes its metadata (buffer.Cache.Sync) and flushes
// the device (block.Queue.Flush); see the package documentation.
func (f *Flusher) SyncAll() error {
	maps := f.syncOrder()
	var first error
	pl := f.startPlug()
	for _, m := range maps {
		if err := startSync(m); err != nil && first == nil {
			first = err
		}
	}
	f.finishPlug(pl, true)
	for _, m := range maps {
		if err := waitSync(m); err != nil && first == nil {
			first = err
		}
	}
	if first == nil {
		f.mu.Lock()
		for _, m := range maps {
			if st := f.mu.maps[m]; st != nil && !m.Tagged(pagecache.TagDirty) {
				f.markCleanLocked(st)
			}
		}
		f.mu.Unlock()
	}
	return first
}

// SyncMapping writes every dirty page of m and waits for the writeback of
// all its pages, returning the first error (filemap_write_and_wait, the
// data part of vfs_fsync): the error of WritePages, then that of a page
// whose write failed, then the mapping's recorded writeback error when
// the page cache keeps one (filemap_check_errors).
func SyncMapping(m *pagecache.Mapping) error {
	err := startSync(m)
	if werr := waitSync(m); err == nil {
		err = werr
	}
	return err
}

// startSync starts the data-integrity write of the whole of m
// (filemap_fdatawrite: __filemap_fdatawrite_range with WB_SYNC_ALL over
// 0..LLONG_MAX).
func startSync(m *pagecache.Mapping) error {
	wbc := &pagecache.WritebackControl{
		SyncMode:   pagecache.SyncAll,
		NrToWrite:  math.MaxInt64,
		RangeStart: 0,
		RangeEnd:   math.MaxInt64,
	}
	if err := m.Ops().WritePages(m, wbc); err != nil {
		return fmt.Errorf("writeback: writing pages: %w", err)
	}
	return nil
}

// waitSync waits for the writeback of every page of m that is under
// writeback (filemap_fdatawait: __filemap_fdatawait_range, then
// filemap_check_errors).
func waitSync(m *pagecache.Mapping) error {
	var first error
	index := int64(0)
	for {
		pages := m.LookupTag(&index, math.MaxInt64, pagecache.TagWriteback, 64)
		if len(pages) == 0 {
			break
		}
		for _, p := range pages {
			p.WaitWriteback()
			if p.ClearError() && first == nil {
				first = fmt.Errorf("%w %d", ErrPageIO, p.Index)
			}
		}
	}
	if c, ok := any(m).(errorChecker); ok {
		if err := c.CheckErrors(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// WriteAndWait is the data part of fsync on one open file
// (file_write_and_wait_range in later Linux): it writes every dirty page of
// m with SyncAll and waits for all writeback of m, returning only the error
// of starting the writes. The outcome of the I/O — page errors and the
// mapping's recorded error — is left in place for the caller's per-handle
// errseq check (Mapping.CheckAndAdvanceErr), which reports it once to each
// handle open when it happened; unlike SyncMapping it does not consume the
// mapping-wide error flags, which would hand one handle's error to a
// handle opened after it was reported (filemap_fdatawait_keep_errors).
func WriteAndWait(m *pagecache.Mapping) error {
	err := startSync(m)
	index := int64(0)
	for {
		pages := m.LookupTag(&index, math.MaxInt64, pagecache.TagWriteback, 64)
		if len(pages) == 0 {
			break
		}
		for _, p := range pages {
			p.WaitWriteback()
		}
	}
	return err
}
