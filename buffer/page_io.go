package buffer

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/pagecache"
)

// Lock order of the page I/O paths: the page lock, then a buffer's lock
// (Head.Lock), then the first buffer's uptodateMu (the page's completion
// lock). Completions never take a page lock; they unlock pages and end
// writeback.

// Sentinel errors of the page I/O paths.
var (
	// ErrNoMapping is returned for a page that is not in a mapping (it was
	// truncated or never added).
	ErrNoMapping = errors.New("buffer: page is not in a mapping")
	// ErrPageBlockSize is returned when the mapping's block size is not a
	// power of two between 512 bytes and the page size.
	ErrPageBlockSize = errors.New("buffer: block size not supported for page I/O")
	// ErrRange is returned for a byte range that does not lie in a page.
	ErrRange = errors.New("buffer: byte range outside the page")
	// ErrNoQueue is the I/O error of a buffer mapped without a queue.
	ErrNoQueue = errors.New("buffer: mapped buffer has no queue")
	// ErrReadFailed is returned when a synchronous buffer read failed.
	ErrReadFailed = errors.New("buffer: block read failed")
)

// pageGeometry returns the block bits of the page's mapping, checking that
// page I/O supports them.
func pageGeometry(m *pagecache.Mapping) (uint, error) {
	bits := m.BlockBits()
	if bits < block.SectorShift || bits > pagecache.PageShift {
		return 0, fmt.Errorf("%w: %d bytes", ErrPageBlockSize, 1<<bits)
	}
	return bits, nil
}

// SetMappingError records a writeback error on m as mapping_set_error()
// does: an out-of-space error (syscall.ENOSPC or pagecache.ErrNoSpace) is
// recorded so that errors.Is(recorded, pagecache.ErrNoSpace) holds
// (AS_ENOSPC); any other error is recorded as it is (AS_EIO). The cause is
// kept in both cases.
func SetMappingError(m *pagecache.Mapping, err error) {
	if m == nil || err == nil {
		return
	}
	if errors.Is(err, syscall.ENOSPC) && !errors.Is(err, pagecache.ErrNoSpace) {
		err = fmt.Errorf("%w: %w", pagecache.ErrNoSpace, err)
	}
	m.SetError(err)
}

// submitBH starts I/O of one locked, mapped buffer and calls end with the
// outcome, on another goroutine when the queue completes asynchronously.
// It mirrors fs/buffer.c:submit_bh(): one bio of one segment, filled in
// directly rather than through bio_add_page.
//
// submit_bh's bio_alloc(GFP_NOIO) cannot fail: it waits on the bio
// mempool's reserve. Our AllocBio can (its budget is a stand-in for memory
// pressure), so when it does the reserve is a bio built by hand, which the
// queue accepts like any other: the per-block path must work when the
// multi-page path could get no bio.
func submitBH(op block.Op, bh *Head, end func(bh *Head, err error)) {
	q := bh.Queue
	if q == nil {
		end(bh, fmt.Errorf("%w: block %d", ErrNoQueue, bh.Blocknr))
		return
	}
	sector := bh.Blocknr * int64(bh.Size>>block.SectorShift)
	bh.Set(Req)
	bio := q.AllocBio(op, sector, 1)
	if bio == nil {
		bio = &block.Bio{Op: op, Sector: sector}
	}
	bio.Vecs = append(bio.Vecs, block.Vec{Buf: bh.Data, Page: bh.Page})
	bio.EndIO = func(_ *block.Bio, err error) { end(bh, err) }
	q.Submit(bio)
}

// endBufferAsyncRead is the completion of one buffer of a page read by
// ReadFullPage (end_buffer_async_read). The buffers' completions are
// serialised by the first buffer's uptodateMu; the last one to finish
// unlocks the page, marking it uptodate when every buffer is. As in later
// Linux (folio_end_read) the page's uptodate state is decided from the
// buffers alone, so a PG_error left by an earlier failed read does not keep
// a good read from making the page uptodate.
func endBufferAsyncRead(first, bh *Head, err error) {
	p := bh.Page
	if err == nil {
		bh.Set(Uptodate)
	} else {
		bh.Clear(Uptodate)
		p.SetError()
	}
	first.uptodateMu.Lock()
	bh.Clear(AsyncRead)
	bh.Unlock()
	pageUptodate := true
	tmp := bh
	for {
		if !tmp.Has(Uptodate) {
			pageUptodate = false
		}
		if tmp.Has(AsyncRead) {
			first.uptodateMu.Unlock() // still_busy
			return
		}
		tmp = tmp.next
		if tmp == bh {
			break
		}
	}
	first.uptodateMu.Unlock()
	if pageUptodate {
		p.SetUptodate()
	}
	p.Unlock()
}

// endBufferAsyncWrite is the completion of one buffer of a page written by
// WriteFullPage (end_buffer_async_write). A failure marks the buffer
// (BH_Write_EIO), the page (PG_error) and the mapping (mapping_set_error, as
// later Linux does). The last buffer to finish ends the page's writeback.
func endBufferAsyncWrite(first, bh *Head, err error) {
	p := bh.Page
	if err == nil {
		bh.Set(Uptodate)
	} else {
		bh.Set(WriteIOError)
		bh.Clear(Uptodate)
		p.SetError()
		SetMappingError(p.Mapping(), err)
	}
	first.uptodateMu.Lock()
	bh.Clear(AsyncWrite)
	bh.Unlock()
	for tmp := bh.next; tmp != bh; tmp = tmp.next {
		if tmp.Has(AsyncWrite) {
			first.uptodateMu.Unlock() // still_busy
			return
		}
	}
	first.uptodateMu.Unlock()
	p.EndWriteback()
}

// ReadFullPage reads a locked page block by block through its buffer heads
// (block_read_full_page): the path fs/mpage.c takes for "confused" pages.
// Buffers are created if the page has none; blocks not yet mapped are
// mapped with get (create false); holes and blocks past end of file are
// zeroed; one bio per block that needs reading is submitted. The page is
// unlocked when all its reads are over, which may be after ReadFullPage
// returns, and is uptodate then if every block was read or zeroed.
//
// A get error marks the page PG_error, keeps it from becoming uptodate and
// is returned; the other blocks are still read, as in Linux, and the page
// is still unlocked when they are done.
//
// Preconditions: p is locked.
func ReadFullPage(p *pagecache.Page, get GetBlock) error {
	m := p.Mapping()
	if m == nil {
		p.Unlock()
		return ErrNoMapping
	}
	bits, err := pageGeometry(m)
	if err != nil {
		p.SetError()
		p.Unlock()
		return err
	}
	blocksize := int64(1) << bits
	head := Buffers(p)
	if head == nil {
		head = CreateEmptyBuffers(p, int(blocksize), 0)
	}
	iblock := p.Index << (pagecache.PageShift - bits)
	lblock := (m.Size() + blocksize - 1) >> bits
	var arr []*Head
	var firstErr error
	fullyMapped := true

	// Stage one: map the buffers that need it, zero the holes.
	bh := head
	for {
		if bh.Has(Uptodate) {
			goto next
		}
		if !bh.Has(Mapped) {
			fullyMapped = false
			var gerr error
			if iblock < lblock {
				if gerr = get(iblock, bh, false); gerr != nil {
					p.SetError()
					if firstErr == nil {
						firstErr = gerr
					}
				}
			}
			if !bh.Has(Mapped) {
				clear(bh.Data)
				if gerr == nil {
					bh.Set(Uptodate)
				}
				goto next
			}
			// get_block() might have updated the buffer synchronously.
			if bh.Has(Uptodate) {
				goto next
			}
		}
		arr = append(arr, bh)
	next:
		iblock++
		bh = bh.next
		if bh == head {
			break
		}
	}
	if fullyMapped {
		p.SetMappedToDisk()
	}
	if len(arr) == 0 {
		// All buffers are uptodate, or holes, or failed to map.
		if firstErr == nil {
			p.SetUptodate()
		}
		p.Unlock()
		return firstErr
	}

	// Stage two: lock the buffers and mark them for async read, all before
	// any I/O starts, so that no completion can finish the page early.
	for _, bh := range arr {
		bh.Lock()
		bh.Set(AsyncRead)
	}
	// Stage three: start the I/O. A buffer may have become uptodate while
	// we waited for its lock (someone read it for us).
	end := func(bh *Head, err error) { endBufferAsyncRead(head, bh, err) }
	for _, bh := range arr {
		if bh.Has(Uptodate) {
			end(bh, nil)
		} else {
			submitBH(block.Read, bh, end)
		}
	}
	return firstErr
}

// WriteFullPage writes a locked page block by block through its buffer
// heads (block_write_full_page). A page wholly past end of file is only
// unlocked (truncate is racing with us; not an error); a page straddling
// end of file has its tail zeroed first. It sets writeback and unlocks the
// page; writeback ends when the last block's write completes.
//
// Preconditions: p is locked and its dirty bit was cleared for I/O.
func WriteFullPage(p *pagecache.Page, get GetBlock, wbc *pagecache.WritebackControl) error {
	m := p.Mapping()
	if m == nil {
		// Truncated away under us: nothing left to write.
		p.Unlock()
		return nil
	}
	if wbc == nil {
		wbc = &pagecache.WritebackControl{SyncMode: pagecache.SyncAll}
	}
	size := m.Size()
	endIndex := size >> pagecache.PageShift
	// Is the page fully inside i_size?
	if p.Index < endIndex {
		return writeFullPage(p, m, get, wbc)
	}
	// Is the page fully outside i_size? (truncate in progress)
	offset := int(size & (pagecache.PageSize - 1))
	if p.Index >= endIndex+1 || offset == 0 {
		// The page may have dirty, unmapped buffers. Later Linux
		// (block_write_full_page) invalidates them so that the page does
		// not keep them; we do the same.
		InvalidatePage(p, 0)
		p.Unlock()
		return nil
	}
	// The page straddles i_size. It must be zeroed out on each and every
	// writepage invocation because it may be mmapped.
	clear(p.Data[offset:])
	return writeFullPage(p, m, get, wbc)
}

// writeFullPage mirrors fs/buffer.c:__block_write_full_page().
//
// Preconditions: p is locked, in m, and not wholly past end of file.
func writeFullPage(p *pagecache.Page, m *pagecache.Mapping, get GetBlock, wbc *pagecache.WritebackControl) error {
	bits, err := pageGeometry(m)
	if err != nil {
		p.SetError()
		p.Unlock()
		return err
	}
	// Linux BUG()s on a page already under writeback; we wait for it.
	p.WaitWriteback()
	blocksize := int64(1) << bits
	lastBlock := (m.Size() - 1) >> bits
	head := Buffers(p)
	if head == nil {
		head = CreateEmptyBuffers(p, int(blocksize), Dirty|Uptodate)
	}

	// Get all the dirty buffers mapped to disk addresses and handle any
	// aliases from the underlying blockdev's mapping.
	blk := p.Index << (pagecache.PageShift - bits)
	bh := head
	for {
		if blk > lastBlock {
			// Mapped buffers outside i_size occur when a truncate is in
			// progress; block_write_full_page zeroed this one.
			bh.Clear(Dirty)
			bh.Set(Uptodate)
		} else if !bh.Has(Mapped) && bh.Has(Dirty) {
			if err = get(blk, bh, true); err != nil {
				return writeFullPageRecover(p, m, head, err)
			}
			if bh.Clear(New) {
				UnmapUnderlyingMetadata(bh.Queue, bh.Blocknr)
			}
		}
		bh = bh.next
		blk++
		if bh == head {
			break
		}
	}

	for {
		if bh.Has(Mapped) {
			// A fully non-blocking write attempt that cannot lock the
			// buffer redirties the page instead of waiting.
			if wbc.SyncMode != pagecache.SyncNone || !wbc.Nonblocking {
				bh.Lock()
			} else if !bh.TryLock() {
				p.SetDirty() // redirty_page_for_writepage
				goto next
			}
			if bh.Clear(Dirty) {
				bh.Set(AsyncWrite)
			} else {
				bh.Unlock()
			}
		}
	next:
		bh = bh.next
		if bh == head {
			break
		}
	}

	// The page and its buffers are protected by PG_writeback from here.
	p.SetWriteback()
	p.Unlock()
	return submitPageWrites(p, head)
}

// submitPageWrites submits every buffer marked AsyncWrite and, when there
// was none, ends the page's writeback at once (the "done" tail of
// __block_write_full_page).
//
// Preconditions: p is under writeback and its buffers marked for write are
// locked.
func submitPageWrites(p *pagecache.Page, head *Head) error {
	end := func(bh *Head, err error) { endBufferAsyncWrite(head, bh, err) }
	nrUnderway := 0
	bh := head
	for {
		next := bh.next
		if bh.Has(AsyncWrite) {
			submitBH(block.Write, bh, end)
			nrUnderway++
		}
		bh = next
		if bh == head {
			break
		}
	}
	if nrUnderway == 0 {
		// The page was marked dirty, but the buffers were clean: someone
		// wrote them back by hand. Linux then ends writeback right away.
		uptodate := true
		for bh := head; ; {
			if !bh.Has(Uptodate) {
				uptodate = false
				break
			}
			bh = bh.next
			if bh == head {
				break
			}
		}
		if uptodate {
			p.SetUptodate()
		}
		p.EndWriteback()
	}
	return nil
}

// writeFullPageRecover is the "recover" path of __block_write_full_page:
// get failed (out of space, or an I/O error reading an indirect block).
// Blocks already mapped may have been added to the file, so they are
// written to avoid exposing stale data. Unlike Linux 2.6.12, which cleans
// the unmapped dirty buffers and so drops their data, we keep them dirty
// and redirty the page, so a later writeback can try again once there is
// space. The page gets PG_error and the mapping records err (later Linux's
// mapping_set_error here); err is returned.
//
// Preconditions: p is locked, not under writeback.
func writeFullPageRecover(p *pagecache.Page, m *pagecache.Mapping, head *Head, err error) error {
	redirty := false
	bh := head
	for {
		if bh.Has(Mapped) && bh.Has(Dirty) {
			bh.Lock()
			bh.Set(AsyncWrite)
		} else if bh.Has(Dirty) {
			redirty = true
		}
		bh = bh.next
		if bh == head {
			break
		}
	}
	p.SetError()
	SetMappingError(m, err)
	if redirty {
		p.SetDirty()
	}
	p.SetWriteback()
	p.Unlock()
	for {
		if bh.Has(AsyncWrite) {
			bh.Clear(Dirty)
		}
		bh = bh.next
		if bh == head {
			break
		}
	}
	submitPageWrites(p, head)
	return err
}

// readBHs reads the locked-free buffers bhs synchronously (ll_rw_block
// then wait_on_buffer for each): buffers already uptodate are skipped. It
// returns ErrReadFailed, wrapping the first cause, if any read failed.
func readBHs(bhs []*Head) error {
	if len(bhs) == 0 {
		return nil
	}
	done := make(chan error, len(bhs))
	queues := map[*block.Queue]bool{}
	for _, bh := range bhs {
		bh.Lock()
		if bh.Has(Uptodate) {
			bh.Unlock()
			done <- nil
			continue
		}
		queues[bh.Queue] = true
		submitBH(block.Read, bh, func(bh *Head, err error) { // end_buffer_read_sync
			if err == nil {
				bh.Set(Uptodate)
			} else {
				bh.Clear(Uptodate)
			}
			bh.Unlock()
			done <- err
		})
	}
	// wait_on_buffer runs the queue (sync_buffer) before sleeping.
	for q := range queues {
		if q != nil {
			q.Unplug()
		}
	}
	var first error
	for range bhs {
		if err := <-done; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		return fmt.Errorf("%w: %w", ErrReadFailed, first)
	}
	return nil
}

// BlockWriteBegin prepares bytes [from, to) of a locked page for a write
// that the caller copies in under the page lock (__block_write_begin, the
// 2.6.12 __block_prepare_write, followed by the buffer marking of
// __block_commit_write). Buffers are created if the page has none; the
// blocks overlapping [from, to) are mapped with get (create true); a newly
// allocated block has its underlying metadata alias dropped and its parts
// outside [from, to) zeroed; blocks partly overwritten that are not
// uptodate are read, synchronously. Then the buffers in range are marked
// uptodate and dirty (which dirties the page), and the page is marked
// uptodate if every buffer now is.
//
// On a get error the blocks newly allocated in range are zeroed and marked
// dirty so that stale disk contents cannot show through, and the error is
// returned; on a read error the error is returned and nothing is marked.
//
// Preconditions: p is locked and in its mapping.
func BlockWriteBegin(p *pagecache.Page, from, to int, get GetBlock) error {
	if from < 0 || to > pagecache.PageSize || from > to {
		return fmt.Errorf("%w: [%d, %d)", ErrRange, from, to)
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
	head := Buffers(p)
	if head == nil {
		head = createPageBuffers(p, blocksize)
	}
	blk := p.Index << (pagecache.PageShift - bits)
	var wait []*Head
	bh := head
	for blockStart := 0; ; blk++ {
		blockEnd := blockStart + blocksize
		if blockEnd <= from || blockStart >= to {
			if p.Uptodate() {
				bh.Set(Uptodate)
			}
			goto next
		}
		bh.Clear(New)
		if !bh.Has(Mapped) {
			if err = get(blk, bh, true); err != nil {
				writeBeginFailed(head, from, to)
				return err
			}
			if bh.Has(New) {
				UnmapUnderlyingMetadata(bh.Queue, bh.Blocknr)
				if p.Uptodate() {
					bh.Set(Uptodate)
					goto next
				}
				if blockEnd > to {
					clear(p.Data[to:blockEnd])
				}
				if blockStart < from {
					clear(p.Data[blockStart:from])
				}
				goto next
			}
		}
		if p.Uptodate() {
			bh.Set(Uptodate)
			goto next
		}
		if !bh.Has(Uptodate) && (blockStart < from || blockEnd > to) {
			wait = append(wait, bh)
		}
	next:
		blockStart = blockEnd
		bh = bh.next
		if bh == head {
			break
		}
	}
	// If we issued read requests, let them complete.
	if err := readBHs(wait); err != nil {
		return err
	}
	commitWrite(p, head, from, to)
	return nil
}

// writeBeginFailed zeroes the blocks newly allocated in [from, to) after a
// failed get, marking them uptodate and dirty (the "out" path of
// __block_prepare_write).
func writeBeginFailed(head *Head, from, to int) {
	blockStart := 0
	bh := head
	for {
		blockEnd := blockStart + bh.Size
		if blockStart >= to {
			break
		}
		if blockEnd > from && bh.Clear(New) {
			clear(bh.Data)
			bh.Set(Uptodate)
			markBufferDirty(bh)
		}
		blockStart = blockEnd
		bh = bh.next
		if bh == head {
			break
		}
	}
}

// commitWrite marks the buffers overlapping [from, to) uptodate and dirty,
// and the page uptodate when every buffer is (__block_commit_write).
func commitWrite(p *pagecache.Page, head *Head, from, to int) {
	partial := false
	blockStart := 0
	bh := head
	for {
		blockEnd := blockStart + bh.Size
		if blockEnd <= from || blockStart >= to {
			if !bh.Has(Uptodate) {
				partial = true
			}
		} else {
			bh.Set(Uptodate)
			bh.Clear(New)
			markBufferDirty(bh)
		}
		blockStart = blockEnd
		bh = bh.next
		if bh == head {
			break
		}
	}
	if !partial {
		p.SetUptodate()
	}
}

// markBufferDirty sets a page buffer dirty and, the first time, its page
// (mark_buffer_dirty, whose __set_page_dirty tags the page).
func markBufferDirty(bh *Head) {
	if bh.TestAndSet(Dirty) {
		return
	}
	if bh.Page != nil {
		bh.Page.SetDirty()
	}
}

// discardBuffer forgets a buffer's disk mapping and dirty state
// (discard_buffer).
func discardBuffer(bh *Head) {
	bh.Lock()
	bh.Clear(Dirty | Mapped | Req | New)
	bh.Queue = nil
	bh.Unlock()
}

// TryToFreeBuffers drops the buffers of a page when none is dirty or
// locked and the page is not under writeback, and reports whether the page
// has no buffers now (try_to_free_buffers). Write errors were already
// recorded on the mapping when the writes completed.
//
// Preconditions: p is locked.
func TryToFreeBuffers(p *pagecache.Page) bool {
	if p.Has(pagecache.Writeback) {
		return false
	}
	head := Buffers(p)
	if head == nil {
		return true
	}
	bh := head
	for {
		if bh.State()&(Dirty|Locked) != 0 { // buffer_busy
			return false
		}
		bh = bh.next
		if bh == head {
			break
		}
	}
	DropBuffers(p)
	return true
}

// InvalidatePage forgets the disk state of the buffers that lie wholly at
// or past byte offset of a page being truncated (block_invalidatepage): they
// lose their dirty and mapped state. With offset 0 the page's buffers are
// dropped when that is possible.
//
// Preconditions: p is locked.
func InvalidatePage(p *pagecache.Page, offset int) {
	head := Buffers(p)
	if head == nil {
		return
	}
	currOff := 0
	bh := head
	for {
		next := bh.next
		// Is this block fully invalidated?
		if offset <= currOff {
			discardBuffer(bh)
		}
		currOff += bh.Size
		bh = next
		if bh == head {
			break
		}
	}
	// The buffers are released only if the whole page is invalidated.
	if offset == 0 {
		TryToFreeBuffers(p)
	}
}

// BlockTruncatePage zeroes the part of the block at byte from that lies at
// or past from, so that a file truncated to from does not show stale bytes
// there if it grows again, and marks the block dirty (block_truncate_page).
// Nothing is done when from is on a block boundary or the block is a hole.
// A get error, which Linux 2.6.12 ignores, is returned.
func BlockTruncatePage(m *pagecache.Mapping, from int64, get GetBlock) error {
	bits, err := pageGeometry(m)
	if err != nil {
		return err
	}
	blocksize := 1 << bits
	index := from >> pagecache.PageShift
	offset := int(from & (pagecache.PageSize - 1))
	length := offset & (blocksize - 1)
	// Block boundary? Nothing to do.
	if length == 0 {
		return nil
	}
	length = blocksize - length
	iblock := index << (pagecache.PageShift - bits)

	p := m.FindOrCreate(index)
	defer p.Unlock()
	if !HasBuffers(p) {
		createPageBuffers(p, blocksize)
	}
	// Find the buffer that contains offset.
	bh := Buffers(p)
	for pos := blocksize; offset >= pos; pos += blocksize {
		bh = bh.next
		iblock++
	}
	if !bh.Has(Mapped) {
		if err := get(iblock, bh, false); err != nil {
			return err
		}
		// Unmapped? It's a hole: nothing to do.
		if !bh.Has(Mapped) {
			return nil
		}
	}
	// It's mapped. Make sure it's up to date.
	if p.Uptodate() {
		bh.Set(Uptodate)
	}
	if !bh.Has(Uptodate) {
		if err := readBHs([]*Head{bh}); err != nil {
			return err
		}
	}
	clear(p.Data[offset : offset+length])
	markBufferDirty(bh)
	return nil
}
