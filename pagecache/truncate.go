package pagecache

// pagevecSize is how many pages truncation and invalidation look up at a
// time (PAGEVEC_SIZE).
const pagevecSize = 16

// Truncate sets the file size and drops the cached pages past it
// (truncate_setsize → truncate_pagecache). Setting the size first keeps
// readers and readahead from bringing pages past the new end back in.
func (m *Mapping) Truncate(size int64) {
	if size < 0 {
		size = 0
	}
	m.SetSize(size)
	m.TruncatePages(size)
}

// TruncatePages removes every cached page at or past byte offset from and
// zeroes the tail of the page that holds from
// (mm/truncate.c:truncate_inode_pages_range with lend = -1). Each page is
// locked and its writeback waited for; its dirty state is cancelled, its
// Private data handed to the invalidate hook, then it leaves the mapping
// (truncate_complete_page). Pages below from, and readers and writers
// working on them, are not disturbed. Like Linux it repeats its scan until
// a pass finds no page, so the caller must keep new pages from appearing
// past from (set the size first, as Truncate does, and hold off writers
// past it).
func (m *Mapping) TruncatePages(from int64) {
	if from < 0 {
		from = 0
	}
	start := (from + PageSize - 1) >> PageShift
	partial := int(from & (PageSize - 1))
	for {
		idx := start
		pages := m.LookupRange(&idx, MaxIndex, pagevecSize)
		if len(pages) == 0 {
			break
		}
		for _, p := range pages {
			p.Lock()
			if p.Mapping() == m {
				p.WaitWriteback()
				m.truncateCompletePage(p)
			}
			p.Unlock()
		}
	}
	if partial != 0 {
		m.truncatePartialPage(start-1, partial)
	}
}

// truncateCompletePage mirrors truncate_complete_page().
//
// Preconditions: p is locked, in m and not under writeback.
func (m *Mapping) truncateCompletePage(p *Page) {
	if p.Private != nil {
		if f := m.invalidate.Load(); f != nil {
			(*f)(p, 0)
		}
	}
	p.cancelDirty()
	p.ClearUptodate()
	p.ClearMappedToDisk()
	m.Remove(p)
}

// truncatePartialPage zeroes the page at index from byte partial on and
// tells the invalidate hook (truncate_partial_page).
func (m *Mapping) truncatePartialPage(index int64, partial int) {
	p := m.lookup(index)
	if p == nil {
		return
	}
	p.Lock()
	defer p.Unlock()
	if p.Mapping() != m {
		return
	}
	p.WaitWriteback()
	clear(p.Data[partial:])
	if p.Private != nil {
		if f := m.invalidate.Load(); f != nil {
			(*f)(p, partial)
		}
	}
}

// InvalidateClean drops the clean, unlocked pages of the mapping that are
// not under writeback, and returns how many went
// (invalidate_mapping_pages → invalidate_complete_page). Pages with Private
// go only if the cache's release hook frees it. Dirty, locked and
// writeback pages stay.
func (m *Mapping) InvalidateClean() int {
	n := 0
	idx := int64(0)
	rel := m.cache.release.Load()
	for {
		pages := m.LookupRange(&idx, MaxIndex, pagevecSize)
		if len(pages) == 0 {
			return n
		}
		for _, p := range pages {
			if !p.TryLock() {
				continue
			}
			ok := p.Mapping() == m && p.Flags()&(Dirty|Writeback) == 0
			if ok && p.Private != nil {
				ok = rel != nil && (*rel)(p) && p.Private == nil
			}
			if ok {
				m.mu.Lock()
				ok = p.Flags()&(Dirty|Writeback) == 0 && m.removeLocked(p)
				m.mu.Unlock()
			}
			if ok {
				p.uncharge() // under the page lock: see the arena's doc
				n++
			}
			p.Unlock()
		}
	}
}
