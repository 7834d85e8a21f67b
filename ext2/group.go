package ext2

import (
	"fmt"
	"sync"

	"github.com/mpagefs/mpage/buffer"
	"github.com/mpagefs/mpage/ext2/layout"
)

// group is one block group: where its metadata lives and its descriptor.
type group struct {
	// Set at mount, never changed after.
	n           uint32
	first, last int64 // first and last block of the group
	blockBitmap int64
	inodeBitmap int64
	inodeTable  int64
	metaEnd     int64 // first block after the superblock backup and descriptors, or first

	// mu guards desc and the bits of both bitmaps of the group, and
	// bitmapChecked (sb_bgl_lock in Linux).
	mu            sync.Mutex
	desc          layout.GroupDesc
	bitmapChecked bool // the block bitmap passed ext2_valid_block_bitmap
}

// groupFirstBlock is ext2_group_first_block_no().
func (fs *FS) groupFirstBlock(g uint32) int64 {
	return int64(g)*int64(fs.blocksPerGroup) + int64(fs.firstDataBlock)
}

// groupOfBlock returns the group holding block blk.
func (fs *FS) groupOfBlock(blk int64) uint32 {
	return uint32((blk - int64(fs.firstDataBlock)) / int64(fs.blocksPerGroup))
}

// groupHasSuper reports whether group g holds a superblock backup
// (ext2_bg_has_super): every group without sparse_super, else groups 0, 1
// and the powers of 3, 5 and 7.
func (fs *FS) groupHasSuper(g uint32) bool {
	if g <= 1 || !fs.sparseSuper {
		return true
	}
	if g%2 == 0 {
		return false
	}
	for _, base := range []uint32{3, 5, 7} {
		n := base
		for n < g {
			n *= base
		}
		if n == g {
			return true
		}
	}
	return false
}

// readGroups reads the group descriptors and checks them, mirroring
// fs/ext2/super.c:ext2_check_descriptors(): each group's bitmaps and inode
// table must lie inside the group (the last group ends at the last block
// of the filesystem). Errors name the group.
func (fs *FS) readGroups() error {
	fs.groups = make([]*group, fs.groupsCount)
	per := fs.blockSize / layout.GroupDescSize
	for b := int64(0); b < fs.descBlocks; b++ {
		blk := fs.readDescAt + b
		bh, err := fs.bc.Bread(blk)
		if err != nil {
			return fmt.Errorf("ext2: reading group descriptor block %d: %w", blk, err)
		}
		for i := 0; i < per; i++ {
			g := b*int64(per) + int64(i)
			if g >= int64(fs.groupsCount) {
				break
			}
			d, err := layout.DecodeGroupDesc(bh.Data[i*layout.GroupDescSize:])
			if err != nil {
				fs.bc.Release(bh)
				return err
			}
			fs.groups[g] = &group{n: uint32(g), desc: *d}
		}
		fs.bc.Release(bh)
	}
	for _, g := range fs.groups {
		if err := fs.checkGroup(g); err != nil {
			return err
		}
	}
	return nil
}

// checkGroup checks one group descriptor (ext2_check_descriptors) and
// fills in the group's fixed fields.
func (fs *FS) checkGroup(g *group) error {
	first := fs.groupFirstBlock(g.n)
	last := first + int64(fs.blocksPerGroup) - 1
	if g.n == fs.groupsCount-1 {
		last = int64(fs.blocksCount) - 1
	}
	g.first, g.last = first, last
	g.blockBitmap = int64(g.desc.BlockBitmap)
	g.inodeBitmap = int64(g.desc.InodeBitmap)
	g.inodeTable = int64(g.desc.InodeTable)
	descOff := func(field int) int64 {
		return fs.readDescAt*int64(fs.blockSize) + int64(g.n)*layout.GroupDescSize + int64(field)
	}
	bad := func(field int, blk int64, format string, args ...any) error {
		w := atGroup(g.n)
		w.block = blk
		w.offset = descOff(field)
		return fs.corrupt(w, nil, format, args...)
	}
	if g.blockBitmap < first || g.blockBitmap > last {
		return bad(0, g.blockBitmap, "block bitmap at block %d is not in the group (blocks %d-%d)", g.blockBitmap, first, last)
	}
	if g.inodeBitmap < first || g.inodeBitmap > last {
		return bad(4, g.inodeBitmap, "inode bitmap at block %d is not in the group (blocks %d-%d)", g.inodeBitmap, first, last)
	}
	if g.inodeTable < first || g.inodeTable+int64(fs.itbPerGroup)-1 > last {
		return bad(8, g.inodeTable, "inode table at blocks %d-%d is not in the group (blocks %d-%d)",
			g.inodeTable, g.inodeTable+int64(fs.itbPerGroup)-1, first, last)
	}
	if int64(g.desc.FreeBlocksCount) > last-first+1 {
		return bad(12, -1, "free blocks count %d is more than the %d blocks of the group", g.desc.FreeBlocksCount, last-first+1)
	}
	if uint32(g.desc.FreeInodesCount) > fs.inodesPerGroup {
		return bad(14, -1, "free inodes count %d is more than the %d inodes of the group", g.desc.FreeInodesCount, fs.inodesPerGroup)
	}
	g.metaEnd = first
	if fs.groupHasSuper(g.n) {
		// The superblock (with the boot sector, in block 0 of a
		// filesystem of blocks above 1 KiB), descriptors and reserved
		// descriptor blocks.
		g.metaEnd = first + 1 + fs.descBlocks + fs.reservedGDT
	}
	return nil
}

// isSystemBlock reports whether the blocks [blk, blk+n) of group g touch
// its fixed metadata: superblock backup, descriptors, reserved GDT blocks,
// bitmaps or inode table (ext2_new_blocks' "Allocating block in system
// zone" check).
func (fs *FS) isSystemBlock(g *group, blk, n int64) bool {
	end := blk + n
	overlaps := func(start, count int64) bool { return blk < start+count && start < end }
	return overlaps(g.first, g.metaEnd-g.first) ||
		overlaps(g.blockBitmap, 1) ||
		overlaps(g.inodeBitmap, 1) ||
		overlaps(g.inodeTable, int64(fs.itbPerGroup))
}

// readBlockBitmap reads the block bitmap of g, checking the first time
// that the bits of the group's own bitmaps and inode table are set, as
// fs/ext2/balloc.c:read_block_bitmap() and ext2_valid_block_bitmap() do.
// Preconditions: g.mu is held.
func (fs *FS) readBlockBitmapLocked(g *group) (*buffer.Head, error) {
	bh, err := fs.bc.Bread(g.blockBitmap)
	if err != nil {
		return nil, fmt.Errorf("ext2: reading the block bitmap of group %d at block %d: %w", g.n, g.blockBitmap, err)
	}
	if g.bitmapChecked {
		return bh, nil
	}
	for _, m := range []struct {
		name       string
		start, cnt int64
	}{
		{"block bitmap", g.blockBitmap, 1},
		{"inode bitmap", g.inodeBitmap, 1},
		{"inode table", g.inodeTable, int64(fs.itbPerGroup)},
	} {
		for b := m.start; b < m.start+m.cnt; b++ {
			if !testBit(bh.Data, int(b-g.first)) {
				fs.bc.Release(bh)
				w := atGroup(g.n)
				w.block = g.blockBitmap
				w.offset = g.blockBitmap*int64(fs.blockSize) + (b-g.first)/8
				return nil, fs.corrupt(w, nil, "block bitmap does not mark block %d of the %s in use", b, m.name)
			}
		}
	}
	g.bitmapChecked = true
	return bh, nil
}

// writeDescriptors encodes every group descriptor into its block at the
// primary location and marks the blocks dirty.
func (fs *FS) writeDescriptors() error {
	per := fs.blockSize / layout.GroupDescSize
	start := int64(fs.firstDataBlock) + 1
	for b := int64(0); b < fs.descBlocks; b++ {
		bh, err := fs.bc.Bread(start + b)
		if err != nil {
			return fmt.Errorf("ext2: reading group descriptor block %d: %w", start+b, err)
		}
		// Copy the descriptors under their group locks first: the
		// buffer lock comes after group.mu in the lock order.
		descs := make([]layout.GroupDesc, 0, per)
		for i := 0; i < per; i++ {
			gi := b*int64(per) + int64(i)
			if gi >= int64(fs.groupsCount) {
				break
			}
			g := fs.groups[gi]
			g.mu.Lock()
			descs = append(descs, g.desc)
			g.mu.Unlock()
		}
		bh.Lock()
		for i := range descs {
			descs[i].Encode(bh.Data[i*layout.GroupDescSize:])
		}
		bh.Unlock()
		fs.bc.MarkDirty(bh)
		fs.bc.Release(bh)
	}
	return nil
}

// testBit, setBit and clearBit work on little-endian bitmaps (ext2_test_bit
// and friends).
func testBit(b []byte, i int) bool { return b[i>>3]&(1<<(i&7)) != 0 }
func setBit(b []byte, i int)       { b[i>>3] |= 1 << (i & 7) }
func clearBit(b []byte, i int)     { b[i>>3] &^= 1 << (i & 7) }
