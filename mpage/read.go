package mpage

import (
	"errors"
	"fmt"
	"sync"

	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/buffer"
	"github.com/mpagefs/mpage/pagecache"
)

// Sentinel errors of the mpage layer.
var (
	// ErrAgain is returned by WritePage for a page that cannot go into a
	// multi-page bio and has to be written by the filesystem's own
	// writepage (the seed's -EAGAIN from mpage_writepage).
	ErrAgain = errors.New("mpage: page needs the filesystem's writepage")
	// ErrNoGetBlock is returned by WritePages called with neither a block
	// mapper nor a writepage function.
	ErrNoGetBlock = errors.New("mpage: no block mapper and no writepage")
	// ErrBlockSize is returned for a mapping whose block size is not a
	// power of two between 512 bytes and the page size.
	ErrBlockSize = errors.New("mpage: block size not supported")
)

// maxBufPerPage is the most blocks a page can have (MAX_BUF_PER_PAGE).
const maxBufPerPage = pagecache.PageSize >> block.SectorShift

// mpageData is what the seed threads through its helpers as arguments: the
// bio being built, the device it is for (bio->bi_bdev) and the last device
// block in it (*last_block_in_bio). Later Linux gathers the same in struct
// mpage_readpage_args and struct mpage_data.
type mpageData struct {
	bio            *block.Bio
	q              *block.Queue
	lastBlockInBio int64
	get            buffer.GetBlock
	err            error       // the first error of a confused page's fallback
	bh             buffer.Head // readPageToBio's scratch buffer head
}

// blockBits returns the mapping's block bits, checked for page I/O.
func blockBits(m *pagecache.Mapping) (uint, error) {
	bits := m.BlockBits()
	if bits < block.SectorShift || bits > pagecache.PageShift {
		return 0, fmt.Errorf("%w: %d bytes", ErrBlockSize, 1<<bits)
	}
	return bits, nil
}

// endIORead mirrors mpage_end_io_read(): every page of a completed read
// bio becomes uptodate, or on failure not uptodate and PG_error; then it is
// unlocked. The seed walks the vector from the last page to the first; so
// do we, and then put the bio (bio_put), whose vector goes back to its pool.
func endIORead(b *block.Bio, err error) {
	for i := len(b.Vecs) - 1; i >= 0; i-- {
		p, ok := b.Vecs[i].Page.(*pagecache.Page)
		if !ok {
			continue
		}
		if err == nil {
			p.SetUptodate()
		} else {
			p.ClearUptodate()
			p.SetError()
		}
		p.Unlock()
	}
	b.Put()
}

// endIOWrite mirrors mpage_end_io_write(): on failure every page of the bio
// gets PG_error and, as later Linux does (mapping_set_error in
// mpage_end_io), its mapping records the error; every page's writeback
// ends. Then the bio is put (bio_put).
func endIOWrite(b *block.Bio, err error) {
	for i := len(b.Vecs) - 1; i >= 0; i-- {
		p, ok := b.Vecs[i].Page.(*pagecache.Page)
		if !ok {
			continue
		}
		if err != nil {
			p.SetError()
			buffer.SetMappingError(p.Mapping(), err)
		}
		p.EndWriteback()
	}
	b.Put()
}

// submit mirrors mpage_bio_submit(): it sets the completion handler of
// the bio under construction by its direction, submits it and forgets it
// (the seed's "bio = mpage_bio_submit(...)" returns NULL).
func (d *mpageData) submit() {
	b := d.bio
	b.EndIO = endIORead
	if b.Op == block.Write {
		b.EndIO = endIOWrite
	}
	d.bio = nil
	d.q.Submit(b)
}

// finishPlug dispatches what this call queued. In 2.6.12 the queue stays
// plugged until its timer fires or someone waits on a page (sync_page ->
// blk_run_address_space); later Linux brackets readahead and writepages
// with blk_start_plug()/blk_finish_plug(), so the batch goes to the device
// as soon as it is built. We do the latter: the bios of one call have had
// their chance to merge, and no reader or fsync waits for a timer.
func (d *mpageData) finishPlug() {
	if d.q != nil {
		d.q.Unplug()
	}
}

// finishBatch ends a writepages call as finishPlug does, except that
// while the caller holds a block.Plug on the queue (a writeback pass over
// many mappings, or a filesystem sync) the bios stay queued, to merge with
// those of the next mapping: later Linux's blk_finish_plug of
// mpage_writepages' own plug, which does nothing when nested inside the
// plug of wb_writeback. A lone WritePages (fsync of one file) still
// dispatches at once.
func (d *mpageData) finishBatch() {
	if d.q != nil {
		d.q.UnplugBatch()
	}
}

// mpageAlloc mirrors mpage_alloc(): a bio for nrVecs pages starting at
// sector of q. The seed halves nr_vecs and retries only when the task is
// PF_MEMALLOC (writing out memory under pressure); we have no such flag
// and always try halving down to one vector. If even that fails the caller
// takes the per-block path ("confused"), whose one-block bios come from
// the buffer layer's reserve.
func mpageAlloc(q *block.Queue, op block.Op, sector int64, nrVecs int) *block.Bio {
	b := q.AllocBio(op, sector, nrVecs)
	for b == nil && nrVecs > 1 {
		nrVecs /= 2
		b = q.AllocBio(op, sector, nrVecs)
	}
	return b
}

// addPage adds the first length bytes of p to the bio under construction,
// allocating one when there is none and submitting full ones: the
// "alloc_new:" loop of do_mpage_readpage and __mpage_writepage. It reports
// false when no bio could be had ("goto confused").
func (d *mpageData) addPage(q *block.Queue, op block.Op, sector int64, nrVecs int, p *pagecache.Page, length int) bool {
	for {
		if d.bio == nil {
			d.bio = mpageAlloc(q, op, sector, nrVecs)
			if d.bio == nil {
				return false
			}
			d.q = q
		}
		if d.bio.AddPage(p.Data[:length], p) {
			return true
		}
		// bio_add_page() never refuses a page to an empty bio in Linux,
		// so the seed loops. Ours can (a queue hook); an empty bio is
		// then submitted only to return it to the queue, which fails it
		// without touching the device, and the page is confused.
		empty := len(d.bio.Vecs) == 0
		d.submit()
		if empty {
			return false
		}
	}
}

// mapBufferToPage mirrors map_buffer_to_page(): the mapper returned an
// uptodate buffer (it copied the data into the page itself), so its state
// is moved into the page's own buffer for the block and the per-block read
// will not repeat the mapping or the read. When the page is one block, the
// page is simply marked uptodate instead of growing buffers.
func mapBufferToPage(p *pagecache.Page, bh *buffer.Head, pageBlock int, bits uint) {
	if !buffer.HasBuffers(p) {
		// Don't make any buffers if there is only one buffer on the page
		// and the page just needs to be set up to date.
		if bits == pagecache.PageShift && bh.Has(buffer.Uptodate) {
			p.SetUptodate()
			return
		}
		buffer.CreateEmptyBuffers(p, 1<<bits, 0)
	}
	head := buffer.Buffers(p)
	pageBH := head
	for blk := 0; ; blk++ {
		if blk == pageBlock {
			pageBH.SetState(bh.State())
			pageBH.Queue = bh.Queue
			pageBH.Blocknr = bh.Blocknr
			break
		}
		pageBH = pageBH.Next()
		if pageBH == head {
			break
		}
	}
}

// doReadPage mirrors do_mpage_readpage(): it maps the blocks of one locked
// page and adds the page to the bio under construction when they form one
// contiguous run on one device (with a hole allowed only at the end: end of
// file on small-block filesystems). Anything unusual sends the page down the
// per-block path of buffer.ReadFullPage ("confused"):
//
//   - the page has buffers;
//   - the mapper fails;
//   - a mapped block follows a hole;
//   - the blocks are not contiguous;
//   - the mapper returned an uptodate buffer (map_buffer_to_page first).
//
// BH_Boundary: the mapper sets Boundary on a block when mapping the next
// one will need I/O nearby (an ext2 indirect block after the twelfth direct
// block). The bio is then submitted at once, so that the disk sees data
// 0..11, then the indirect block, then 12.., rather than the seed's
// "12 0 1 2 ..." order.
//
// nrPages is the number of pages left in this read, the size hint for a
// new bio.
func (d *mpageData) doReadPage(p *pagecache.Page, nrPages int) {
	if !d.readPageToBio(p, nrPages) {
		d.readConfused(p)
	}
}

// readPageToBio is do_mpage_readpage up to its "out:" label. It reports
// false where the seed jumps to "confused:".
func (d *mpageData) readPageToBio(p *pagecache.Page, nrPages int) bool {
	m := p.Mapping()
	if m == nil {
		return false
	}
	bits, err := blockBits(m)
	if err != nil {
		return false
	}
	blocksPerPage := pagecache.PageSize >> bits
	blocksize := int64(1) << bits
	var blocks [maxBufPerPage]int64
	firstHole := blocksPerPage
	var q *block.Queue
	fullyMapped := true

	if buffer.HasBuffers(p) {
		return false // goto confused
	}

	blockInFile := p.Index << (pagecache.PageShift - bits)
	lastBlock := (m.Size() + blocksize - 1) >> bits

	// bh is the seed's on-stack buffer head: it points into the page, so a
	// mapper that fills the block itself (and sets Uptodate) writes the
	// page's bytes. It lives in d, one per call, because a buffer head
	// handed to the mapper (a function value) would escape to the heap:
	// one allocation per page.
	bh := &d.bh
	*bh = buffer.Head{Page: p, Size: int(blocksize)}
	for pageBlock := 0; pageBlock < blocksPerPage; pageBlock, blockInFile = pageBlock+1, blockInFile+1 {
		bh.SetState(0)
		bh.Blocknr = 0
		bh.Data = p.Data[pageBlock<<bits : (pageBlock+1)<<bits : (pageBlock+1)<<bits]
		if blockInFile < lastBlock {
			if err := d.get(blockInFile, bh, false); err != nil {
				return false // goto confused
			}
		}

		if !bh.Has(buffer.Mapped) {
			fullyMapped = false
			if firstHole == blocksPerPage {
				firstHole = pageBlock
			}
			continue
		}

		// Some filesystems copy data into the page during the get_block
		// call, in which case we don't want to read it again.
		// map_buffer_to_page keeps what get_block collected in the page's
		// buffers so that readpage does not repeat the call.
		if bh.Has(buffer.Uptodate) {
			mapBufferToPage(p, bh, pageBlock, bits)
			return false // goto confused
		}

		if firstHole != blocksPerPage {
			return false // hole -> non-hole: goto confused
		}

		// Contiguous blocks, on one device?
		if pageBlock > 0 && (blocks[pageBlock-1] != bh.Blocknr-1 || q != bh.Queue) {
			return false // goto confused
		}
		if bh.Queue == nil {
			return false // mapped without a device: let the per-block path fail it
		}
		blocks[pageBlock] = bh.Blocknr
		q = bh.Queue
	}

	if firstHole != blocksPerPage {
		clear(p.Data[firstHole<<bits:])
		if firstHole == 0 {
			p.SetUptodate()
			p.Unlock()
			return true // goto out
		}
	} else if fullyMapped {
		p.SetMappedToDisk()
	}

	// This page will go to BIO. Do we need to send this BIO off first?
	if d.bio != nil && (d.lastBlockInBio != blocks[0]-1 || d.q != q) {
		d.submit()
	}

	// alloc_new:
	length := firstHole << bits
	if !d.addPage(q, block.Read, blocks[0]<<(bits-block.SectorShift), min(nrPages, q.NrVecs()), p, length) {
		return false // goto confused
	}

	if bh.Has(buffer.Boundary) || firstHole != blocksPerPage {
		d.submit()
	} else {
		d.lastBlockInBio = blocks[blocksPerPage-1]
	}
	return true // out:
}

// readConfused is the "confused:" tail of do_mpage_readpage: submit what
// has been gathered, so the disk sees it first, then read this page block
// by block unless the mapper already made it uptodate.
func (d *mpageData) readConfused(p *pagecache.Page) {
	if d.bio != nil {
		d.submit()
	}
	if !p.Uptodate() {
		countFallback(p.Mapping(), false)
		if err := buffer.ReadFullPage(p, d.get); err != nil && d.err == nil {
			d.err = err
		}
	} else {
		p.Unlock()
	}
}

// ReadPages mirrors mpage_readpages(): it adds each page of pages (not yet
// in the cache, unlocked, in file order, Index set) to m, and starts the
// reads of those it could add, building bios as large as the blocks'
// contiguity allows. A page that cannot be added (its index is already
// cached) is dropped. Each added page is unlocked when its read is over,
// uptodate or with PG_error; that may be after ReadPages returns.
//
// The error is the first one of the per-block fallback (a mapper error);
// the pages it concerns are marked PG_error. The seed returns 0. The last
// bio is submitted and the queue unplugged (finishPlug).
func ReadPages(m *pagecache.Mapping, pages []*pagecache.Page, get buffer.GetBlock) error {
	d := getReadData(get)
	defer putReadData(d)
	for i, p := range pages {
		if err := m.AddPage(p); err != nil {
			continue // page_cache_release(page)
		}
		d.doReadPage(p, len(pages)-i)
	}
	if d.bio != nil {
		d.submit()
	}
	d.finishPlug()
	return d.err
}

// ReadPage mirrors mpage_readpage(): it starts the read of one locked page
// of a mapping, which is unlocked when the read is over (possibly after
// ReadPage returns). The error is that of the per-block fallback, as for
// ReadPages.
//
// Its caller waits for the page at once (readpage is the synchronous
// path: a read that readahead did not cover, or the partial page of a
// write), so the bio is Polled: on an idle queue the caller makes the
// device call itself and the page is unlocked before ReadPage returns,
// without a hand-off to a queue worker and back. 2.6.12 submits and
// sleeps in lock_page; later Linux issues such a bio directly from the
// submitting task when the queue is idle (blk_mq_try_issue_directly).
func ReadPage(p *pagecache.Page, get buffer.GetBlock) error {
	d := getReadData(get)
	defer putReadData(d)
	d.doReadPage(p, 1)
	if d.bio != nil {
		d.bio.Polled = true
		d.submit()
	}
	d.finishPlug()
	return d.err
}

// readData recycles the state of ReadPage and ReadPages calls: a random
// reader that misses the cache calls ReadPage once per page, and its
// mpageData (which escapes through the mapper call) was one of the
// larger allocations per read.
var readData sync.Pool

// getReadData returns a cleared mpageData for the mapper get.
func getReadData(get buffer.GetBlock) *mpageData {
	d, ok := readData.Get().(*mpageData)
	if !ok {
		d = new(mpageData)
	}
	d.get = get
	return d
}

// putReadData clears d, so that the pool holds no page, bio or mapper,
// and returns it to the pool.
func putReadData(d *mpageData) {
	*d = mpageData{}
	readData.Put(d)
}
