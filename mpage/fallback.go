package mpage

import "github.com/mpagefs/mpage/pagecache"

// FallbackCounter is an optional interface of a mapping's operations
// (pagecache.Operations) for counting the pages that leave the
// multi-page path ("confused" in the seed) and are read or written block
// by block: a filesystem implementing it learns of each such page, so it
// can report how often its layout defeats fs/mpage.c (blocks of a page
// not contiguous on disk, holes inside a page, pages with buffers).
//
// The counters live with the filesystem rather than in this package, so
// that two filesystems in one process keep their numbers apart and no
// count is lost when an inode leaves the cache.
type FallbackCounter interface {
	// FallbackRead is called for each page read through
	// buffer.ReadFullPage (block_read_full_page) after the multi-page
	// read gave up on it.
	FallbackRead()
	// FallbackWrite is called for each page handed to the filesystem's
	// writepage after the multi-page write gave up on it.
	FallbackWrite()
}

// countFallback tells m's operations, if they count, that a page of m
// took the per-block path.
func countFallback(m *pagecache.Mapping, write bool) {
	if m == nil {
		return
	}
	c, ok := m.Ops().(FallbackCounter)
	if !ok {
		return
	}
	if write {
		c.FallbackWrite()
	} else {
		c.FallbackRead()
	}
}
