package buffer

// The metadata buffer cache.
//
// Lock order: a buffer's lock (Head.Lock, BH_Lock) before Cache.mu before
// the registry's mutex. Cache.mu is never held while sleeping on a buffer
// lock or on I/O, and I/O completion only takes Cache.mu briefly.
//
// A buffer's life: Bread/Getblk/Find take a reference (get_bh) and take it
// off the LRU; Release drops it (brelse). When the last reference goes, a
// clean, unlocked, uptodate buffer joins the tail of the LRU, a clean buffer
// that is not uptodate (a failed read, an unused Getblk) is dropped, and a
// dirty one stays in the index until a write cleans it. Only buffers on the
// LRU are evicted, oldest first, once they hold more than CacheConfig.Limit
// bytes.

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/mpagefs/mpage/block"
)

// ErrNotImplemented marks API that the skeleton declares and a later change
// fills in.
var ErrNotImplemented = errors.New("buffer: not implemented yet")

// Sentinel errors of the buffer cache.
var (
	// ErrBlockRange is returned for a block number that is negative or
	// past the end of the device.
	ErrBlockRange = errors.New("buffer: block number out of range")
	// ErrBlockSize is returned by every read of a cache made with a block
	// size that is not a positive multiple of block.SectorSize.
	ErrBlockSize = errors.New("buffer: bad block size")
	// ErrRefused is returned when the block layer refuses even a
	// one-block bio.
	ErrRefused = errors.New("buffer: block layer refused a one-block bio")
)

// BlockError is an I/O error of one metadata block. It names the block and
// keeps the block layer's error as its cause.
type BlockError struct {
	Op    string // "read" or "write"
	Block int64
	Err   error
}

func (e *BlockError) Error() string {
	return fmt.Sprintf("buffer: %s of block %d: %v", e.Op, e.Block, e.Err)
}

func (e *BlockError) Unwrap() error { return e.Err }

// CacheConfig sets the limits of a metadata buffer cache.
type CacheConfig struct {
	// Limit is the most memory, in bytes, that clean unreferenced buffers
	// may hold before the oldest are dropped. Default 32 MiB.
	Limit int64
}

// DefaultCacheLimit is the CacheConfig.Limit used when none is given.
const DefaultCacheLimit = 32 << 20

// CacheStats are the counters of a buffer cache.
type CacheStats struct {
	Hits, Misses int64 // Bread/Getblk lookups that found / did not find the block
	Reads        int64 // blocks read from the device (including readahead)
	Writes       int64 // blocks submitted for writing
	WriteErrors  int64 // blocks whose write failed
	Evictions    int64 // clean buffers dropped to stay within the limit
	Buffers      int64 // buffers in the index now
	Dirty        int64 // buffers queued for the next Sync now (an upper bound)
	LRUBytes     int64 // bytes of clean unreferenced buffers now
}

// Cache is the metadata buffer cache of one device: superblocks, bitmaps,
// inode tables, indirect blocks (the buffer heads of the block device's own
// page cache in Linux: __getblk, __bread, mark_buffer_dirty,
// sync_dirty_buffer, sync_blockdev).
//
// A filesystem changes a buffer's Data only while it holds the buffer's
// lock (Head.Lock) and a reference, and calls MarkDirty before it unlocks.
type Cache struct {
	q         *block.Queue // never changes
	blockSize int          // never changes
	limit     int64        // never changes
	badSize   bool         // blockSize is unusable; never changes

	mu struct {
		sync.Mutex
		index    map[int64]*entry // every cached buffer by block number
		dirty    map[int64]*entry // buffers marked dirty since the last Sync took them
		lru      entry            // sentinel: lru.next is the oldest
		lruBytes int64
		stats    CacheStats
	}
}

// entry is the cache's bookkeeping for one buffer. All fields are guarded by
// Cache.mu.
type entry struct {
	bh         *Head
	refs       int // b_count
	onLRU      bool
	prev, next *entry
	// discard is set by Forget: a failed write of the buffer must not
	// make the freed block dirty again.
	discard bool
}

var registry struct {
	mu     sync.Mutex // guards caches
	caches map[*block.Queue]*Cache
}

// NewCache makes the buffer cache of q for blocks of blockSize bytes and
// registers it so that CacheFor(q) finds it, replacing any cache registered
// for q before. A blockSize that is not a positive multiple of
// block.SectorSize makes a cache whose reads fail with ErrBlockSize.
func NewCache(q *block.Queue, blockSize int, cfg CacheConfig) *Cache {
	if cfg.Limit <= 0 {
		cfg.Limit = DefaultCacheLimit
	}
	c := &Cache{q: q, blockSize: blockSize, limit: cfg.Limit}
	c.badSize = blockSize <= 0 || blockSize%block.SectorSize != 0
	c.mu.index = make(map[int64]*entry)
	c.mu.dirty = make(map[int64]*entry)
	c.mu.lru.next = &c.mu.lru
	c.mu.lru.prev = &c.mu.lru
	registry.mu.Lock()
	if registry.caches == nil {
		registry.caches = make(map[*block.Queue]*Cache)
	}
	registry.caches[q] = c
	registry.mu.Unlock()
	return c
}

// CacheFor returns the buffer cache registered for q, or nil.
func CacheFor(q *block.Queue) *Cache {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	return registry.caches[q]
}

// Close unregisters the cache, so CacheFor no longer finds it, and drops
// every buffer it holds. It does not write dirty buffers: a filesystem
// calls Sync first.
func (c *Cache) Close() {
	registry.mu.Lock()
	if registry.caches[c.q] == c {
		delete(registry.caches, c.q)
	}
	registry.mu.Unlock()
	c.mu.Lock()
	c.mu.index = make(map[int64]*entry)
	c.mu.dirty = make(map[int64]*entry)
	c.mu.lru.next = &c.mu.lru
	c.mu.lru.prev = &c.mu.lru
	c.mu.lruBytes = 0
	c.mu.Unlock()
}

// Queue is the request queue the cache reads and writes through.
func (c *Cache) Queue() *block.Queue { return c.q }

// BlockSize is the size of the cache's blocks in bytes.
func (c *Cache) BlockSize() int { return c.blockSize }

// Stats returns a snapshot of the counters.
func (c *Cache) Stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.mu.stats
	s.Buffers = int64(len(c.mu.index))
	s.Dirty = int64(len(c.mu.dirty))
	s.LRUBytes = c.mu.lruBytes
	return s
}

func (c *Cache) sector(blocknr int64) int64 {
	return blocknr * int64(c.blockSize) >> block.SectorShift
}

func (c *Cache) checkBlock(blocknr int64) error {
	if c.badSize {
		return fmt.Errorf("%w: %d", ErrBlockSize, c.blockSize)
	}
	if blocknr < 0 || (blocknr+1)*int64(c.blockSize) > c.q.Device().Size() {
		return fmt.Errorf("%w: block %d of %d-byte blocks on a %d-byte device",
			ErrBlockRange, blocknr, c.blockSize, c.q.Device().Size())
	}
	return nil
}

// getLocked returns the entry of blocknr with a new reference, creating it
// when create is set, or nil. It counts a hit or a miss when count is set.
//
// Preconditions: c.mu is held.
func (c *Cache) getLocked(blocknr int64, create, count bool) *entry {
	e := c.mu.index[blocknr]
	if e == nil {
		if count {
			c.mu.stats.Misses++
		}
		if !create {
			return nil
		}
		bh := &Head{Size: c.blockSize, Data: make([]byte, c.blockSize)}
		bh.Map(c.q, blocknr)
		e = &entry{bh: bh}
		c.mu.index[blocknr] = e
	} else if count {
		c.mu.stats.Hits++
	}
	c.unlinkLRULocked(e)
	e.refs++
	return e
}

// unlinkLRULocked takes e off the LRU if it is on it.
//
// Preconditions: c.mu is held.
func (c *Cache) unlinkLRULocked(e *entry) {
	if !e.onLRU {
		return
	}
	e.prev.next = e.next
	e.next.prev = e.prev
	e.prev, e.next, e.onLRU = nil, nil, false
	c.mu.lruBytes -= int64(e.bh.Size)
}

// settleLocked decides the place of a buffer whose last reference just
// went: the LRU, nowhere (dropped), or the index only (dirty or locked).
//
// Preconditions: c.mu is held.
func (c *Cache) settleLocked(e *entry) {
	if e.refs > 0 || c.mu.index[e.bh.Blocknr] != e {
		return
	}
	st := e.bh.State()
	switch {
	case st&(Dirty|Locked) != 0:
		return
	case st&Uptodate == 0:
		delete(c.mu.index, e.bh.Blocknr)
		return
	}
	e.prev = c.mu.lru.prev
	e.next = &c.mu.lru
	c.mu.lru.prev.next = e
	c.mu.lru.prev = e
	e.onLRU = true
	c.mu.lruBytes += int64(e.bh.Size)
	for c.mu.lruBytes > c.limit && c.mu.lru.next != &c.mu.lru {
		old := c.mu.lru.next
		c.unlinkLRULocked(old)
		if old.refs == 0 && old.bh.State()&(Dirty|Locked) == 0 {
			delete(c.mu.index, old.bh.Blocknr)
			c.mu.stats.Evictions++
		}
	}
}

// entryOfLocked returns the entry of a buffer of this cache, or nil for a
// buffer the cache does not hold.
//
// Preconditions: c.mu is held.
func (c *Cache) entryOfLocked(bh *Head) *entry {
	if bh == nil {
		return nil
	}
	if e := c.mu.index[bh.Blocknr]; e != nil && e.bh == bh {
		return e
	}
	return nil
}

// hold takes another reference to a buffer of the cache (get_bh).
func (c *Cache) hold(bh *Head) {
	c.mu.Lock()
	if e := c.entryOfLocked(bh); e != nil {
		c.unlinkLRULocked(e)
		e.refs++
	}
	c.mu.Unlock()
}

// Bread returns the buffer of block blocknr with its contents read
// (__bread). The caller holds a reference and must Release it.
//
// Many goroutines reading the same block at once read it from the device
// once: the first locks the buffer and reads, the others sleep on the
// buffer lock and find it uptodate. A failed read leaves the buffer not
// uptodate, so the next Bread tries the device again; the error is a
// *BlockError naming the block and wrapping the block layer's error.
func (c *Cache) Bread(blocknr int64) (*Head, error) {
	if err := c.checkBlock(blocknr); err != nil {
		return nil, err
	}
	c.mu.Lock()
	e := c.getLocked(blocknr, true, true)
	c.mu.Unlock()
	bh := e.bh
	if bh.Has(Uptodate) {
		return bh, nil
	}
	bh.Lock()
	if bh.Has(Uptodate) { // read by another goroutine while we slept
		bh.Unlock()
		return bh, nil
	}
	err := c.readLocked(bh)
	bh.Unlock()
	if err != nil {
		c.Release(bh)
		return nil, &BlockError{Op: "read", Block: blocknr, Err: err}
	}
	return bh, nil
}

// readLocked reads one buffer and waits (the bh_submit_read part of
// __bread_slow).
//
// Preconditions: bh is locked.
func (c *Cache) readLocked(bh *Head) error {
	b := c.allocBio(block.Read, c.sector(bh.Blocknr), 1)
	ok := b.AddPage(bh.Data, bh)
	c.mu.Lock()
	c.mu.stats.Reads++
	c.mu.Unlock()
	err := c.q.SubmitWait(b)
	if !ok {
		return ErrRefused
	}
	if err == nil {
		bh.Set(Uptodate)
	}
	return err
}

// allocBio allocates a bio for up to nrVecs blocks, taking fewer vectors
// when the block layer's bio budget is short and waiting for in-flight I/O
// to give some back when even one is not available (bio_alloc sleeping on
// its mempool).
func (c *Cache) allocBio(op block.Op, sector int64, nrVecs int) *block.Bio {
	for {
		if b := c.q.AllocBio(op, sector, nrVecs); b != nil {
			return b
		}
		if b := c.q.AllocBio(op, sector, 1); b != nil {
			return b
		}
		c.q.Wait()
		if b := c.q.AllocBio(op, sector, 1); b != nil {
			return b
		}
		time.Sleep(100 * time.Microsecond) // bios held by other builders
	}
}

// Readahead starts reads of the blocks that are not cached or not
// uptodate, without waiting for them (__breadahead for several blocks, as
// ll_rw_block(READA) is used). Adjacent blocks go into one bio. Blocks out
// of range, blocks under I/O or locked, and blocks the block layer has no
// bio for are skipped: readahead is a hint. A later Bread waits for a read
// in flight and finds the buffer uptodate.
func (c *Cache) Readahead(blocks []int64) {
	if c.badSize || len(blocks) == 0 {
		return
	}
	sorted := blocks
	if len(blocks) > 1 {
		sorted = slices.Clone(blocks)
		slices.Sort(sorted)
		sorted = slices.Compact(sorted)
	}
	var locked []*Head
	c.mu.Lock()
	for _, n := range sorted {
		if c.checkBlock(n) != nil {
			continue
		}
		e := c.getLocked(n, true, false)
		if e.bh.Has(Uptodate) || !e.bh.TryLock() {
			e.refs--
			c.settleLocked(e)
			continue
		}
		if e.bh.Has(Uptodate) {
			e.bh.Unlock()
			e.refs--
			c.settleLocked(e)
			continue
		}
		locked = append(locked, e.bh)
	}
	c.mu.stats.Reads += int64(len(locked))
	c.mu.Unlock()
	if len(locked) == 0 {
		return
	}

	end := func(b *block.Bio, err error) {
		for _, v := range b.Vecs {
			bh := v.Page.(*Head)
			if err == nil {
				bh.Set(Uptodate)
			}
			bh.Unlock()
			c.Release(bh)
		}
	}
	var bio *block.Bio
	var last int64
	for i, bh := range locked {
		if bio != nil && bh.Blocknr == last+1 && bio.AddPage(bh.Data, bh) {
			last = bh.Blocknr
			continue
		}
		if bio != nil {
			c.q.Submit(bio)
		}
		bio = c.q.AllocBio(block.Read, c.sector(bh.Blocknr), min(len(locked)-i, c.q.Limits().MaxSegments))
		if bio == nil {
			bio = c.q.AllocBio(block.Read, c.sector(bh.Blocknr), 1)
		}
		if bio == nil || !bio.AddPage(bh.Data, bh) {
			// No bio to be had now: give up on this block.
			if bio != nil {
				c.q.Submit(bio)
				bio = nil
			}
			c.mu.Lock()
			c.mu.stats.Reads--
			c.mu.Unlock()
			bh.Unlock()
			c.Release(bh)
			continue
		}
		bio.EndIO = end
		last = bh.Blocknr
	}
	if bio != nil {
		c.q.Submit(bio)
	}
	c.q.Unplug()
}

// BreadAhead starts the read of one block without waiting (__breadahead).
func (c *Cache) BreadAhead(blocknr int64) { c.Readahead([]int64{blocknr}) }

// Getblk returns the buffer of block blocknr without reading it
// (__getblk): for a block about to be overwritten whole. The caller holds
// a reference and must Release it. A new buffer is zeroed and not
// uptodate; the caller locks it, fills Data, sets Uptodate and calls
// MarkDirty.
func (c *Cache) Getblk(blocknr int64) *Head {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.getLocked(blocknr, true, true).bh
}

// Find returns the cached buffer of blocknr with a new reference, or nil
// when the block is not cached (__find_get_block). It never reads.
func (c *Cache) Find(blocknr int64) *Head {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.getLocked(blocknr, false, false); e != nil {
		return e.bh
	}
	return nil
}

// Release drops a reference taken by Bread, Getblk or Find (brelse). A
// buffer the cache does not hold, or nil, is ignored.
func (c *Cache) Release(bh *Head) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entryOfLocked(bh)
	if e == nil || e.refs == 0 {
		return
	}
	e.refs--
	c.settleLocked(e)
}

// MarkDirty marks a metadata buffer dirty (mark_buffer_dirty) so the next
// Sync writes it. A dirty buffer's Data is the block's contents, so it is
// also marked uptodate.
func (c *Cache) MarkDirty(bh *Head) {
	bh.Set(Uptodate)
	bh.Set(Dirty)
	c.mu.Lock()
	if e := c.entryOfLocked(bh); e != nil {
		e.discard = false
		c.unlinkLRULocked(e)
		c.mu.dirty[bh.Blocknr] = e
	}
	c.mu.Unlock()
}

// WriteSync writes one buffer now if it is dirty and waits
// (sync_dirty_buffer). It takes the buffer lock, so the caller must not
// hold it. On failure the buffer stays dirty and gets WriteIOError, and the
// error is a *BlockError naming the block.
func (c *Cache) WriteSync(bh *Head) error {
	bh.Lock()
	if !bh.Clear(Dirty) {
		bh.Unlock()
		return nil
	}
	c.hold(bh)
	w := c.newWriter()
	w.add(bh)
	w.submit()
	c.q.Unplug()
	return w.wait()
}

// Forget drops the dirty state and cached contents of a block that was
// freed (bforget): a dirty buffer is not written. An unreferenced buffer
// leaves the cache; a referenced one stays, clean, until released. A write
// already in flight is not waited for, but its failure will not make the
// buffer dirty again.
func (c *Cache) Forget(blocknr int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.mu.index[blocknr]
	if e == nil {
		return
	}
	e.bh.Clear(Dirty)
	e.discard = true
	delete(c.mu.dirty, blocknr)
	if e.refs == 0 && !e.bh.Has(Locked) {
		c.unlinkLRULocked(e)
		delete(c.mu.index, blocknr)
	}
}

// Sync writes every dirty buffer and waits for them (sync_blockdev for the
// metadata), returning the first error.
//
// Buffers are written in block order and adjacent ones share one bio, so
// the block layer sees a few large writes. A buffer locked by someone else
// is waited for, after the writes gathered so far are submitted (no buffer
// lock is held while sleeping on another). A buffer whose write fails
// stays dirty and gets WriteIOError, so the next Sync writes it again and
// reports again; the error returned is a *BlockError for the lowest failed
// block.
func (c *Cache) Sync() error {
	c.mu.Lock()
	list := make([]*entry, 0, len(c.mu.dirty))
	for n, e := range c.mu.dirty {
		e.refs++
		c.unlinkLRULocked(e)
		list = append(list, e)
		delete(c.mu.dirty, n)
	}
	c.mu.Unlock()
	slices.SortFunc(list, func(a, b *entry) int {
		switch {
		case a.bh.Blocknr < b.bh.Blocknr:
			return -1
		case a.bh.Blocknr > b.bh.Blocknr:
			return 1
		}
		return 0
	})
	w := c.newWriter()
	w.left = len(list)
	for _, e := range list {
		bh := e.bh
		w.left--
		if !bh.TryLock() {
			w.submit()
			bh.Lock()
		}
		if !bh.Clear(Dirty) { // written or forgotten meanwhile
			bh.Unlock()
			c.Release(bh)
			continue
		}
		w.add(bh)
	}
	w.submit()
	c.q.Unplug()
	return w.wait()
}

// writer gathers locked buffers, whose dirty bit the caller cleared and
// whose reference it hands over, into write bios of adjacent blocks
// (submit_bh / ll_rw_block(WRITE) of a sorted list).
type writer struct {
	c    *Cache
	bio  *block.Bio
	last int64
	left int // buffers still to come, to size the next bio
	wg   sync.WaitGroup

	mu    sync.Mutex  // guards first
	first *BlockError // error of the lowest failed block
}

func (c *Cache) newWriter() *writer { return &writer{c: c} }

func (w *writer) add(bh *Head) {
	c := w.c
	c.mu.Lock()
	c.mu.stats.Writes++
	c.mu.Unlock()
	if w.bio != nil && bh.Blocknr == w.last+1 && w.bio.AddPage(bh.Data, bh) {
		w.last = bh.Blocknr
		return
	}
	w.submit()
	w.bio = c.allocBio(block.Write, c.sector(bh.Blocknr), min(1+w.left, c.q.Limits().MaxSegments))
	w.bio.EndIO = w.end
	w.last = bh.Blocknr
	if !w.bio.AddPage(bh.Data, bh) {
		b := w.bio
		w.bio = nil
		w.wg.Add(1)
		c.q.Submit(b) // empty: gives the bio back
		w.fail(bh, ErrRefused)
	}
}

func (w *writer) submit() {
	if w.bio == nil {
		return
	}
	b := w.bio
	w.bio = nil
	w.wg.Add(1)
	w.c.q.Submit(b)
}

// end is the completion of a write bio (end_buffer_write_sync).
func (w *writer) end(b *block.Bio, err error) {
	for _, v := range b.Vecs {
		bh := v.Page.(*Head)
		if err != nil {
			w.fail(bh, err)
			continue
		}
		bh.Clear(WriteIOError)
		bh.Unlock()
		w.c.Release(bh)
	}
	w.wg.Done()
}

// fail records a failed write of a locked buffer: it becomes dirty again
// (unless it was forgotten) with WriteIOError, is unlocked and released.
func (w *writer) fail(bh *Head, err error) {
	c := w.c
	bh.Set(WriteIOError)
	c.mu.Lock()
	c.mu.stats.WriteErrors++
	if e := c.entryOfLocked(bh); e != nil && !e.discard {
		bh.Set(Dirty)
		c.mu.dirty[bh.Blocknr] = e
	}
	c.mu.Unlock()
	w.mu.Lock()
	if w.first == nil || bh.Blocknr < w.first.Block {
		w.first = &BlockError{Op: "write", Block: bh.Blocknr, Err: err}
	}
	w.mu.Unlock()
	bh.Unlock()
	c.Release(bh)
}

func (w *writer) wait() error {
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.first == nil {
		return nil
	}
	return w.first
}

// UnmapUnderlyingMetadata drops any cached metadata alias of a block that
// was just allocated for file data, so a stale dirty buffer cannot later
// overwrite the data (unmap_underlying_metadata): the buffer's dirty bit is
// cleared, its I/O waited for, and an unreferenced buffer leaves the cache.
func UnmapUnderlyingMetadata(q *block.Queue, blocknr int64) {
	c := CacheFor(q)
	if c == nil {
		return
	}
	bh := c.Find(blocknr)
	if bh == nil {
		return
	}
	c.mu.Lock()
	bh.Clear(Dirty)
	delete(c.mu.dirty, blocknr)
	if e := c.entryOfLocked(bh); e != nil {
		e.discard = true
	}
	c.mu.Unlock()
	bh.WaitUnlocked()
	c.mu.Lock()
	defer c.mu.Unlock()
	bh.Clear(Dirty | Req)
	e := c.entryOfLocked(bh)
	if e == nil {
		return
	}
	e.refs--
	if e.refs == 0 && !bh.Has(Locked) {
		c.unlinkLRULocked(e)
		delete(c.mu.index, blocknr)
	}
}

// WriteBoundaryBlock starts the write of a dirty metadata block (an
// indirect block) that the just-submitted data bio ends at, so the disk sees
// them in order (write_boundary_block): blocknr is the last data block
// written, known to be a boundary, and the buffer of blocknr+1, when it is
// cached and dirty, is submitted for writing without waiting (as
// ll_rw_block(WRITE) does: a locked buffer is skipped). The queue is left
// plugged so the write can merge with the data bio. A failed write leaves
// the buffer dirty for the next Sync.
func WriteBoundaryBlock(q *block.Queue, blocknr int64, size int) {
	c := CacheFor(q)
	if c == nil || size != c.blockSize {
		return
	}
	bh := c.Find(blocknr + 1)
	if bh == nil {
		return
	}
	if !bh.Has(Dirty) || !bh.TryLock() {
		c.Release(bh)
		return
	}
	if !bh.Clear(Dirty) {
		bh.Unlock()
		c.Release(bh)
		return
	}
	w := c.newWriter()
	w.add(bh) // takes over our reference
	w.submit()
}
