package mpage

import (
	"errors"
	"math"

	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/buffer"
	"github.com/mpagefs/mpage/pagecache"
)

// WritePageFunc is a filesystem's writepage: it writes one locked page
// whose dirty bit was cleared for I/O, sets writeback and unlocks it
// (writepage_t). buffer.WriteFullPage with the filesystem's mapper is the
// usual one.
type WritePageFunc func(p *pagecache.Page, wbc *pagecache.WritebackControl) error

// pagevecSize is how many dirty pages one look-up returns (PAGEVEC_SIZE).
const pagevecSize = 16

// writePage mirrors __mpage_writepage(). If the page goes into a bio it is
// under writeback and unlocked on return and the error is nil. Otherwise
// ("confused") the bio gathered so far is submitted and the page is handed
// to writepage; its error is recorded on the mapping (AS_ENOSPC or AS_EIO)
// and returned. With no writepage the page is left locked, its dirty bit
// still cleared, and ErrAgain is returned (the seed's -EAGAIN).
//
// Preconditions: p is locked and its dirty bit was cleared for I/O.
//
// mapBH is the head writePageToBio hands to get for a page without
// buffers: one per writepages call, so that it is not allocated per page.
func (d *mpageData) writePage(p *pagecache.Page, wbc *pagecache.WritebackControl, writepage WritePageFunc, mapBH *buffer.Head) error {
	m := p.Mapping()
	if m == nil {
		// Truncated away: nothing left to write.
		p.Unlock()
		return nil
	}
	if d.writePageToBio(p, m, mapBH) {
		return nil
	}
	// confused:
	if d.bio != nil {
		d.submit()
	}
	if writepage == nil {
		return ErrAgain
	}
	countFallback(m, true)
	err := writepage(p, wbc)
	// The caller has a reference on the mapping, so m is stable.
	if err != nil {
		buffer.SetMappingError(m, err)
	}
	return err
}

// writePageToBio is __mpage_writepage up to its "out:" label. It reports
// false where the seed jumps to "confused:", with the page still locked
// and nothing about it changed but possibly its blocks' allocation and
// the zeroed tail past end of file.
//
// If the page has buffers they give the disk mapping: we only take pages
// that are fully mapped and dirty, with a special case for pages that are
// unmapped at the end (end of file). If the page has no buffers (the
// preferred case) it is mapped here with get, allocating.
func (d *mpageData) writePageToBio(p *pagecache.Page, m *pagecache.Mapping, mapBH *buffer.Head) bool {
	bits, err := blockBits(m)
	if err != nil {
		return false
	}
	blocksPerPage := pagecache.PageSize >> bits
	blocksize := 1 << bits
	var blocks [maxBufPerPage]int64
	firstUnmapped := blocksPerPage
	var q *block.Queue
	boundary := false
	var boundaryBlock int64
	var boundaryQ *block.Queue
	size := m.Size()

	// The seed BUG()s on a page already under writeback; it cannot go
	// into a new bio, so the fallback (which waits) takes it.
	if p.Has(pagecache.Writeback) {
		return false
	}

	if head := buffer.Buffers(p); head != nil {
		// If they're all mapped and dirty, do it.
		pageBlock := 0
		bh := head
		for {
			// The seed BUG()s on a locked buffer; we fall back instead.
			if bh.Has(buffer.Locked) {
				return false
			}
			if !bh.Has(buffer.Mapped) {
				// Unmapped dirty buffers are created by
				// __set_page_dirty_buffers -> mmapped data.
				if bh.Has(buffer.Dirty) {
					return false // goto confused
				}
				if firstUnmapped == blocksPerPage {
					firstUnmapped = pageBlock
				}
			} else {
				if firstUnmapped != blocksPerPage {
					return false // hole -> non-hole: goto confused
				}
				if !bh.Has(buffer.Dirty) || !bh.Has(buffer.Uptodate) {
					return false // goto confused
				}
				if pageBlock > 0 && (bh.Blocknr != blocks[pageBlock-1]+1 || bh.Queue != q) {
					return false // goto confused
				}
				if bh.Queue == nil {
					return false
				}
				blocks[pageBlock] = bh.Blocknr
				pageBlock++
				boundary = bh.Has(buffer.Boundary)
				if boundary {
					boundaryBlock = bh.Blocknr
					boundaryQ = bh.Queue
				}
				q = bh.Queue
			}
			bh = bh.Next()
			if bh == head {
				break
			}
		}
		// Page has buffers, but they are all unmapped: the page was read
		// over a hole by block_read_full_page. Rare when the mapping also
		// uses mpage reads.
		if firstUnmapped == 0 {
			return false // goto confused
		}
	} else {
		// The page has no buffers: map it to disk. The seed BUG()s on a
		// page that is not uptodate; we let the fallback decide.
		if !p.Uptodate() {
			return false
		}
		blockInFile := p.Index << (pagecache.PageShift - bits)
		lastBlock := (size - 1) >> bits
		// Not in the seed: a page wholly past end of file would have all
		// its blocks allocated (the loop below stops only at
		// last_block) before page_is_mapped sends it to the fallback.
		// We send it there first.
		if blockInFile > lastBlock {
			return false // goto confused
		}
		// The seed's on-stack map_bh, which goes to get, a function
		// value: the caller's, so that it is not a heap allocation per
		// page.
		mapBH.Page = p
		mapBH.Size = blocksize
		pageBlock := 0
		for pageBlock < blocksPerPage {
			mapBH.SetState(0)
			mapBH.Blocknr, mapBH.Queue = 0, nil
			mapBH.Data = p.Data[pageBlock<<bits : (pageBlock+1)<<bits : (pageBlock+1)<<bits]
			if err := d.get(blockInFile, mapBH, true); err != nil {
				return false // goto confused
			}
			if !mapBH.Has(buffer.Mapped) || mapBH.Queue == nil {
				return false // the mapper did not map it: let the fallback fail
			}
			if mapBH.Has(buffer.New) {
				buffer.UnmapUnderlyingMetadata(mapBH.Queue, mapBH.Blocknr)
			}
			if mapBH.Has(buffer.Boundary) {
				boundaryBlock = mapBH.Blocknr
				boundaryQ = mapBH.Queue
			}
			if pageBlock > 0 && (mapBH.Blocknr != blocks[pageBlock-1]+1 || mapBH.Queue != q) {
				return false // goto confused
			}
			blocks[pageBlock] = mapBH.Blocknr
			pageBlock++
			boundary = mapBH.Has(buffer.Boundary)
			q = mapBH.Queue
			if blockInFile == lastBlock {
				break
			}
			blockInFile++
		}
		firstUnmapped = pageBlock
	}

	// page_is_mapped:
	endIndex := size >> pagecache.PageShift
	if p.Index >= endIndex {
		// The page straddles i_size. It must be zeroed out on each and
		// every writepage invocation because it may be mmapped: "A file
		// is mapped in multiples of the page size. For a file that is not
		// a multiple of the page size, the remaining memory is zeroed when
		// mapped, and writes to that region are not written out to the
		// file."
		offset := int(size & (pagecache.PageSize - 1))
		if p.Index > endIndex || offset == 0 {
			return false // goto confused
		}
		clear(p.Data[offset:])
	}

	// This page will go to BIO. Do we need to send this BIO off first?
	if d.bio != nil && (d.lastBlockInBio != blocks[0]-1 || d.q != q) {
		d.submit()
	}

	// alloc_new: we must try to add the page before marking the buffers
	// clean, or the confused path (no bio) would find them all clean and
	// write nothing.
	length := firstUnmapped << bits
	if !d.addPage(q, block.Write, blocks[0]<<(bits-block.SectorShift), q.NrVecs(), p, length) {
		return false // goto confused
	}

	// We have our bio, so we can now mark the buffers clean. Make sure
	// to only clean buffers which we know we'll be writing.
	if head := buffer.Buffers(p); head != nil {
		bh := head
		for counter := 0; counter < firstUnmapped; counter++ {
			bh.Clear(buffer.Dirty)
			bh = bh.Next()
		}
		// The seed frees the buffers here when buffer_heads_over_limit;
		// we keep no global buffer-head limit.
	}

	p.SetWriteback()
	p.Unlock()
	if boundary || firstUnmapped != blocksPerPage {
		d.submit()
		if boundaryBlock != 0 && boundaryQ != nil {
			buffer.WriteBoundaryBlock(boundaryQ, boundaryBlock, blocksize)
		}
	} else {
		d.lastBlockInBio = blocks[blocksPerPage-1]
	}
	return true // out:
}

// WritePage mirrors mpage_writepage(): it writes one locked page whose
// dirty bit was cleared for I/O in a bio of its own. When the page cannot
// go into a bio it returns ErrAgain with the page still locked; the caller
// then writes it with its writepage (buffer.WriteFullPage).
func WritePage(p *pagecache.Page, get buffer.GetBlock, wbc *pagecache.WritebackControl) error {
	d := mpageData{get: get}
	err := d.writePage(p, wbc, nil, new(buffer.Head))
	if d.bio != nil {
		d.submit()
	}
	d.finishPlug()
	return err
}

// tagger is the optional ability of a page cache to tag the dirty pages of
// a range for an integrity sync (tag_pages_for_writeback), so that pages
// dirtied while the sync runs do not keep it going forever.
type tagger interface {
	TagToWrite(start, end int64) int
}

// WritePages mirrors __mpage_writepages() (mpage_writepages): it walks the
// dirty pages of m under wbc and writes them, building multi-page bios with
// get and handing confused pages to writepage. With a nil get every page
// goes to writepage (the seed's a_ops->writepage path). With a nil
// writepage a confused page cannot be written: it is redirtied and
// unlocked, and the pass ends with ErrAgain.
//
// The loop follows later Linux (write_cache_pages in mm/page-writeback.c)
// where it improved on the seed, as each comment below notes:
//
//   - the range is wbc.RangeStart..wbc.RangeEnd, inclusive (whole file when
//     both are zero and the pass is not cyclic);
//   - a RangeCyclic pass starts at m.WritebackIndex(), wraps to the start
//     once, and records where the next one should start;
//   - a SyncAll pass writes the pages tagged TagToWrite at its start when
//     the page cache can tag them, waits for pages under writeback, is
//     not cut short by NrToWrite, and continues past errors, returning the
//     first one;
//   - a SyncNone pass skips pages under writeback, stops when NrToWrite
//     reaches zero and stops at the first error (the seed stops at the
//     first error in both modes);
//   - a Nonblocking pass stops and sets EncounteredCongestion when the
//     device is congested for writes, before it starts and after each
//     page (the seed's check, which later Linux moved elsewhere).
//
// The call ends by dispatching its bios (later Linux's blk_finish_plug),
// unless a block.Plug is held on the queue: then they stay queued to merge
// with the next call's (UnplugBatch).
//
// wbc.PagesWritten counts the pages handed to I/O.
func WritePages(m *pagecache.Mapping, wbc *pagecache.WritebackControl, get buffer.GetBlock, writepage WritePageFunc) error {
	if get == nil && writepage == nil {
		return ErrNoGetBlock
	}
	if wbc.Nonblocking && m.WriteCongested() {
		wbc.EncounteredCongestion = true
		return nil
	}

	d := mpageData{get: get}
	mapBH := new(buffer.Head)
	var ret error
	done := false

	// Later Linux: range_cyclic starts at writeback_index and wraps once
	// ("cycled"); a range is inclusive of its end page.
	var index, end, writebackIndex int64
	cycled := true
	rangeWhole := false
	switch {
	case wbc.RangeCyclic:
		writebackIndex = m.WritebackIndex()
		index = writebackIndex
		cycled = index == 0
		end = math.MaxInt64
	case wbc.RangeStart == 0 && wbc.RangeEnd == 0:
		end = math.MaxInt64
		rangeWhole = true
	default:
		index = wbc.RangeStart >> pagecache.PageShift
		end = wbc.RangeEnd >> pagecache.PageShift
		rangeWhole = wbc.RangeStart == 0 && wbc.RangeEnd == math.MaxInt64
	}

	// Later Linux: an integrity sync writes the pages that were dirty when
	// it started, tagged TOWRITE, if the page cache can tag them.
	tag := pagecache.TagDirty
	tg, canTag := any(m).(tagger)
	if wbc.SyncMode == pagecache.SyncAll && canTag {
		tag = pagecache.TagToWrite
	}

retry:
	if tag == pagecache.TagToWrite {
		tg.TagToWrite(index, end)
	}
	doneIndex := index
	for !done && index <= end {
		pages := m.LookupTag(&index, end, tag, pagevecSize)
		if len(pages) == 0 {
			break
		}
		for _, p := range pages {
			doneIndex = p.Index

			// We hold no lock on the page yet: it may have been
			// truncated or invalidated meanwhile (mapping changed).
			p.Lock()
			if p.Mapping() != m {
				p.Unlock()
				continue
			}
			if p.Index > end {
				done = true
				p.Unlock()
				continue
			}
			// Later Linux: someone wrote it for us.
			if !p.Has(pagecache.Dirty) {
				p.Unlock()
				continue
			}
			if p.Has(pagecache.Writeback) {
				if wbc.SyncMode == pagecache.SyncNone {
					p.Unlock()
					continue
				}
				// The page may sit in a request queued under a
				// held block.Plug: run the queue before sleeping on
				// it, as wait_on_page_writeback did through
				// sync_page in 2.6.12.
				if d.q != nil {
					d.q.Unplug()
				}
				p.WaitWriteback()
			}
			if !p.ClearDirtyForIO() {
				p.Unlock()
				continue
			}

			var err error
			if get == nil {
				err = writepage(p, wbc)
				if err != nil {
					buffer.SetMappingError(m, err)
				}
			} else {
				err = d.writePage(p, wbc, writepage, mapBH)
				if errors.Is(err, ErrAgain) {
					// No writepage to fall back to: keep the page dirty
					// and let it go.
					p.SetDirty()
					p.Unlock()
				}
			}
			if err == nil {
				wbc.PagesWritten++
			} else {
				if ret == nil {
					ret = err
				}
				// Later Linux: background writeback stops at an error;
				// integrity writeback must process the whole dirty set
				// and returns the first error. The seed stops in both.
				if wbc.SyncMode != pagecache.SyncAll {
					doneIndex = p.Index + 1
					done = true
					break
				}
			}
			// Later Linux: only a non-integrity pass is cut short by the
			// budget.
			wbc.NrToWrite--
			if wbc.NrToWrite <= 0 && wbc.SyncMode == pagecache.SyncNone {
				doneIndex = p.Index + 1
				done = true
				break
			}
			if wbc.Nonblocking && m.WriteCongested() {
				wbc.EncounteredCongestion = true
				doneIndex = p.Index + 1
				done = true
				break
			}
		}
	}
	if !cycled && !done {
		// We hit the last page and there is more work to be done: wrap
		// back to the start of the file, up to where this pass began.
		cycled = true
		index = 0
		end = writebackIndex - 1
		goto retry
	}
	// Later Linux: a pass that wrote everything leaves the next cyclic
	// pass to start at the beginning.
	if wbc.RangeCyclic && !done {
		doneIndex = 0
	}
	if wbc.RangeCyclic || (rangeWhole && wbc.NrToWrite > 0) {
		m.SetWritebackIndex(doneIndex)
	}
	if d.bio != nil {
		d.submit()
	}
	d.finishBatch()
	return ret
}
