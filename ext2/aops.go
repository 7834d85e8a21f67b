package ext2

import (
	"github.com/mpagefs/mpage/buffer"
	"github.com/mpagefs/mpage/mpage"
	"github.com/mpagefs/mpage/pagecache"
	"github.com/mpagefs/mpage/writeback"
)

// aops are ext2's address_space_operations for regular files (ext2_aops
// in fs/ext2/inode.c): reads and writeback go through fs/mpage.c with
// ext2_get_block as the block mapper, the per-page fallback through the
// buffer layer.
type aops struct {
	ino *Inode
	// getBlock is ino.getBlock as a function value, made once: a method
	// value built in each call is an allocation per page read.
	getBlock buffer.GetBlock
}

var (
	_ pagecache.Operations         = (*aops)(nil)
	_ pagecache.WriteBeginner      = (*aops)(nil)
	_ pagecache.BatchWriteBeginner = (*aops)(nil)
	_ mpage.FallbackCounter        = (*aops)(nil)
)

// newMapping gives a regular file inode its page cache mapping, with
// ext2_aops, the device as backing, the buffer layer's invalidatepage for
// truncation, and registers it with the flusher.
func (fs *FS) newMapping(ino *Inode) {
	m := fs.pc.NewMapping(&aops{ino: ino, getBlock: ino.getBlock}, fs.blockBits)
	m.SetBacking(fs.q)
	m.SetInvalidatePage(buffer.InvalidatePage)
	ino.m = m
	if fs.flusher != nil {
		fs.flusher.Register(m)
	}
}

// ReadPage mirrors fs/ext2/inode.c:ext2_readpage() → mpage_readpage().
func (a *aops) ReadPage(p *pagecache.Page) error {
	return mpage.ReadPage(p, a.getBlock)
}

// ReadPages mirrors fs/ext2/inode.c:ext2_readpages() → mpage_readpages().
func (a *aops) ReadPages(m *pagecache.Mapping, pages []*pagecache.Page) error {
	return mpage.ReadPages(m, pages, a.getBlock)
}

// WritePage mirrors fs/ext2/inode.c:ext2_writepage() →
// block_write_full_page().
func (a *aops) WritePage(p *pagecache.Page, wbc *pagecache.WritebackControl) error {
	err := buffer.WriteFullPage(p, a.getBlock, wbc)
	a.ino.fs.unpark(a.ino)
	return err
}

// WritePages mirrors fs/ext2/inode.c:ext2_writepages() →
// mpage_writepages(), with WritePage as the fallback for pages mpage
// cannot put in a bio.
//
// An inode that shrinkInodes parked for its dirty pages goes back on the
// inode cache's unused list once they are written.
func (a *aops) WritePages(m *pagecache.Mapping, wbc *pagecache.WritebackControl) error {
	err := mpage.WritePages(m, wbc, a.getBlock, a.writePage)
	a.ino.fs.unpark(a.ino)
	return err
}

// writePage is WritePage without the unpark, for WritePages' fallback.
func (a *aops) writePage(p *pagecache.Page, wbc *pagecache.WritebackControl) error {
	return buffer.WriteFullPage(p, a.getBlock, wbc)
}

// WriteBegin mirrors fs/ext2/inode.c:ext2_write_begin() →
// block_write_begin(): the blocks under [from, to) of the locked page are
// allocated now, so a full filesystem fails the write rather than the
// later writeback. A write of a whole page of a page without buffers
// attaches none (ext2_nobh_write_begin → nobh_write_begin, which ext2
// used when mounted with nobh): writeback maps the page again with
// ext2_get_block when it builds its bio.
func (a *aops) WriteBegin(p *pagecache.Page, from, to int) error {
	return buffer.NobhWriteBegin(p, from, to, a.getBlock)
}

// WriteBeginBatch is WriteBegin for a run of new pages written whole
// (Mapping.Write's batches): ext2_get_block maps and allocates their
// blocks a contiguous run at a time (ext2_get_blocks with the run's
// length), where WriteBegin per page calls it once per block.
func (a *aops) WriteBeginBatch(pages []*pagecache.Page) (int, error) {
	return buffer.NobhWriteBeginPages(pages, a.getBlock)
}

// syncData writes the inode's dirty pages and waits for them
// (filemap_write_and_wait).
func (ino *Inode) syncData() error {
	if ino.m == nil {
		return nil
	}
	return writeback.SyncMapping(ino.m)
}

// FallbackRead counts a page that mpage read block by block
// (block_read_full_page), for FS.FallbackPages.
func (a *aops) FallbackRead() { a.ino.fs.fallback.reads.Add(1) }

// FallbackWrite counts a page that mpage handed to WritePage, for
// FS.FallbackPages.
func (a *aops) FallbackWrite() { a.ino.fs.fallback.writes.Add(1) }

// FallbackPages returns how many pages of file data took the per-block
// (buffer head) path since mount, because their blocks were not one
// contiguous run on disk or the page already had buffers: read with
// block_read_full_page, written with ext2_writepage. The counts are those
// of mpage's "confused" pages; a file laid out contiguously adds none.
func (fs *FS) FallbackPages() (read, write int64) {
	return fs.fallback.reads.Load(), fs.fallback.writes.Load()
}
