package pagecache

import (
	"errors"
	"fmt"
	"math"
)

// Read copies file bytes at off into buf through the page cache and
// returns how many it copied, stopping at end of file
// (mm/filemap.c:generic_file_buffered_read, do_generic_mapping_read in
// 2.6.12). A missed page starts synchronous readahead (and, if readahead
// could not bring it, is read alone with ops.ReadPage); reaching a page
// with the Readahead marker starts the next window asynchronously. A page
// that is not uptodate after its read fails the call with a *PageError
// wrapping ErrIO. ra may be nil: the call then uses a fresh state.
//
// Unlike Linux, each copy out of a page is made with the page locked, so
// that a writer changing the page's bytes never races with it (Go's memory
// model has no benign races).
func (m *Mapping) Read(ra *ReadaheadState, buf []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%w: read at offset %d", ErrInvalid, off)
	}
	if len(buf) == 0 {
		return 0, nil
	}
	if ra == nil {
		ra = NewReadaheadState(0)
	}
	done := 0
	endPos := off + int64(len(buf))
	if endPos < off { // overflow
		endPos = math.MaxInt64
	}
	lastIndex := (endPos-1)>>PageShift + 1
	prevIndex := int64(-1)
	for done < len(buf) {
		pos := off + int64(done)
		size := m.Size()
		if pos >= size {
			break
		}
		index := pos >> PageShift
		p, err := m.readGetPage(ra, index, int(lastIndex-index))
		if err != nil {
			return done, err
		}
		p.Lock()
		if p.Mapping() != m || !p.Uptodate() {
			// Truncated or evicted (and maybe already read again) since
			// we found it: look it up again.
			p.Unlock()
			continue
		}
		// Size again, now that the page is uptodate: a truncate may have
		// moved the end (i_size_read after the page is found).
		size = m.Size()
		offset := int(pos & (PageSize - 1))
		nr := min(int64(PageSize-offset), size-pos, int64(len(buf)-done))
		if nr <= 0 {
			p.Unlock()
			break
		}
		copy(buf[done:done+int(nr)], p.Data[offset:offset+int(nr)])
		p.Unlock()
		if index != prevIndex {
			p.set(Referenced) // mark_page_accessed, once per page read
			prevIndex = index
		}
		done += int(nr)
		ra.setPrevPos(off + int64(done))
	}
	return done, nil
}

// readGetPage finds the page at index for Read, reading it if needed, and
// returns it uptodate (though by the time the caller locks it, it may have
// been truncated).
func (m *Mapping) readGetPage(ra *ReadaheadState, index int64, reqCount int) (*Page, error) {
	for {
		p := m.lookup(index)
		if p == nil {
			m.PageCacheSyncReadahead(ra, index, reqCount)
			p = m.lookup(index)
		}
		if p == nil {
			// no_cached_page: readahead did not bring it (off, or no
			// memory it could take without waiting).
			p = m.NewPage(index)
			if err := m.AddPage(p); err != nil {
				if errors.Is(err, ErrExist) {
					continue
				}
				p.Release()
				return nil, err
			}
			if err := m.readPageLocked(p); err != nil {
				return nil, err
			}
			if p.Mapping() == nil {
				continue
			}
			return p, nil
		}
		if p.Has(Readahead) {
			m.PageCacheAsyncReadahead(ra, p, index, reqCount)
		}
		if p.Uptodate() {
			return p, nil
		}
		// page_not_up_to_date: wait for the read under way, or do it.
		p.Lock()
		if p.Mapping() != m {
			p.Unlock()
			continue
		}
		if p.Uptodate() {
			p.Unlock()
			return p, nil
		}
		if err := m.readPageLocked(p); err != nil {
			return nil, err
		}
		if p.Mapping() == nil {
			continue
		}
		return p, nil
	}
}

// readPageLocked reads a locked page with ops.ReadPage, waits for the read
// and checks the result (the readpage: label of do_generic_mapping_read).
// The page is unlocked on return.
func (m *Mapping) readPageLocked(p *Page) error {
	p.ClearError()
	if err := m.ops.ReadPage(p); err != nil {
		return &PageError{Op: "read", Index: p.Index, Err: err}
	}
	p.WaitUnlocked()
	if !p.Uptodate() && p.Mapping() != nil {
		return &PageError{Op: "read", Index: p.Index, Err: ErrIO}
	}
	return nil
}

// Write copies buf into the file at off through the page cache, page by
// page, and returns how many bytes it wrote
// (mm/filemap.c:generic_perform_write). For each page it:
//
//   - finds or creates the page, locked, and waits for writeback of it to
//     end so that the bytes under I/O stay stable (wait_for_stable_page);
//   - when the write does not cover the page and the page is not uptodate,
//     reads it with ops.ReadPage if it lies within Size, or zeroes it if it
//     lies wholly past end of file (block_write_begin's job in Linux);
//   - calls ops.WriteBegin if ops is a WriteBeginner (write_begin), whose
//     error stops the write before this page;
//   - copies the bytes in, sets Uptodate and Dirty, extends Size, unlocks
//     (generic_write_end), and throttles in BalanceDirty
//     (balance_dirty_pages_ratelimited).
//
// The page is read before WriteBegin, not after: blocks WriteBegin has
// just allocated hold stale disk bytes that must not be read in.
// Concurrent writers to one file must be serialized by the caller (the
// inode lock) if they need POSIX ordering; the cache itself stays
// consistent either way.
func (m *Mapping) Write(buf []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%w: write at offset %d", ErrInvalid, off)
	}
	if int64(len(buf)) > math.MaxInt64-off {
		return 0, fmt.Errorf("%w: write of %d bytes at offset %d", ErrTooLarge, len(buf), off)
	}
	wb, _ := m.ops.(WriteBeginner)
	batch := m.cache.writeBatchLimit()
	done := 0
	for done < len(buf) {
		pos := off + int64(done)
		index := pos >> PageShift
		offset := int(pos & (PageSize - 1))
		if whole := (len(buf) - done) / PageSize; offset == 0 && whole > 1 && index <= MaxIndex {
			whole = int(min(int64(min(whole, batch)), MaxIndex-index+1))
			k, err := m.writeWholePages(wb, buf[done:done+whole*PageSize], index)
			done += k
			if err != nil {
				return done, err
			}
			if k > 0 {
				m.cache.BalanceDirty()
				continue
			}
		}
		n := min(PageSize-offset, len(buf)-done)
		p, err := m.writeGetPage(index, offset, n)
		if err != nil {
			return done, err
		}
		if wb != nil {
			if err := wb.WriteBegin(p, offset, offset+n); err != nil {
				p.Unlock()
				return done, err
			}
		}
		copy(p.Data[offset:offset+n], buf[done:done+n])
		p.SetUptodate()
		p.SetDirty()
		m.extendSize(pos + int64(n))
		p.Unlock()
		done += n
		m.cache.BalanceDirty()
	}
	return done, nil
}

// writeGetPage returns the page at index locked, not under writeback, and
// ready for bytes [offset, offset+n) to be written into it
// (grab_cache_page_write_begin + the read of block_write_begin).
func (m *Mapping) writeGetPage(index int64, offset, n int) (*Page, error) {
	for {
		// A page the write covers whole need not be zeroed first.
		p := m.findOrCreate(index, offset != 0 || n != PageSize)
		if p == nil {
			return nil, fmt.Errorf("%w: page index %d", ErrTooLarge, index)
		}
		p.WaitWriteback()
		if p.Uptodate() || (offset == 0 && n == PageSize) {
			return p, nil
		}
		if index<<PageShift >= m.Size() {
			// Wholly past end of file: its contents are zeroes.
			clear(p.Data)
			p.SetUptodate()
			return p, nil
		}
		if err := m.readPageLocked(p); err != nil {
			return nil, err
		}
		p.Lock()
		if p.Mapping() != m {
			p.Unlock()
			continue
		}
		if !p.Uptodate() {
			p.Unlock()
			return nil, &PageError{Op: "write", Index: index, Err: ErrIO}
		}
		// Writeback may have started while the page was unlocked; the
		// loop waits again.
		if p.Has(Writeback) {
			p.Unlock()
			continue
		}
		return p, nil
	}
}
