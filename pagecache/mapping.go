package pagecache

import (
	"errors"
	"sort"
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
)

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
	// when the read is over, which may be after ReadPage returns.
	ReadPage(p *Page) error
	// ReadPages reads pages that are not yet in the cache, in file order;
	// it adds those it can to m and unlocks each when its read is over.
	ReadPages(m *Mapping, pages []*Page) error
	// WritePage writes one locked page whose dirty bit was cleared for
	// I/O; it sets writeback and unlocks the page.
	WritePage(p *Page, wbc *WritebackControl) error
	// WritePages writes the dirty pages of m under wbc.
	WritePages(m *Mapping, wbc *WritebackControl) error
}

// BackingDev is what a mapping knows of the device under it
// (backing_dev_info): whether writers should back off.
type BackingDev interface {
	WriteCongested() bool
}

// Mapping is the page index of one file (struct address_space).
type Mapping struct {
	cache     *Cache
	ops       Operations
	blockBits uint // i_blkbits; never changes

	size    atomic.Int64 // i_size
	backing atomic.Value // BackingDev

	mu             sync.Mutex // guards pages, tags, writebackIndex
	pages          map[int64]*Page
	tags           [numTags]map[int64]struct{}
	writebackIndex int64

	errs errseq
}

// NewMapping makes an empty mapping for a file with 1<<blockBits byte
// blocks whose data moves through ops.
func (c *Cache) NewMapping(ops Operations, blockBits uint) *Mapping {
	m := &Mapping{cache: c, ops: ops, blockBits: blockBits, pages: make(map[int64]*Page)}
	for i := range m.tags {
		m.tags[i] = make(map[int64]struct{})
	}
	return m
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

// NewPage allocates a page for index, accounted to the mapping's cache. It
// may evict clean pages to stay within the cache's limit. The page is not
// yet in the mapping; AddPage puts it there.
func (m *Mapping) NewPage(index int64) *Page {
	m.cache.reserve()
	return NewPage(index)
}

// Lookup returns the cached page at index, or nil (find_get_page).
func (m *Mapping) Lookup(index int64) *Page {
	m.mu.Lock()
	p := m.pages[index]
	m.mu.Unlock()
	if p != nil {
		m.cache.touch(p)
	}
	return p
}

// AddPage locks p and inserts it at p.Index (add_to_page_cache). It
// returns ErrExist, leaving p unlocked and out of the mapping, when the
// index is taken.
func (m *Mapping) AddPage(p *Page) error {
	if !p.TryLock() {
		panic("pagecache: AddPage of a locked page")
	}
	m.mu.Lock()
	if _, ok := m.pages[p.Index]; ok {
		m.mu.Unlock()
		p.Unlock()
		m.cache.unreserve()
		return ErrExist
	}
	m.pages[p.Index] = p
	p.mapping.Store(m)
	m.mu.Unlock()
	m.cache.addLRU(p)
	return nil
}

// FindOrCreate returns the page at index, locked, creating and adding an
// empty one when none is cached (find_or_create_page).
func (m *Mapping) FindOrCreate(index int64) *Page {
	for {
		if p := m.Lookup(index); p != nil {
			p.Lock()
			if p.Mapping() == m {
				return p
			}
			p.Unlock()
			continue
		}
		p := m.NewPage(index)
		if err := m.AddPage(p); err == nil {
			return p
		}
	}
}

// LookupTag returns up to max pages at or after *index that carry tag, in
// index order, and advances *index past the last one returned
// (pagevec_lookup_tag / find_get_pages_tag).
func (m *Mapping) LookupTag(index *int64, end int64, tag Tag, max int) []*Page {
	m.mu.Lock()
	defer m.mu.Unlock()
	var idx []int64
	for i := range m.tags[tag] {
		if i >= *index && i <= end {
			idx = append(idx, i)
		}
	}
	sort.Slice(idx, func(a, b int) bool { return idx[a] < idx[b] })
	if len(idx) > max {
		idx = idx[:max]
	}
	out := make([]*Page, 0, len(idx))
	for _, i := range idx {
		out = append(out, m.pages[i])
	}
	if len(idx) > 0 {
		*index = idx[len(idx)-1] + 1
	}
	return out
}

// Tagged reports whether any page carries tag.
func (m *Mapping) Tagged(tag Tag) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.tags[tag]) > 0
}

// NrPages is the number of cached pages.
func (m *Mapping) NrPages() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.pages)
}

func (m *Mapping) tag(p *Page, t Tag, on bool) {
	m.mu.Lock()
	if m.pages[p.Index] == p {
		if on {
			m.tags[t][p.Index] = struct{}{}
		} else {
			delete(m.tags[t], p.Index)
		}
	}
	m.mu.Unlock()
}

// SetDirty marks the page dirty and tags it (set_page_dirty /
// __set_page_dirty_nobuffers). It reports whether the page was clean.
func (p *Page) SetDirty() bool {
	if p.testAndSet(Dirty) {
		return false
	}
	if m := p.Mapping(); m != nil {
		m.tag(p, TagDirty, true)
		m.cache.accountDirty(1)
	}
	return true
}

// ClearDirtyForIO clears the dirty bit of a locked page before it is
// written (clear_page_dirty_for_io) and reports whether it was dirty.
func (p *Page) ClearDirtyForIO() bool {
	if !p.clear(Dirty) {
		return false
	}
	if m := p.Mapping(); m != nil {
		m.tag(p, TagDirty, false)
		m.tag(p, TagToWrite, false)
		m.cache.accountDirty(-1)
	}
	return true
}

// SetWriteback marks a locked page as under writeback (set_page_writeback).
func (p *Page) SetWriteback() {
	if p.testAndSet(Writeback) {
		panic("pagecache: SetWriteback of a page already under writeback")
	}
	if m := p.Mapping(); m != nil {
		m.tag(p, TagWriteback, true)
	}
}

// EndWriteback ends writeback of the page and wakes waiters
// (end_page_writeback).
func (p *Page) EndWriteback() {
	if m := p.Mapping(); m != nil {
		m.tag(p, TagWriteback, false)
	}
	p.mu.Lock()
	p.clear(Writeback)
	p.cond.Broadcast()
	p.mu.Unlock()
}

// Remove takes a page out of the mapping (remove_from_page_cache). The page
// must be locked, clean and not under writeback.
func (m *Mapping) Remove(p *Page) {
	m.mu.Lock()
	if m.pages[p.Index] != p {
		m.mu.Unlock()
		return
	}
	delete(m.pages, p.Index)
	for t := range m.tags {
		delete(m.tags[t], p.Index)
	}
	p.mapping.Store(nil)
	m.mu.Unlock()
	m.cache.removeLRU(p)
}

// SetError records a writeback error against the mapping (mapping_set_error).
func (m *Mapping) SetError(err error) { m.errs.set(err) }
