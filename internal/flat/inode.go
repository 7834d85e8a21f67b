package flat

import (
	"fmt"
	"sort"
	"sync"

	"github.com/mpagefs/mpage/buffer"
	"github.com/mpagefs/mpage/mpage"
	"github.com/mpagefs/mpage/pagecache"
)

// inode is one file of the filesystem.
type inode struct {
	// Never change after New.
	fs       *FS
	name     string
	extents  []Extent
	firsts   []int64 // firsts[i]: the file block that extents[i] starts with
	capacity int64   // blocks in all extents
	initSize int64
	m        *pagecache.Mapping

	// rw is i_rwsem: writers hold it shared (they run in parallel, see the
	// package doc), Truncate exclusively.
	rw sync.RWMutex

	allocMu sync.Mutex // guards alloc; a leaf
	alloc   []uint64   // bitmap of allocated file blocks
}

func newInode(fsys *FS, spec FileSpec, capacity int64) *inode {
	ino := &inode{
		fs:       fsys,
		name:     spec.Name,
		extents:  append([]Extent(nil), spec.Extents...),
		capacity: capacity,
		initSize: spec.Size,
		alloc:    make([]uint64, (capacity+63)/64),
	}
	var first int64
	for _, e := range ino.extents {
		ino.firsts = append(ino.firsts, first)
		first += e.Len
	}
	used := (spec.Size + int64(fsys.BlockSize()) - 1) >> fsys.blockBits
	for b := int64(0); b < used; b++ {
		ino.alloc[b/64] |= 1 << (b % 64)
	}
	return ino
}

// devBlock maps file block iblock to its device block through the extent
// table; false when iblock lies past the extents.
func (ino *inode) devBlock(iblock int64) (int64, bool) {
	dev, _, ok := ino.devRun(iblock)
	return dev, ok
}

// devRun maps file block iblock to its device block and says how many
// blocks from it on lie contiguously in the same extent; false when
// iblock lies past the extents.
func (ino *inode) devRun(iblock int64) (dev, left int64, ok bool) {
	if iblock < 0 || iblock >= ino.capacity {
		return 0, 0, false
	}
	i := sort.Search(len(ino.firsts), func(i int) bool { return ino.firsts[i] > iblock }) - 1
	in := iblock - ino.firsts[i]
	return ino.extents[i].Start + in, ino.extents[i].Len - in, true
}

// getBlock is the file's block mapper (the get_block_t handed to mpage
// and buffer, as fs/ext2/inode.c:ext2_get_block is): it maps file block
// iblock to its device block. An unallocated block is a hole (bh left
// unmapped) unless create, which allocates it and sets buffer.New. A block
// past the file's extents is a hole for reads and ErrNoSpace for create.
// As ext2_get_block, it maps up to bh.Size bytes of blocks from iblock
// that are contiguous on the device (in one extent) and all allocated, or
// all newly allocated, and sets bh.Size to the bytes mapped.
func (ino *inode) getBlock(iblock int64, bh *buffer.Head, create bool) error {
	dev, left, ok := ino.devRun(iblock)
	if !ok {
		if create {
			return fmt.Errorf("file %q block %d: %w", ino.name, iblock, ErrNoSpace)
		}
		return nil
	}
	maxBlocks := min(max(int64(bh.Size>>ino.fs.blockBits), 1), left)
	isSet := func(b int64) bool { return ino.alloc[b/64]&(1<<(b%64)) != 0 }
	ino.allocMu.Lock()
	allocated := isSet(iblock)
	fresh := !allocated && create
	count := int64(0)
	if allocated || fresh {
		count = 1
		for count < maxBlocks && isSet(iblock+count) == allocated {
			count++
		}
	}
	if fresh {
		for b := iblock; b < iblock+count; b++ {
			ino.alloc[b/64] |= 1 << (b % 64)
		}
	}
	ino.allocMu.Unlock()
	if count == 0 {
		return nil
	}
	bh.Map(ino.fs.q, dev)
	bh.Size = int(count) << ino.fs.blockBits
	if fresh {
		bh.Set(buffer.New)
	}
	return nil
}

// freeFrom frees the allocated blocks at and past file block first
// (ext2_truncate_blocks).
func (ino *inode) freeFrom(first int64) {
	ino.allocMu.Lock()
	defer ino.allocMu.Unlock()
	for b := max(first, 0); b < ino.capacity; b++ {
		if b%64 == 0 && b+64 <= ino.capacity {
			ino.alloc[b/64] = 0
			b += 63
			continue
		}
		ino.alloc[b/64] &^= 1 << (b % 64)
	}
}

// allocated reports how many blocks of the file are allocated (i_blocks,
// in file blocks).
func (ino *inode) allocated() int64 {
	ino.allocMu.Lock()
	defer ino.allocMu.Unlock()
	var n int64
	for _, w := range ino.alloc {
		for ; w != 0; w &= w - 1 {
			n++
		}
	}
	return n
}

// truncate sets the file size (ext2_setsize): a shrink first zeroes the
// tail of the block that holds the new end (block_truncate_page), then
// drops the pages past it (truncate_setsize) and frees the blocks wholly
// past it (ext2_truncate_blocks); a growth only moves the size, leaving a
// hole.
func (ino *inode) truncate(size int64) error {
	if size < 0 {
		return fmt.Errorf("%w: truncate %s to %d", ErrInvalid, ino.name, size)
	}
	if size > ino.capacity<<ino.fs.blockBits {
		return fmt.Errorf("truncate %s to %d: %w", ino.name, size, ErrNoSpace)
	}
	ino.rw.Lock()
	defer ino.rw.Unlock()
	old := ino.m.Size()
	if size >= old {
		ino.m.SetSize(size)
		return nil
	}
	if err := buffer.BlockTruncatePage(ino.m, size, ino.getBlock); err != nil {
		return fmt.Errorf("flat: truncate %s to %d: %w", ino.name, size, err)
	}
	ino.m.Truncate(size)
	ino.freeFrom((size + int64(ino.fs.BlockSize()) - 1) >> ino.fs.blockBits)
	return nil
}

// aops are the file's address_space_operations, ext2_aops's.
type aops struct {
	ino *inode
}

var (
	_ pagecache.Operations         = (*aops)(nil)
	_ pagecache.WriteBeginner      = (*aops)(nil)
	_ pagecache.BatchWriteBeginner = (*aops)(nil)
)

// ReadPage mirrors fs/ext2/inode.c:ext2_readpage() → mpage_readpage().
func (a *aops) ReadPage(p *pagecache.Page) error { return mpage.ReadPage(p, a.ino.getBlock) }

// ReadPages mirrors ext2_readpages() → mpage_readpages().
func (a *aops) ReadPages(m *pagecache.Mapping, pages []*pagecache.Page) error {
	return mpage.ReadPages(m, pages, a.ino.getBlock)
}

// WritePage mirrors ext2_writepage() → block_write_full_page().
func (a *aops) WritePage(p *pagecache.Page, wbc *pagecache.WritebackControl) error {
	return buffer.WriteFullPage(p, a.ino.getBlock, wbc)
}

// WritePages mirrors ext2_writepages() → mpage_writepages(), with
// WritePage for the pages mpage cannot put in a bio.
func (a *aops) WritePages(m *pagecache.Mapping, wbc *pagecache.WritebackControl) error {
	return mpage.WritePages(m, wbc, a.ino.getBlock, a.WritePage)
}

// WriteBegin mirrors ext2_write_begin() → block_write_begin(), or
// nobh_write_begin() for a write of a whole page (ext2 mounted nobh):
// the blocks are allocated now either way.
func (a *aops) WriteBegin(p *pagecache.Page, from, to int) error {
	return buffer.NobhWriteBegin(p, from, to, a.ino.getBlock)
}

// WriteBeginBatch is WriteBegin for a run of new pages written whole: their
// blocks are mapped and allocated a contiguous run at a time.
func (a *aops) WriteBeginBatch(pages []*pagecache.Page) (int, error) {
	return buffer.NobhWriteBeginPages(pages, a.ino.getBlock)
}
