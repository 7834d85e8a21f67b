package pagecache

// The batched path of Mapping.Write for whole pages.
//
// A write that covers whole pages takes them in batches of up to
// writeBatchPages: the pages the cache lacks are charged against the limit
// in one round of Cache.mu (evicting as many as needed at once), get their
// frames in one round of the arena's lock, enter the index in one round of
// Mapping.mu and the LRU in one more of Cache.mu; once their bytes are in,
// they are marked dirty and tagged in one round of Mapping.mu, and the
// writer is throttled once per batch (balance_dirty_pages_ratelimited
// calls balance_dirty_pages once per ratelimit pages). Later Linux gets
// the same effect from large folios: one filemap_add_folio and one
// folio_mark_dirty for many pages. A filesystem that is a
// BatchWriteBeginner begins the whole batch at once (mapping its blocks
// with a call per contiguous run); otherwise WriteBegin is called per
// page. Per page there is left the copy.

// writeBatchPages is the most pages one batch takes: 32 (SWAP_CLUSTER_MAX,
// and balance_dirty_pages_ratelimited's default ratelimit), at most an
// eighth of the cache so that a batch's charge always fits.
const writeBatchPages = 32

// writeBatchLimit is the batch size for this cache.
func (c *Cache) writeBatchLimit() int {
	return int(max(1, min(writeBatchPages, c.limitPages/8)))
}

// BatchWriteBeginner is an optional ability of Operations beside
// WriteBeginner: the batched path of Mapping.Write hands it a run of new
// pages, each about to be overwritten whole, so that the filesystem can
// map and allocate the blocks of the run with a few calls of its block
// mapper where WriteBegin on each page would make one per block (later
// Linux's iomap_begin over a whole write, or ext4's multi-page
// delalloc: one ext2_get_blocks for a run of blocks).
//
// The pages are locked, in the mapping, at consecutive indices, without
// buffers and not yet uptodate. WriteBeginBatch returns how many leading
// pages it prepared as WriteBegin(p, 0, PageSize) would have. An error is
// about page n (the first not prepared) and stops the write there, as
// WriteBegin's error would; with a nil error and n < len(pages) the rest
// are begun one by one with WriteBegin.
type BatchWriteBeginner interface {
	WriteBeginBatch(pages []*Page) (n int, err error)
}

// writeWholePages writes data, a whole number of pages, at page index
// first, into the pages at first, first+1, ... that the cache lacks, up
// to the first cached one, and returns how many bytes it wrote: 0 when the
// page at first is cached (the caller then writes that page alone), else
// the bytes of the pages before the one whose WriteBegin failed, with
// that error. len(data)/PageSize is at most the cache's writeBatchLimit
// and first+len(data)/PageSize-1 at most MaxIndex. The pages are begun
// with the ops' WriteBeginBatch when they are a BatchWriteBeginner, the
// rest of them (or all) with wb.
func (m *Mapping) writeWholePages(wb WriteBeginner, data []byte, first int64) (int, error) {
	var arr [writeBatchPages]*Page
	pages := m.grabWholePages(first, arr[:len(data)/PageSize])
	if len(pages) == 0 {
		return 0, nil
	}
	done := 0
	var err error
	if bb, ok := m.ops.(BatchWriteBeginner); ok {
		done, err = bb.WriteBeginBatch(pages)
		done = min(max(done, 0), len(pages))
		if err == nil && done < len(pages) && wb == nil {
			done = len(pages)
		}
	}
	if err == nil && wb != nil {
		for _, p := range pages[done:] {
			if err = wb.WriteBegin(p, 0, PageSize); err != nil {
				break
			}
			done++
		}
	}
	for i, p := range pages[:done] {
		copy(p.Data, data[i*PageSize:(i+1)*PageSize])
		p.SetUptodate()
	}
	m.setDirtyPages(pages[:done])
	if done > 0 {
		m.extendSize((first + int64(done)) << PageShift)
	}
	for _, p := range pages[:done] {
		p.unlockQuiet()
	}
	if done < len(pages) {
		// The page whose WriteBegin failed stays, as the one-page path
		// leaves it (its WriteBegin may have dirtied blocks it allocated);
		// the pages after it were never used and go.
		pages[done].Unlock()
		for _, p := range pages[done+1:] {
			m.Remove(p)
			p.Unlock()
		}
	}
	m.cache.wake() // pages unlocked (unlockQuiet woke only their waiters)
	return done * PageSize, err
}

// grabWholePages makes new pages at first, first+1, ..., up to
// len(arr) of them, for a write that overwrites each whole, and returns
// them locked: the run of pages that are not cached, ending before the
// first cached one (so nil when the page at first is cached). Their frames
// are not zeroed: nobody sees a page before its bytes are in, or before
// it is unlocked not uptodate after a failure (grab_cache_page_write_begin
// for each, with the allocations batched).
//
// Only new pages are locked here, all in index order and none of them
// while waiting for another page's lock: a page someone else inserted in
// the run meanwhile ends the batch before it, and the pages made for the
// slots after it are dropped. So two writers racing over the same pages
// cannot each hold a page the other waits for.
//
// Preconditions: the caller holds no page lock, Mapping.mu or Cache.mu;
// first+len(arr)-1 <= MaxIndex.
func (m *Mapping) grabWholePages(first int64, arr []*Page) []*Page {
	n := 0
	m.mu.Lock()
	for n < len(arr) && m.tree.lookup(first+int64(n)) == nil {
		n++
	}
	m.mu.Unlock()
	if n == 0 {
		return nil
	}
	pages := arr[:n]
	for i := range pages {
		pages[i] = newPage(first + int64(i))
	}
	m.cache.chargePages(pages)
	m.cache.attachFrames(pages)
	for _, p := range pages {
		p.TryLock() // nobody else knows it yet
	}
	added := 0
	m.mu.Lock()
	for _, p := range pages {
		if !m.tree.insert(p.Index, p) {
			break
		}
		p.mapping.Store(m)
		p.set(Referenced) // one pass of grace on the LRU, as AddPage
		added++
	}
	m.cache.addLRUPages(pages[:added])
	m.mu.Unlock()
	for _, p := range pages[added:] {
		p.unlockQuiet()
		p.uncharge()
	}
	clear(pages[added:])
	return pages[:added]
}

// setDirtyPages marks pages of m dirty and tags them in one round of the
// mapping lock (set_page_dirty of each).
//
// Preconditions: the pages are locked.
func (m *Mapping) setDirtyPages(pages []*Page) {
	if len(pages) == 0 {
		return
	}
	m.mu.Lock()
	var n int64
	for _, p := range pages {
		if p.testAndSet(Dirty) || p.Mapping() != m {
			continue
		}
		m.tree.setTag(p.Index, TagDirty)
		n++
	}
	if n > 0 {
		m.accountDirtyLocked(n)
	}
	m.mu.Unlock()
}

// chargePages counts each of ps against the limit, evicting to make room
// and waiting for memory as charge does, with one round of Cache.mu for
// as many as fit.
//
// Preconditions: no Mapping.mu or Cache.mu held.
func (c *Cache) chargePages(ps []*Page) {
	for {
		c.mu.Lock()
		for len(ps) > 0 && c.nrPages < c.limitPages {
			c.chargeLocked(ps[0])
			ps = ps[1:]
		}
		c.mu.Unlock()
		if len(ps) == 0 {
			return
		}
		gen := c.prepareWait()
		if c.shrink(len(ps)) > 0 {
			c.finishWait()
			continue
		}
		c.allocWaits.Add(1)
		c.kickWriteback()
		c.sleep(gen)
	}
}

// addLRUPages puts pages at the young end of the LRU in one round.
func (c *Cache) addLRUPages(ps []*Page) {
	if len(ps) == 0 {
		return
	}
	c.mu.Lock()
	for _, p := range ps {
		c.addLRULocked(p)
	}
	c.mu.Unlock()
}

// attachFrames gives each of ps a frame, not zeroed, in one round of the
// arena's lock (attachFrame for each).
func (c *Cache) attachFrames(ps []*Page) {
	a := c.arena
	a.mu.Lock()
	i := 0
	for ; i < len(ps); i++ {
		frame, data, _, ok := a.allocLocked()
		if !ok {
			break
		}
		ps[i].Data, ps[i].frame, ps[i].arena = data, frame, a
	}
	a.mu.Unlock()
	for _, p := range ps[i:] {
		c.attachFrame(p, false)
	}
}
