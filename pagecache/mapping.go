package pagecache

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Sentinel errors of the page cache.
var (
	// ErrExist is returned by AddPage when the index is already cached.
	ErrExist = errors.New("pagecache: page already cached")
	// ErrNoSpace is recorded by writeback that ran out of disk space
	// (AS_ENOSPC).
	ErrNoSpace = errors.New("pagecache: no space left on device")
	// ErrIO is a failed read or write of a page (EIO, AS_EIO).
	ErrIO = errors.New("pagecache: I/O error")
	// ErrInvalid is a bad argument: a negative offset, an index past
	// MaxIndex, a page that is already in a mapping (EINVAL).
	ErrInvalid = errors.New("pagecache: invalid argument")
	// ErrTooLarge is a write past the largest offset a mapping holds
	// (EFBIG).
	ErrTooLarge = errors.New("pagecache: file too large")
)

// PageError says which page of which operation failed; it wraps the cause
// (errors.Is(err, ErrIO) holds for a failed read).
type PageError struct {
	Op    string // "read" or "write"
	Index int64  // page index in the file
	Err   error
}

func (e *PageError) Error() string {
	return fmt.Sprintf("pagecache: %s of page %d: %v", e.Op, e.Index, e.Err)
}

// Unwrap returns the cause.
func (e *PageError) Unwrap() error { return e.Err }

// Tag selects the pages of a mapping with a given state, as the radix-tree
// tags of an address_space do.
type Tag uint8

// Tags.
const (
	TagDirty     Tag = iota // PAGECACHE_TAG_DIRTY
	TagWriteback            // PAGECACHE_TAG_WRITEBACK
	TagToWrite              // PAGECACHE_TAG_TOWRITE: dirty when an integrity sync began
	numTags
)

// Operations are the filesystem's address_space_operations for a mapping.
type Operations interface {
	// ReadPage reads one locked page that is not uptodate and unlocks it
	// when the read is over, which may be after ReadPage returns. As
	// Linux's readpage, it unlocks the page even when it fails (leaving it
	// not uptodate, maybe with PG_error).
	ReadPage(p *Page) error
	// ReadPages reads pages that are not yet in the cache, in file order;
	// it adds those it can to m (AddPage, which locks them) and unlocks
	// each when its read is over. Pages it does not add are dropped: the
	// caller releases their memory charge after ReadPages returns. The
	// pages' Data is not zeroed (a reused frame holds some other page's
	// old bytes): a page is made uptodate only once every byte is read or
	// zeroed, as mpage does (I/O for mapped blocks, zeroes for holes and
	// past the end of the file).
	//
	// ReadPage too must fill every byte it makes uptodate: a page that
	// readahead made and whose read failed comes back to it unzeroed.
	ReadPages(m *Mapping, pages []*Page) error
	// WritePage writes one locked page whose dirty bit was cleared for
	// I/O; it sets writeback and unlocks the page.
	WritePage(p *Page, wbc *WritebackControl) error
	// WritePages writes the dirty pages of m under wbc.
	WritePages(m *Mapping, wbc *WritebackControl) error
}

// WriteBeginner is an optional ability of Operations: Mapping.Write calls
// WriteBegin with the page locked and uptodate (or zeroed past end of
// file) before it copies bytes [from, to) of the page in and dirties it
// (address_space_operations.write_begin / prepare_write), so that the
// filesystem can allocate or reserve the blocks under it. An error (such as
// one wrapping ErrNoSpace) stops the write before this page.
type WriteBeginner interface {
	WriteBegin(p *Page, from, to int) error
}

// BackingDev is what a mapping knows of the device under it
// (backing_dev_info): whether writers should back off.
type BackingDev interface {
	WriteCongested() bool
}

// Mapping is the page index of one file (struct address_space).
type Mapping struct {
	cache     *Cache     // never changes
	ops       Operations // never changes
	blockBits uint       // i_blkbits; never changes

	size       atomic.Int64 // i_size
	backing    atomic.Value // *BackingDev
	invalidate atomic.Pointer[func(p *Page, offset int)]

	mu             sync.Mutex // guards the fields below and the Dirty/Writeback flags of its pages
	tree           radixTree  // the pages by index, with their tags
	nrDirty        int64      // pages with Dirty set
	nrWriteback    int64      // pages with Writeback set
	writebackIndex int64
	flagEIO        bool // AS_EIO
	flagENOSPC     bool // AS_ENOSPC

	errs errseq
}

// NewMapping makes an empty mapping for a file with 1<<blockBits byte
// blocks whose data moves through ops.
func (c *Cache) NewMapping(ops Operations, blockBits uint) *Mapping {
	return &Mapping{cache: c, ops: ops, blockBits: blockBits}
}

// Cache is the cache the mapping's pages are accounted to.
func (m *Mapping) Cache() *Cache { return m.cache }

// Ops are the mapping's operations.
func (m *Mapping) Ops() Operations { return m.ops }

// BlockBits is log2 of the file's block size (i_blkbits).
func (m *Mapping) BlockBits() uint { return m.blockBits }

// BlockSize is the file's block size in bytes.
func (m *Mapping) BlockSize() int { return 1 << m.blockBits }

// Size is the file size in bytes (i_size_read).
func (m *Mapping) Size() int64 { return m.size.Load() }

// SetSize sets the file size (i_size_write).
func (m *Mapping) SetSize(n int64) { m.size.Store(n) }

// extendSize raises the size to n if it is smaller.
func (m *Mapping) extendSize(n int64) {
	for {
		old := m.size.Load()
		if n <= old || m.size.CompareAndSwap(old, n) {
			return
		}
	}
}

// SetBacking sets the device the mapping writes to.
func (m *Mapping) SetBacking(b BackingDev) { m.backing.Store(&b) }

// WriteCongested reports whether the mapping's device is congested for
// writes (bdi_write_congested).
func (m *Mapping) WriteCongested() bool {
	if b, ok := m.backing.Load().(*BackingDev); ok && *b != nil {
		return (*b).WriteCongested()
	}
	return false
}

// SetInvalidatePage registers the hook that truncation calls for a page
// with Private data (address_space_operations.invalidatepage, which
// buffer-backed filesystems set to block_invalidatepage). offset is where
// the truncation starts in the page: 0 when the whole page goes.
func (m *Mapping) SetInvalidatePage(f func(p *Page, offset int)) {
	if f == nil {
		m.invalidate.Store(nil)
		return
	}
	m.invalidate.Store(&f)
}

// WritebackIndex is where the next cyclic writeback starts
// (mapping->writeback_index).
func (m *Mapping) WritebackIndex() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.writebackIndex
}

// SetWritebackIndex records where the next cyclic writeback starts.
func (m *Mapping) SetWritebackIndex(i int64) {
	m.mu.Lock()
	m.writebackIndex = i
	m.mu.Unlock()
}

// NewPage allocates a page for index, accounted to the mapping's cache
// (page_cache_alloc). Its Data is a zeroed frame of the cache's memory.
// When the cache is at its limit it evicts clean pages and, if none can
// go, kicks writeback and waits for memory; see Cache.allocWait. The page
// is not yet in the mapping; AddPage puts it there, and Page.Release gives
// back the charge and the memory of one never added.
//
// Preconditions: the caller holds no Mapping.mu or Cache.mu (page locks
// are fine).
func (m *Mapping) NewPage(index int64) *Page {
	return m.newPage(index, true)
}

// newPage is NewPage that leaves a reused frame's old bytes in place
// unless zero is set: for a caller that overwrites the whole page before
// anyone can see it.
func (m *Mapping) newPage(index int64, zero bool) *Page {
	p := newPage(index)
	m.cache.charge(p, true)
	m.cache.attachFrame(p, zero)
	return p
}

// tryNewPage is NewPage that does not wait: it evicts what it can and
// returns nil when the cache is still full (readahead's
// __GFP_NORETRY allocation). A reused frame is not zeroed: the page goes
// to ReadPages, which fills every byte of a page it makes uptodate (see
// Operations), as Linux's readahead pages come unzeroed from the page
// allocator. Zeroing them was about 4% of a cold sequential read's CPU.
func (m *Mapping) tryNewPage(index int64) *Page {
	p := newPage(index)
	if !m.cache.charge(p, false) {
		return nil
	}
	m.cache.attachFrame(p, false)
	return p
}

// Lookup returns the cached page at index, or nil (find_get_page), and
// marks it referenced (mark_page_accessed).
func (m *Mapping) Lookup(index int64) *Page {
	p := m.lookup(index)
	if p != nil {
		p.set(Referenced)
	}
	return p
}

// lookup is Lookup without marking the page referenced.
func (m *Mapping) lookup(index int64) *Page {
	m.mu.Lock()
	p := m.tree.lookup(index)
	m.mu.Unlock()
	return p
}

// AddPage inserts p at p.Index and returns with p locked
// (add_to_page_cache_lru). As in Linux 2.6.12 add_to_page_cache, AddPage
// itself locks the page; a page the caller already locked (as later
// Linux's callers do) is accepted and stays locked. On ErrExist the page is
// not added, is unlocked if AddPage locked it, and its memory charge is
// given back: the caller drops it. A page made by the package-level
// NewPage is charged here, evicting if it can but without waiting (so it
// may overshoot the limit by the pages added that way).
func (m *Mapping) AddPage(p *Page) error {
	if p.Index < 0 || p.Index > MaxIndex {
		return fmt.Errorf("%w: page index %d", ErrInvalid, p.Index)
	}
	if p.Mapping() != nil {
		return fmt.Errorf("%w: page %d is already in a mapping", ErrInvalid, p.Index)
	}
	locked := p.TryLock()
	if p.chargedTo.Load() == nil && !m.cache.charge(p, false) {
		m.cache.chargeForce(p)
	}
	if p.Data == nil {
		// A page of ours that was removed or released: its frame went
		// back with its charge.
		m.cache.attachFrame(p, true)
	}
	m.mu.Lock()
	if !m.tree.insert(p.Index, p) {
		m.mu.Unlock()
		if locked {
			p.Unlock()
		}
		p.uncharge()
		return ErrExist
	}
	p.mapping.Store(m)
	if p.Has(Dirty) {
		m.tree.setTag(p.Index, TagDirty)
		m.accountDirtyLocked(1)
	}
	if p.Has(Writeback) {
		m.tree.setTag(p.Index, TagWriteback)
		m.accountWritebackLocked(1)
	}
	// A new page gets one pass of grace on the LRU; see Cache.shrink.
	p.set(Referenced)
	m.cache.addLRU(p)
	m.mu.Unlock()
	return nil
}

// FindOrCreate returns the page at index, locked, creating and adding an
// empty one when none is cached (find_or_create_page). It returns nil only
// for an index outside [0, MaxIndex].
func (m *Mapping) FindOrCreate(index int64) *Page {
	return m.findOrCreate(index, true)
}

// findOrCreate is FindOrCreate; a page it creates is zeroed only if zero
// is set (see newPage).
func (m *Mapping) findOrCreate(index int64, zero bool) *Page {
	if index < 0 || index > MaxIndex {
		return nil
	}
	for {
		if p := m.Lookup(index); p != nil {
			p.Lock()
			if p.Mapping() == m {
				return p
			}
			p.Unlock() // truncated or evicted meanwhile
			continue
		}
		p := m.newPage(index, zero)
		err := m.AddPage(p)
		if err == nil {
			return p
		}
		if !errors.Is(err, ErrExist) {
			p.Release()
			return nil
		}
	}
}

// LookupTag returns up to max pages at or after *index and at or before
// end that carry tag, in index order, and advances *index past the last
// one returned (pagevec_lookup_tag / find_get_pages_tag). It costs
// O(log n + k) for k pages returned.
func (m *Mapping) LookupTag(index *int64, end int64, tag Tag, max int) []*Page {
	if tag >= numTags {
		return nil
	}
	return m.gang(index, end, tag, max)
}

// LookupRange returns up to max cached pages with index in [*index, end],
// in index order, and advances *index past the last one returned
// (find_get_pages_range).
func (m *Mapping) LookupRange(index *int64, end int64, max int) []*Page {
	return m.gang(index, end, numTags, max)
}

func (m *Mapping) gang(index *int64, end int64, tag Tag, max int) []*Page {
	if max <= 0 || *index > end {
		return nil
	}
	// One allocation for the usual small batch (a pagevec), rather than
	// one per doubling.
	out := make([]*Page, 0, min(max, 64))
	m.mu.Lock()
	m.tree.gather(*index, end, tag, max, &out)
	m.mu.Unlock()
	if len(out) == 0 {
		return nil
	}
	*index = out[len(out)-1].Index + 1
	return out
}

// TagToWrite tags TagToWrite every page in [start, end] that is tagged
// dirty now, and returns how many (tag_pages_for_writeback). An integrity
// sync then writes the TagToWrite pages only, so pages dirtied while it
// runs cannot keep it going forever. The mapping lock is dropped between
// batches, as Linux does, to let other users in.
func (m *Mapping) TagToWrite(start, end int64) int {
	const batch = 1024
	n := 0
	var pages []*Page
	for start <= end {
		pages = pages[:0]
		m.mu.Lock()
		m.tree.gather(start, end, TagDirty, batch, &pages)
		for _, p := range pages {
			m.tree.setTag(p.Index, TagToWrite)
		}
		m.mu.Unlock()
		n += len(pages)
		if len(pages) < batch {
			break
		}
		start = pages[len(pages)-1].Index + 1
	}
	return n
}

// Tagged reports whether any page carries tag (mapping_tagged).
func (m *Mapping) Tagged(tag Tag) bool {
	if tag >= numTags {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tree.tagged(tag)
}

// HasTag reports whether the page at index carries tag
// (radix_tree_tag_get).
func (m *Mapping) HasTag(index int64, tag Tag) bool {
	if tag >= numTags {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tree.getTag(index, tag)
}

// NrPages is the number of cached pages (mapping->nrpages).
func (m *Mapping) NrPages() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tree.count
}

// accountDirtyLocked adds d to the dirty counts of the mapping and cache.
//
// Preconditions: m.mu is held.
func (m *Mapping) accountDirtyLocked(d int64) {
	was := m.nrDirty
	m.nrDirty += d
	m.cache.nrDirty.Add(d)
	switch {
	case was == 0 && m.nrDirty > 0:
		m.cache.setMappingDirty(m, true)
	case was > 0 && m.nrDirty == 0:
		m.cache.setMappingDirty(m, false)
	}
	if d < 0 {
		m.cache.wake()
		m.cache.wakeDirty()
	}
}

// accountWritebackLocked adds d to the writeback counts.
//
// Preconditions: m.mu is held.
func (m *Mapping) accountWritebackLocked(d int64) {
	m.nrWriteback += d
	m.cache.nrWriteback.Add(d)
	if d < 0 {
		m.cache.wake()
		m.cache.wakeDirty()
	}
}

// SetDirty marks the page dirty and tags it (set_page_dirty /
// __set_page_dirty_nobuffers). It reports whether the page was clean. The
// flag, the tag and the dirty counts change together under the mapping
// lock.
func (p *Page) SetDirty() bool {
	if p.Has(Dirty) {
		return false
	}
	m := p.Mapping()
	if m == nil {
		return !p.testAndSet(Dirty)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if p.testAndSet(Dirty) {
		return false
	}
	if p.Mapping() == m {
		m.tree.setTag(p.Index, TagDirty)
		m.accountDirtyLocked(1)
	}
	return true
}

// ClearDirtyForIO clears the dirty bit of a locked page before it is
// written (clear_page_dirty_for_io) and reports whether it was dirty. It
// clears the dirty and towrite tags with the bit (Linux leaves that to
// set_page_writeback; the result for writepages is the same).
func (p *Page) ClearDirtyForIO() bool {
	m := p.Mapping()
	if m == nil {
		return p.clear(Dirty)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !p.clear(Dirty) {
		return false
	}
	if p.Mapping() == m {
		m.tree.clearTag(p.Index, TagDirty)
		m.tree.clearTag(p.Index, TagToWrite)
		m.accountDirtyLocked(-1)
	}
	return true
}

// cancelDirty drops the dirty state of a page whose data will not be
// written, as truncation does (cancel_dirty_page).
func (p *Page) cancelDirty() { p.ClearDirtyForIO() }

// SetWriteback marks a locked page as under writeback (set_page_writeback).
// Setting it on a page already under writeback does nothing.
func (p *Page) SetWriteback() {
	m := p.Mapping()
	if m == nil {
		p.set(Writeback)
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if p.testAndSet(Writeback) {
		return
	}
	if p.Mapping() == m {
		m.tree.setTag(p.Index, TagWriteback)
		m.accountWritebackLocked(1)
	}
}

// EndWriteback ends writeback of the page and wakes waiters
// (end_page_writeback): those in WaitWriteback, and allocations and dirty
// throttling waiting for pages to come clean. A page that was removed from
// its mapping while under writeback gives its memory back now.
func (p *Page) EndWriteback() {
	m := p.Mapping()
	if m == nil {
		p.clear(Writeback)
		if p.Has(freePending) && p.clear(freePending) {
			p.freeFrame()
		}
	} else {
		m.mu.Lock()
		if p.clear(Writeback) && p.Mapping() == m {
			m.tree.clearTag(p.Index, TagWriteback)
			m.accountWritebackLocked(-1)
		}
		m.mu.Unlock()
	}
	p.wakeWaiters()
	if m != nil {
		m.cache.wake()
	}
}

// Remove takes a page out of the mapping (remove_from_page_cache) and
// gives back its memory charge and its memory: its Data is nil afterwards.
// The page should be locked, clean and not under writeback; if it is not,
// its dirty and writeback counts are dropped with it (and the memory of a
// page under writeback goes back when the writeback ends).
func (m *Mapping) Remove(p *Page) {
	m.mu.Lock()
	ok := m.removeLocked(p)
	m.mu.Unlock()
	if ok {
		p.uncharge()
	}
}

// removeLocked takes p out of the index and the LRU and reports whether it
// was there. The caller uncharges it after dropping the lock.
//
// Preconditions: m.mu is held.
func (m *Mapping) removeLocked(p *Page) bool {
	if m.tree.lookup(p.Index) != p {
		return false
	}
	m.tree.delete(p.Index)
	if p.Has(Dirty) {
		m.accountDirtyLocked(-1)
	}
	if p.Has(Writeback) {
		m.accountWritebackLocked(-1)
	}
	// The mapping pointer goes before the LRU entry: a concurrent putback
	// in Cache.shrink checks it under Cache.mu.
	p.mapping.Store(nil)
	m.cache.removeLRU(p)
	return true
}
