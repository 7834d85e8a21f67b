package pagecache

import (
	"math/bits"
	"sync"

	"github.com/mpagefs/mpage/internal/scratch"
)

// ReadaheadState is the readahead state of one open file (struct
// file_ra_state): the current window [Start, Start+Size), of which the
// last AsyncSize pages are the "async" part whose first page carries the
// Readahead marker, and the position after the last read. In a pipelined
// stream AsyncSize exceeds Size: the marker is on the first page of the
// window before (see ondemandLocked). The zero value
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
	// hi is the page after the last one read ahead; thrashCap, when not
	// 0, caps the window because pages read ahead were evicted before
	// the reader got to them (see ondemandLocked).
	hi        int64
	thrashCap int
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
	plan := m.ondemandLocked(ra, false, index, reqCount)
	ra.mu.Unlock()
	m.doPlan(plan)
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
	plan := m.ondemandLocked(ra, true, index, reqCount)
	ra.mu.Unlock()
	m.doPlan(plan)
}

// raChunk is a run of pages to read ahead, [start, start+nr), and the page
// to put the Readahead marker on (noMark for none). The marker may lie
// before start, on a page an earlier window read: see ondemandLocked.
type raChunk struct {
	start int64
	nr    int
	mark  int64
}

// noMark is the mark of a raChunk that sets no marker.
const noMark = -1

// raPlan is what ondemandLocked decided: up to two windows to read, in
// file order (two when a stream becomes pipelined).
type raPlan struct {
	chunks [2]raChunk
	n      int
}

func (pl *raPlan) add(start int64, nr int, mark int64) {
	pl.chunks[pl.n] = raChunk{start, nr, mark}
	pl.n++
}

// doPlan reads the windows of pl in order.
func (m *Mapping) doPlan(pl raPlan) {
	for _, c := range pl.chunks[:pl.n] {
		m.doReadahead(c.start, c.nr, c.mark)
	}
}

// ondemandLocked mirrors mm/readahead.c:ondemand_readahead() and returns
// the windows to read; an empty plan when nothing should be read.
//
// Pipelining, where we deviate from Linux: in Linux the marker of a full
// window sits on its first page (async_size == size), so the next window
// is only asked for when the reader enters the current one. Linux gets
// away with that because building a window is cheap next to the device's
// time and the bios of consecutive windows queue up deep in the block
// layer. Here building a 1024-page window (page allocation, get_block for
// every block, bios, and for ext2 a synchronous indirect-block read) takes
// the reader about as long as the device takes to read the window, and a
// window's device calls start only as it is built. So once a stream runs
// at the full window (an async hit on a full window), the state moves one
// window further: that hit reads two windows, the first one ending at the
// next multiple of maxPages in file offset, and from then on each window's
// marker is on the first page of the window before it (asyncSize = size +
// the previous window's size, the marker at start+size-asyncSize): a
// reader entering a window asks for the one after the next, so two windows
// are in flight or ready beyond the one being read. The alignment is the
// filesystem's business only in that metadata spans tend to be aligned
// too: ext2's indirect block for file blocks 12+1024k.. (4 KiB blocks) is
// then read 12 pages into a window, its bio merged into a 48 KiB request
// rather than into the window's first 2 MiB, which the build waited for.
// Pipelining needs the three windows it keeps ahead of the reader to fit
// in half the cache, as Linux's two fit with a window of a quarter of it;
// otherwise the stream runs as in Linux.
//
// Preconditions: ra.mu is held.
func (m *Mapping) ondemandLocked(ra *ReadaheadState, hitMarker bool, index int64, req int) (plan raPlan) {
	ra.initLocked()
	maxPages := ra.maxPagesLocked(m)
	if maxPages == 0 {
		return plan
	}
	maxPages = ra.thrashLocked(hitMarker, index, maxPages)
	maxPages = min(maxPages, m.cache.ra.share(ra, m.cache.limitPages))
	defer func() {
		if plan.n > 0 && plan.chunks[0].mark != noMark {
			last := plan.chunks[plan.n-1]
			ra.hi = last.start + int64(last.nr)
		}
		if plan.n > 0 {
			end := (m.Size() + PageSize - 1) >> PageShift // pages in the file
			n := int64(0)
			for _, c := range plan.chunks[:plan.n] {
				n += max(0, min(c.start+int64(c.nr), end)-c.start)
			}
			m.cache.ra.planned(ra, int(n), m.cache.limitPages)
		}
	}()
	req = max(req, 1)
	initial := false
	switch {
	case index == 0:
		// Start of file.
		initial = true
	case index == ra.start+int64(ra.size-ra.asyncSize) || index == ra.start+int64(ra.size):
		// The expected index: sequential. Ramp up and push the window
		// forward.
		full := ra.size == maxPages
		pipelined := ra.asyncSize > ra.size
		ra.start += int64(ra.size)
		ra.size = nextRASize(ra.size, maxPages)
		ra.asyncSize = ra.size
		if !hitMarker || !full || ra.thrashCap > 0 || !m.canPipeline(maxPages) {
			break
		}
		prev := ra.size
		if !pipelined {
			// The stream is established: read up to the next multiple
			// of maxPages with the marker on the first page, and the
			// window after that too.
			prev = maxPages - int(ra.start%int64(maxPages))
			plan.add(ra.start, prev, ra.start)
			ra.start += int64(prev)
		}
		// The marker of this window is the first page of the one before.
		ra.asyncSize = ra.size + prev
		plan.add(ra.start, ra.size, ra.start-int64(prev))
		return plan
	case hitMarker:
		// A marker without a matching state (interleaved reads): size
		// the window from the cached run after index.
		s := m.nextMiss(index+1, maxPages)
		if s-index > int64(maxPages) {
			return plan
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
			plan.add(index, req, noMark)
			return plan
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
	plan.add(ra.start, ra.size, ra.start+int64(ra.size-ra.asyncSize))
	return plan
}

// minThrashWindow is the smallest window a thrashing stream is cut to:
// when readers' requests alone fill the cache, anything read ahead is
// lost, so the floor is small.
const minThrashWindow = 4

// thrashLocked detects readahead thrashing and returns the window limit
// for this call. A read that misses a page the stream read ahead, past the
// reader's last position and before the end of what was read ahead, found
// it evicted before use: the readers sharing the cache are reading ahead
// more than it holds, and every page evicted that way is read twice. Linux
// 2.6.12 shrank the window on such misses (handle_ra_miss, RA_FLAG_MISS);
// later Linux restarts the window small at the miss, which here, with
// windows that ramp back up in a few reads, thrashed again at once. So a
// thrashing stream's window is halved, down to minThrashWindow pages, and
// grows back by a sixteenth at each marker it reaches in time (slow
// increase, fast decrease, as a congestion window), until the cap reaches
// the normal limit and is dropped. A capped stream is not pipelined.
// raStreams keeps most streams from thrashing in the first place; this is
// for what it cannot foresee (readers' requests that fill the cache, other
// users of it).
//
// Preconditions: ra.mu is held.
func (ra *ReadaheadState) thrashLocked(hitMarker bool, index int64, maxPages int) int {
	switch {
	case hitMarker && ra.thrashCap > 0:
		ra.thrashCap += max(1, ra.thrashCap/16)
		if ra.thrashCap >= maxPages {
			ra.thrashCap = 0
		}
	case !hitMarker && ra.prevPos >= 0 && index >= ra.prevPos>>PageShift && index < ra.hi:
		c := ra.thrashCap
		if c == 0 {
			c = maxPages
		}
		ra.thrashCap = max(min(minThrashWindow, maxPages), c/2)
	}
	if ra.thrashCap > 0 {
		return min(maxPages, ra.thrashCap)
	}
	return maxPages
}

// raStreams tracks the readahead streams of a cache that are active, so
// that their windows together fit in it. Linux sizes each stream's window
// alone (a quarter of our cache is the largest, as a quarter of memory
// would be there), which is safe when windows are small next to memory;
// with a cache of a few MiB and several sequential readers the windows
// alone overfill the cache, and pages read ahead are evicted by the other
// readers' windows before their own reader gets to them, to be read
// again: nine readers of a 16 MiB cache read their files 3.3 times over.
// A stream counts as active while fewer than a cache's worth of pages
// have been planned for readahead since one of its own plans of at least
// raShareMin pages (its pages may still be cached; small files, whose
// windows end at their end, do not count); the window of each stream is
// then at most a quarter of the cache divided among the active streams.
type raStreams struct {
	mu     sync.Mutex // guards the fields below; a leaf lock
	tick   int64      // pages planned for readahead by all streams so far
	recent []raPlanned
	count  map[*ReadaheadState]int // entries of each stream in recent
}

// raPlanned is a large plan of a stream, in tick order.
type raPlanned struct {
	ra   *ReadaheadState
	tick int64
}

// raShareMin is the smallest plan, in pages, that makes a stream active.
const raShareMin = 32

// share returns the largest window stream ra may have now, given the
// other active streams.
func (s *raStreams) share(ra *ReadaheadState, limitPages int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(limitPages)
	n := int64(len(s.count))
	if s.count[ra] == 0 {
		n++
	}
	return int(max(1, limitPages/(4*n)))
}

// planned counts a plan of n pages (within end of file) of stream ra.
func (s *raStreams) planned(ra *ReadaheadState, n int, limitPages int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tick += int64(n)
	if n >= raShareMin {
		if s.count == nil {
			s.count = map[*ReadaheadState]int{}
		}
		s.recent = append(s.recent, raPlanned{ra, s.tick})
		s.count[ra]++
	}
	s.expireLocked(limitPages)
}

// expireLocked forgets plans older than a cache's worth of pages.
//
// Preconditions: s.mu is held.
func (s *raStreams) expireLocked(limitPages int64) {
	for len(s.recent) > 0 && s.tick-s.recent[0].tick > limitPages {
		r := s.recent[0].ra
		s.recent[0] = raPlanned{}
		s.recent = s.recent[1:]
		if s.count[r]--; s.count[r] == 0 {
			delete(s.count, r)
		}
	}
}

// canPipeline reports whether a stream with windows of maxPages may keep
// three windows ahead of its reader: at most half the cache.
func (m *Mapping) canPipeline(maxPages int) bool {
	return 3*int64(maxPages) <= m.cache.limitPages/2
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
// of file, marks the page at mark with Readahead, and hands each run of
// missing pages to ops.ReadPages in file order (do_page_cache_ra →
// page_cache_ra_unbounded → read_pages). A mark before index is put on the
// page already cached there, if any (a pipelined stream's marker).
// Allocation does not wait: when the cache is full of pages it cannot
// evict, the window is cut short. It returns the number of pages
// submitted.
func (m *Mapping) doReadahead(index int64, nr int, mark int64) int {
	size := m.Size()
	if size <= 0 || nr <= 0 {
		return 0
	}
	end := (size - 1) >> PageShift
	if index > end {
		return 0
	}
	if mark >= 0 && mark < index {
		if p := m.lookup(mark); p != nil {
			p.set(Readahead)
		}
	}
	if int64(nr) > end-index+1 {
		nr = int(end - index + 1)
	}
	box := pageBatches.Get(nr)
	batch := *box
	defer func() { pageBatches.Put(box, batch) }()
	submitted := 0
	for i := 0; i < nr; i++ {
		idx := index + int64(i)
		if m.lookup(idx) != nil {
			// Already cached: submit the run so far, keeping each
			// batch contiguous.
			m.readPages(batch)
			clear(batch)
			batch = batch[:0]
			continue
		}
		p := m.tryNewPage(idx)
		if p == nil {
			break
		}
		if idx == mark {
			p.set(Readahead)
		}
		batch = append(batch, p)
		submitted++
	}
	m.readPages(batch)
	return submitted
}

// pageBatches recycles doReadahead's page lists: a window of 1024 pages
// used to allocate 16 KiB of them as it grew.
var pageBatches scratch.Pool[*Page]

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
