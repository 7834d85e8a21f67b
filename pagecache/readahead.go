package pagecache

import (
	"math/bits"
	"sync"
)

// ReadaheadState is the readahead state of one open file (struct
// file_ra_state): the current window [Start, Start+Size), of which the
// last AsyncSize pages are the "async" part whose first page carries the
// Readahead marker, and the position after the last read. The zero value
// is ready to use with the cache's default window; its methods are safe
// for concurrent use.
type ReadaheadState struct {
	mu        sync.Mutex // guards the fields below
	start     int64
	size      int
	asyncSize int
	prevPos   int64 // byte position after the last read; -1 before any
	maxPages  int   // ra_pages: 0 for the cache default, < 0 for none
	init      bool  // prevPos is set
}

// NewReadaheadState makes a readahead state with a largest window of
// maxPages pages: 0 takes the cache's default, a negative value turns
// readahead off (file_ra_state_init).
func NewReadaheadState(maxPages int) *ReadaheadState {
	return &ReadaheadState{maxPages: maxPages, prevPos: -1, init: true}
}

// RAWindow is a snapshot of a ReadaheadState.
type RAWindow struct {
	Start     int64 // first page of the window
	Size      int   // pages in the window
	AsyncSize int   // pages of the window that are read ahead asynchronously
	PrevPos   int64 // byte position after the last read, -1 before any
}

// Window returns a snapshot of the state.
func (ra *ReadaheadState) Window() RAWindow {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	ra.initLocked()
	return RAWindow{Start: ra.start, Size: ra.size, AsyncSize: ra.asyncSize, PrevPos: ra.prevPos}
}

// SetMaxPages sets the largest window: 0 for the cache default, negative
// for no readahead (as posix_fadvise(POSIX_FADV_RANDOM) does).
func (ra *ReadaheadState) SetMaxPages(n int) {
	ra.mu.Lock()
	ra.maxPages = n
	ra.mu.Unlock()
}

// initLocked gives a zero-value state its starting prevPos.
//
// Preconditions: ra.mu is held.
func (ra *ReadaheadState) initLocked() {
	if !ra.init {
		ra.prevPos, ra.init = -1, true
	}
}

// setPrevPos records where the last read ended.
func (ra *ReadaheadState) setPrevPos(pos int64) {
	ra.mu.Lock()
	ra.init = true
	ra.prevPos = pos
	ra.mu.Unlock()
}

// maxPagesLocked is the window limit for m's cache.
//
// Preconditions: ra.mu is held.
func (ra *ReadaheadState) maxPagesLocked(m *Mapping) int {
	switch {
	case ra.maxPages < 0:
		return 0
	case ra.maxPages == 0:
		return m.cache.maxReadahead
	}
	return min(ra.maxPages, MaxReadaheadLimit, max(1, int(m.cache.limitPages/4)))
}

// initRASize mirrors mm/readahead.c:get_init_ra_size(): the first window
// for a request of size pages.
func initRASize(size, maxPages int) int {
	n := 1
	if size > 1 {
		n = 1 << bits.Len(uint(size-1)) // roundup_pow_of_two
	}
	switch {
	case n <= maxPages/32:
		return n * 4
	case n <= maxPages/4:
		return n * 2
	}
	return maxPages
}

// nextRASize mirrors get_next_ra_size(): ramp up quickly (x4) while the
// window is small, then x2, up to the limit.
func nextRASize(cur, maxPages int) int {
	switch {
	case cur < maxPages/16:
		return 4 * cur
	case cur <= maxPages/2:
		return 2 * cur
	}
	return maxPages
}

// PageCacheSyncReadahead is called when a read misses the page at index;
// reqCount is the number of pages the read still wants
// (page_cache_sync_readahead → ondemand_readahead). It reads the missing
// pages of the new window through ops.ReadPages and returns without
// waiting for them.
func (m *Mapping) PageCacheSyncReadahead(ra *ReadaheadState, index int64, reqCount int) {
	if ra == nil || index < 0 {
		return
	}
	ra.mu.Lock()
	start, nr, async, ok := m.ondemandLocked(ra, false, index, reqCount)
	ra.mu.Unlock()
	if ok {
		m.doReadahead(start, nr, async)
	}
}

// PageCacheAsyncReadahead is called when a read reaches page p at index
// carrying the Readahead marker: the stream is still sequential, so the
// next window is read before it is needed (page_cache_async_readahead).
func (m *Mapping) PageCacheAsyncReadahead(ra *ReadaheadState, p *Page, index int64, reqCount int) {
	if ra == nil || index < 0 {
		return
	}
	if p.Has(Writeback) {
		return
	}
	if !p.clear(Readahead) {
		return // another reader took the marker
	}
	ra.mu.Lock()
	start, nr, async, ok := m.ondemandLocked(ra, true, index, reqCount)
	ra.mu.Unlock()
	if ok {
		m.doReadahead(start, nr, async)
	}
}

// ondemandLocked mirrors mm/readahead.c:ondemand_readahead() and returns
// the pages to read, [start, start+nr), with the marker async pages from
// the end; ok is false when nothing should be read.
//
// Preconditions: ra.mu is held.
func (m *Mapping) ondemandLocked(ra *ReadaheadState, hitMarker bool, index int64, req int) (start int64, nr, async int, ok bool) {
	ra.initLocked()
	maxPages := ra.maxPagesLocked(m)
	if maxPages == 0 {
		return 0, 0, 0, false
	}
	req = max(req, 1)
	initial := false
	switch {
	case index == 0:
		// Start of file.
		initial = true
	case index == ra.start+int64(ra.size-ra.asyncSize) || index == ra.start+int64(ra.size):
		// The expected index: sequential. Ramp up and push the window
		// forward.
		ra.start += int64(ra.size)
		ra.size = nextRASize(ra.size, maxPages)
		ra.asyncSize = ra.size
	case hitMarker:
		// A marker without a matching state (interleaved reads): size
		// the window from the cached run after index.
		s := m.nextMiss(index+1, maxPages)
		if s-index > int64(maxPages) {
			return 0, 0, 0, false
		}
		ra.start = s
		ra.size = nextRASize(int(s-index)+req, maxPages)
		ra.asyncSize = ra.size
	case req > maxPages:
		// Oversize read.
		initial = true
	default:
		prevIndex := ra.prevPos >> PageShift
		if d := index - prevIndex; ra.prevPos >= 0 && (d == 0 || d == 1) {
			// Sequential cache miss (d == 1) or an unaligned read
			// continuing in the same page (d == 0).
			initial = true
		} else if !m.contextReadaheadLocked(ra, index, req, maxPages) {
			// A standalone, small random read: read just what was asked
			// and leave the state alone.
			return index, req, 0, true
		}
	}
	if initial {
		ra.start = index
		ra.size = initRASize(req, maxPages)
		ra.asyncSize = ra.size
		if ra.size > req {
			ra.asyncSize = ra.size - req
		}
	}
	// readit: will this read hit the marker the window sets? Then merge
	// the next window into this one now.
	if index == ra.start && ra.size == ra.asyncSize {
		add := nextRASize(ra.size, maxPages)
		if ra.size+add <= maxPages {
			ra.asyncSize = add
			ra.size += add
		} else {
			ra.size = maxPages
			ra.asyncSize = maxPages >> 1
		}
	}
	return ra.start, ra.size, ra.asyncSize, true
}

// contextReadaheadLocked mirrors try_context_readahead(): a miss that is
// not next to the previous read, but has a run of cached pages just before
// it, is an interleaved sequential stream; size its window from that
// history.
//
// Preconditions: ra.mu is held.
func (m *Mapping) contextReadaheadLocked(ra *ReadaheadState, index int64, req, maxPages int) bool {
	size := int64(m.historyPages(index, maxPages))
	if size <= int64(req) {
		return false
	}
	if size >= index {
		size *= 2 // the stream started at the beginning of the file
	}
	ra.start = index
	ra.size = int(min(size+int64(req), int64(maxPages)))
	ra.asyncSize = 1
	return true
}

// historyPages counts the cached pages just before index, up to maxScan
// (count_history_pages via page_cache_prev_miss).
func (m *Mapping) historyPages(index int64, maxScan int) int {
	n := 0
	for i := index - 1; i >= 0 && n < maxScan; i-- {
		if m.lookup(i) == nil {
			break
		}
		n++
	}
	return n
}

// nextMiss returns the first index at or after index with no cached page,
// looking at most maxScan pages (page_cache_next_miss).
func (m *Mapping) nextMiss(index int64, maxScan int) int64 {
	for i := 0; i < maxScan; i++ {
		if m.lookup(index+int64(i)) == nil {
			return index + int64(i)
		}
	}
	return index + int64(maxScan)
}

// doReadahead allocates the missing pages of [index, index+nr), up to end
// of file, marks the page lookahead pages from the end with Readahead, and
// hands each run of missing pages to ops.ReadPages in file order
// (do_page_cache_ra → page_cache_ra_unbounded → read_pages). Allocation
// does not wait: when the cache is full of pages it cannot evict, the
// window is cut short. It returns the number of pages submitted.
func (m *Mapping) doReadahead(index int64, nr, lookahead int) int {
	size := m.Size()
	if size <= 0 || nr <= 0 {
		return 0
	}
	end := (size - 1) >> PageShift
	if index > end {
		return 0
	}
	if int64(nr) > end-index+1 {
		nr = int(end - index + 1)
	}
	var batch []*Page
	submitted := 0
	for i := 0; i < nr; i++ {
		idx := index + int64(i)
		if m.lookup(idx) != nil {
			// Already cached: submit the run so far, keeping each
			// batch contiguous.
			m.readPages(batch)
			batch = nil
			continue
		}
		p := m.tryNewPage(idx)
		if p == nil {
			break
		}
		if i == nr-lookahead {
			p.set(Readahead)
		}
		batch = append(batch, p)
		submitted++
	}
	m.readPages(batch)
	return submitted
}

// readPages hands pages to ops.ReadPages and releases the charge of those
// it did not add (read_pages; the pages left over are put back). Errors
// are dropped as Linux drops them: the reader finds the page missing or
// not uptodate and reads it itself.
func (m *Mapping) readPages(pages []*Page) {
	if len(pages) == 0 {
		return
	}
	_ = m.ops.ReadPages(m, pages)
	for _, p := range pages {
		if p.Mapping() == nil {
			p.uncharge()
		}
	}
}
