package buffer

import (
	"fmt"

	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/pagecache"
)

// NobhWriteBeginPages prepares a run of locked pages, each about to be
// overwritten whole, as NobhWriteBegin(p, 0, PageSize, get) prepares one,
// but maps their blocks with one call of get per contiguous run of device
// blocks instead of one per block: the mapping head asks, through its
// Size, for every block left in the run, and get answers with the length
// of the contiguous run it mapped (allocated) in bh.Size, as
// ext2_get_block does for ext2_get_blocks' callers (mpage_readpages'
// b_size, the direct I/O path). It is the pagecache.BatchWriteBeginner of
// a nobh filesystem.
//
// get must honour Size that way: set bh.Size to the bytes it mapped from
// iblock on (at least one block, at most the Size asked for); a mapper
// that maps one block and leaves Size alone would claim the whole run.
// New blocks lose their metadata aliases (unmap_underlying_metadata), and
// each page whose blocks are all mapped is marked PG_mappedtodisk.
//
// It returns how many leading pages it prepared. It stops, with no error,
// at the first page that does not follow the previous one in its mapping
// or that has buffers (the caller begins that one and the rest page by
// page). When get fails (no space), the pages before the one whose block
// failed are prepared and counted, that page's blocks allocated before the
// failure are zeroed and dirtied in buffers as NobhWriteBegin does, and
// the error is returned: the write stops where the per-page path stops.
//
// Preconditions: the pages are locked and in their mapping.
func NobhWriteBeginPages(pages []*pagecache.Page, get GetBlock) (int, error) {
	if len(pages) == 0 {
		return 0, nil
	}
	m := pages[0].Mapping()
	if m == nil {
		return 0, ErrNoMapping
	}
	bits, err := pageGeometry(m)
	if err != nil {
		return 0, err
	}
	run := 1
	for run < len(pages) && pages[run].Index == pages[run-1].Index+1 && pages[run].Mapping() == m {
		run++
	}
	for i, p := range pages[:run] {
		if HasBuffers(p) {
			run = i
			break
		}
	}
	if run == 0 {
		return 0, nil
	}
	pages = pages[:run]
	blocksize := 1 << bits
	perPage := pagecache.PageSize >> bits
	total := int64(run * perPage)
	blk0 := pages[0].Index << (pagecache.PageShift - bits)
	bh := mapHeads.Get().(*Head)
	defer putMapHead(bh)
	// fresh holds what get mapped of the page being mapped, for the
	// clean-up of a failure partway through it.
	var fresh [pagecache.PageSize >> block.SectorShift]nobhBlock
	for b := int64(0); b < total; {
		pi, bi := int(b)/perPage, int(b)%perPage
		p := pages[pi]
		off := bi << bits
		bh.SetState(0)
		bh.Blocknr, bh.Queue = 0, nil
		bh.Size, bh.Page = int(total-b)<<bits, p
		bh.Data = p.Data[off : off+blocksize : off+blocksize]
		if err := get(blk0+b, bh, true); err != nil {
			nobhWriteBeginFailed(p, blocksize, fresh[:bi])
			return pi, err
		}
		if !bh.Has(Mapped) {
			nobhWriteBeginFailed(p, blocksize, fresh[:bi])
			return pi, fmt.Errorf("%w: block %d of page %d not mapped by get_block with create",
				ErrNoMapping, blk0+b, p.Index)
		}
		count := int64(bh.Size >> bits)
		if count < 1 || count > total-b {
			nobhWriteBeginFailed(p, blocksize, fresh[:bi])
			return pi, fmt.Errorf("%w: get_block mapped %d bytes at block %d of page %d, want 1 to %d blocks of %d",
				ErrNoMapping, bh.Size, blk0+b, p.Index, total-b, blocksize)
		}
		q, nr, isNew := bh.Queue, bh.Blocknr, bh.Has(New)
		if isNew {
			unmapUnderlyingMetadataRange(q, nr, count)
		}
		for k := int64(0); k < count; k++ {
			i := int(b+k) % perPage
			fresh[i] = nobhBlock{q: q, nr: nr + k, new: isNew}
			if i == perPage-1 {
				pages[int(b+k)/perPage].SetMappedToDisk()
			}
		}
		b += count
	}
	return run, nil
}

// unmapUnderlyingMetadataRange is UnmapUnderlyingMetadata for count
// blocks from first, looking them up in the buffer cache in one round of
// its lock: newly allocated data blocks seldom have an alias.
func unmapUnderlyingMetadataRange(q *block.Queue, first, count int64) {
	c := CacheFor(q)
	if c == nil {
		return
	}
	var arr [8]int64
	hits := arr[:0]
	c.mu.Lock()
	if len(c.mu.index) > 0 {
		for nr := first; nr < first+count; nr++ {
			if _, ok := c.mu.index[nr]; ok {
				hits = append(hits, nr)
			}
		}
	}
	c.mu.Unlock()
	for _, nr := range hits {
		UnmapUnderlyingMetadata(q, nr)
	}
}
