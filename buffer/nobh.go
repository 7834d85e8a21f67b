package buffer

import (
	"fmt"
	"sync"

	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/pagecache"
)

// NobhWriteBegin prepares bytes [from, to) of a locked page for a write,
// attaching no buffer heads when it can (fs/buffer.c:nobh_write_begin, the
// 2.6.12 nobh_prepare_write, which ext2's "nobh" mount option used).
//
// A write that covers the whole page of a page without buffers needs no
// buffer: no block is read or zeroed, since the write overwrites each.
// NobhWriteBegin then maps (allocating) every block of the page with get,
// so that running out of space fails this write as BlockWriteBegin would,
// drops the metadata alias of each new block, and marks the page
// PG_mappedtodisk; the block numbers are not kept. Writeback maps the page
// again with get when it builds its bio (mpage's page without buffers,
// "the preferred case" of __mpage_writepage), and the per-block fallback
// (WriteFullPage) attaches buffers then. The caller dirties the page
// (set_page_dirty without buffers) after copying the bytes in.
//
// Any other write (part of a page, or a page that has buffers) takes
// BlockWriteBegin.
//
// When get fails after it allocated some of the page's blocks (block size
// below the page size), those blocks get buffers, are zeroed and marked
// dirty, as BlockWriteBegin does with blocks it allocated before a
// failure, so that their stale disk bytes cannot show through; the error
// is returned.
//
// Preconditions: p is locked and in its mapping.
func NobhWriteBegin(p *pagecache.Page, from, to int, get GetBlock) error {
	if from != 0 || to != pagecache.PageSize || HasBuffers(p) {
		return BlockWriteBegin(p, from, to, get)
	}
	m := p.Mapping()
	if m == nil {
		return ErrNoMapping
	}
	bits, err := pageGeometry(m)
	if err != nil {
		return err
	}
	blocksize := 1 << bits
	blk := p.Index << (pagecache.PageShift - bits)
	// The mapping head goes to get, a function value, so it would be
	// allocated on the heap for each page: it comes from a pool instead.
	bh := mapHeads.Get().(*Head)
	defer putMapHead(bh)
	var fresh [pagecache.PageSize >> block.SectorShift]nobhBlock
	for i, off := 0, 0; off < pagecache.PageSize; i, off = i+1, off+blocksize {
		bh.SetState(0)
		bh.Blocknr, bh.Queue = 0, nil
		bh.Size, bh.Page = blocksize, p
		bh.Data = p.Data[off : off+blocksize : off+blocksize]
		if err := get(blk+int64(i), bh, true); err != nil {
			nobhWriteBeginFailed(p, blocksize, fresh[:i])
			return err
		}
		if !bh.Has(Mapped) {
			nobhWriteBeginFailed(p, blocksize, fresh[:i])
			return fmt.Errorf("%w: block %d of page %d not mapped by get_block with create",
				ErrNoMapping, blk+int64(i), p.Index)
		}
		fresh[i].q, fresh[i].nr, fresh[i].new = bh.Queue, bh.Blocknr, bh.Has(New)
		if fresh[i].new {
			UnmapUnderlyingMetadata(bh.Queue, bh.Blocknr)
		}
	}
	p.SetMappedToDisk()
	return nil
}

// nobhBlock is what NobhWriteBegin learned of one block of the page.
type nobhBlock struct {
	q   *block.Queue
	nr  int64
	new bool // get allocated it (BH_New)
}

// nobhWriteBeginFailed gives the page buffers when get newly allocated
// some of its first blocks before failing on the next one, maps them, and
// zeroes and dirties the new ones (writeBeginFailed).
func nobhWriteBeginFailed(p *pagecache.Page, blocksize int, mapped []nobhBlock) {
	anyNew := false
	for _, b := range mapped {
		anyNew = anyNew || b.new
	}
	if !anyNew {
		return
	}
	head := CreateEmptyBuffers(p, blocksize, 0)
	bh := head
	for _, b := range mapped {
		bh.Map(b.q, b.nr)
		if b.new {
			bh.Set(New)
		}
		bh = bh.next
	}
	writeBeginFailed(head, 0, pagecache.PageSize)
}

// createPageBuffers attaches buffers to a page that has none, each
// uptodate if the page is and dirty if the page is, as Linux's
// create_empty_buffers does: a page dirtied without buffers (written
// whole by NobhWriteBegin's caller) keeps every block dirty when a partial
// write or a truncation gives it buffers later, so that writeback still
// writes the blocks the page-level dirty bit stood for.
//
// Preconditions: p is locked and has no buffers.
func createPageBuffers(p *pagecache.Page, blocksize int) *Head {
	var s State
	if p.Uptodate() {
		s |= Uptodate
	}
	if p.Has(pagecache.Dirty) {
		s |= Dirty
	}
	return CreateEmptyBuffers(p, blocksize, s)
}

// mapHeads holds the heads NobhWriteBegin hands to get_block (the
// on-stack map_bh of nobh_write_begin).
var mapHeads = sync.Pool{New: func() any { return new(Head) }}

// putMapHead forgets what bh pointed to and returns it to mapHeads.
func putMapHead(bh *Head) {
	bh.SetState(0)
	bh.Blocknr, bh.Queue, bh.Data, bh.Page = 0, nil, nil, nil
	mapHeads.Put(bh)
}
