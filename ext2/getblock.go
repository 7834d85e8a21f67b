package ext2

import (
	"encoding/binary"
	"fmt"

	"github.com/mpagefs/mpage/buffer"
	"github.com/mpagefs/mpage/ext2/layout"
)

// indirect is one link of a chain from the inode to a data block (struct
// Indirect in fs/ext2/inode.c): the buffer of the block holding the
// pointer (nil for i_block in the inode), the pointer's slot and its value.
type indirect struct {
	bh   *buffer.Head
	slot int
	key  uint32
}

// blockToPath turns file block iblock into the slots of the pointers that
// lead to it, mirroring fs/ext2/inode.c:ext2_block_to_path(). depth is 1
// for a direct block up to 4 for a triple indirect one, 0 if iblock is out
// of range. toBoundary is how many blocks follow iblock under the same
// last pointer block: 0 means iblock is the last one before the next
// indirect block must be read.
func (fs *FS) blockToPath(iblock int64) (offsets [4]int, depth int, toBoundary int64) {
	ptrs := int64(1) << fs.addrBits
	bits := fs.addrBits
	final := int64(0)
	switch {
	case iblock < 0:
		return offsets, 0, 0
	case iblock < layout.NDirBlocks:
		offsets[0] = int(iblock)
		depth, final = 1, layout.NDirBlocks
	default:
		iblock -= layout.NDirBlocks
		switch {
		case iblock < ptrs:
			offsets[0], offsets[1] = layout.IndBlock, int(iblock)
			depth, final = 2, ptrs
		case iblock-ptrs < ptrs*ptrs:
			iblock -= ptrs
			offsets[0] = layout.DIndBlock
			offsets[1] = int(iblock >> bits)
			offsets[2] = int(iblock & (ptrs - 1))
			depth, final = 3, ptrs
		default:
			iblock -= ptrs + ptrs*ptrs
			if iblock>>(2*bits) >= ptrs {
				return offsets, 0, 0
			}
			offsets[0] = layout.TIndBlock
			offsets[1] = int(iblock >> (2 * bits))
			offsets[2] = int((iblock >> bits) & (ptrs - 1))
			offsets[3] = int(iblock & (ptrs - 1))
			depth, final = 4, ptrs
		}
	}
	return offsets, depth, final - 1 - (iblock & (ptrs - 1))
}

// ptr reads pointer slot of an indirect block.
// Preconditions: bh's contents are stable (ino.tree held).
func ptr(bh *buffer.Head, slot int) uint32 {
	return binary.LittleEndian.Uint32(bh.Data[4*slot:])
}

// ptrAt reads pointer slot of the level at belongs to: of its indirect
// block, or of the inode's i_data when at.bh is nil.
// Preconditions: ino.tree is held.
func (ino *Inode) ptrAt(at indirect, slot int) uint32 {
	if at.bh != nil {
		return ptr(at.bh, slot)
	}
	return ino.disk.Block[slot]
}

func setPtr(bh *buffer.Head, slot int, v uint32) {
	binary.LittleEndian.PutUint32(bh.Data[4*slot:], v)
}

// releaseChain drops the buffers of chain[1:n].
func (fs *FS) releaseChain(chain []indirect) {
	for i := range chain {
		if chain[i].bh != nil {
			fs.bc.Release(chain[i].bh)
			chain[i].bh = nil
		}
	}
}

// getBranch reads the chain of indirect blocks down to the data block,
// mirroring fs/ext2/inode.c:ext2_get_branch(). It returns how many links
// are complete: depth when the whole chain was found, else the index of
// the first link whose key is 0 (a hole). Pointers outside the filesystem
// are corruption, reported with the inode, the block holding the pointer
// and its byte offset.
// Preconditions: ino.tree is held (shared is enough).
func (ino *Inode) getBranch(offsets []int, chain []indirect) (int, error) {
	fs := ino.fs
	chain[0] = indirect{slot: offsets[0], key: ino.disk.Block[offsets[0]]}
	for n := 0; ; n++ {
		key := chain[n].key
		if key == 0 {
			return n, nil
		}
		if key < fs.firstDataBlock || key >= fs.blocksCount {
			w := where{ino: ino.ino, group: int64(ino.group), block: -1, offset: -1}
			if chain[n].bh != nil {
				w.block = chain[n].bh.Blocknr
				w.offset = w.block*int64(fs.blockSize) + 4*int64(chain[n].slot)
			} else {
				loc := fs.inodeLoc(ino.ino)
				w.block = loc.block
				w.offset = loc.block*int64(fs.blockSize) + int64(loc.offset) + 40 + 4*int64(chain[n].slot)
			}
			return n, fs.corrupt(w, nil, "block pointer %d is outside the filesystem (blocks %d-%d)", key, fs.firstDataBlock, fs.blocksCount-1)
		}
		if n+1 == len(chain) {
			return n + 1, nil
		}
		bh, err := fs.bc.Bread(int64(key))
		if err != nil {
			return n, fmt.Errorf("ext2: inode %d: reading indirect block %d: %w", ino.ino, key, err)
		}
		chain[n+1] = indirect{bh: bh, slot: offsets[n+1], key: ptr(bh, offsets[n+1])}
	}
}

// mapResult is the outcome of getBlocks.
type mapResult struct {
	blk      int64 // first device block, 0 for a hole
	count    int   // blocks mapped contiguously from blk (0 for a hole)
	isNew    bool  // just allocated
	boundary bool  // the next block's mapping needs another indirect block
	hole     int64 // for a hole: file blocks from iblock that are surely holes (>= 1)
}

// getBlocks maps up to maxBlocks file blocks from iblock onto contiguous
// device blocks, allocating them when create is set and iblock is a hole,
// mirroring fs/ext2/inode.c:ext2_get_blocks(). A hole without create
// returns count 0.
func (ino *Inode) getBlocks(iblock int64, maxBlocks int, create bool) (mapResult, error) {
	fs := ino.fs
	if maxBlocks < 1 {
		maxBlocks = 1
	}
	offsets, depth, toBoundary := fs.blockToPath(iblock)
	if depth == 0 {
		return mapResult{}, fmt.Errorf("%w: file block %d of inode %d is beyond the block map", ErrFileTooBig, iblock, ino.ino)
	}
	var chainBuf [4]indirect
	chain := chainBuf[:depth]

	ino.tree.RLock()
	if res, ok := ino.cachedRun(iblock, maxBlocks); ok {
		ino.tree.RUnlock()
		return res, nil
	}
	n, err := ino.getBranch(offsets[:depth], chain)
	if err == nil && n == depth {
		res := ino.mappedRunFrom(iblock, chain, depth, maxBlocks, toBoundary)
		ino.tree.RUnlock()
		fs.releaseChain(chain)
		return res, nil
	}
	ino.tree.RUnlock()
	fs.releaseChain(chain)
	if err != nil || !create {
		return mapResult{hole: fs.holeSpan(offsets[:depth], n)}, err
	}

	// Allocation: take the tree exclusively and look again, since
	// another writer may have filled the hole meanwhile.
	ino.tree.Lock()
	defer ino.tree.Unlock()
	n, err = ino.getBranch(offsets[:depth], chain)
	defer fs.releaseChain(chain)
	if err != nil {
		return mapResult{}, err
	}
	if n == depth {
		return ino.mappedRunFrom(iblock, chain, depth, maxBlocks, toBoundary), nil
	}
	if ino.m != nil && ino.rsv == nil {
		ino.rsv = newWindow()
	}
	goal := ino.findGoalLocked(iblock, chain[n])
	indirectBlks := depth - n - 1
	count := ino.blksToAllocateLocked(chain[n], indirectBlks, maxBlocks, toBoundary)
	if err := ino.allocBranchLocked(indirectBlks, &count, goal, offsets[n:depth], chain[n:depth]); err != nil {
		return mapResult{}, err
	}
	ino.spliceBranchLocked(iblock, chain[n:depth], indirectBlks, count)
	return mapResult{
		blk:      int64(chain[depth-1].key),
		count:    count,
		isNew:    true,
		boundary: int64(count) > toBoundary,
	}, nil
}

// holeSpan returns how many file blocks, from the one whose path is
// offsets, lie under the missing pointer at chain index n: the rest of the
// subtree that pointer would map.
func (fs *FS) holeSpan(offsets []int, n int) int64 {
	depth := len(offsets)
	if n >= depth {
		return 1
	}
	span := int64(1)
	pos := int64(0)
	for k := depth - 1; k > n; k-- {
		pos += int64(offsets[k]) * span
		span <<= fs.addrBits
	}
	return span - pos
}

// countMapped counts the contiguous mapped blocks of a complete chain
// (the "map more blocks" loop of ext2_get_blocks) and sets the boundary
// as ext2_get_blocks does: when the run reaches the last pointer of its
// block.
// Preconditions: ino.tree is held.
func (ino *Inode) countMapped(chain []indirect, depth, maxBlocks int, toBoundary int64) mapResult {
	last := chain[depth-1]
	first := last.key
	count := 1
	for count < maxBlocks && int64(count) <= toBoundary && int64(first)+int64(count) < int64(ino.fs.blocksCount) {
		if ino.ptrAt(last, last.slot+count) != first+uint32(count) {
			break
		}
		count++
	}
	return mapResult{blk: int64(first), count: count, boundary: int64(count) > toBoundary}
}

// findGoalLocked picks the block to allocate near (ext2_find_goal): right
// after the file's last allocated block when iblock follows it, else
// ext2_find_near: the nearest earlier pointer in the same block, else the
// indirect block itself, else a goal in the inode's group.
//
// Linux colours that goal by the writer's pid (pid % 16 sixteenths into
// the group), so every file written by one process, such as cp -a filling
// a tree, starts from the same goal and small files pack one after the
// other as each last close gives back its reservation window's unused
// blocks. We have one writer, the mounting process, and colour by the
// kind of inode instead, as ext4_inode_to_goal_block keeps directories
// apart from regular files: directories and symlinks start at the
// group's first block, regular files 1/16 into the group. The data of
// files written one after the other then lies in one run, not cut by the
// block of each new directory, and goes to the device in few requests;
// the directory blocks, written from the buffer cache at sync, lie
// together too. (Colouring by inode number, as before, put consecutive
// files of a directory 1/16 of a group apart, one request each.)
// Preconditions: ino.tree is held exclusively.
func (ino *Inode) findGoalLocked(iblock int64, at indirect) int64 {
	if iblock == ino.lastLogical+1 && ino.lastPhysical != 0 {
		return ino.lastPhysical + 1
	}
	for p := at.slot - 1; p >= 0; p-- {
		if v := ino.ptrAt(at, p); v != 0 {
			return int64(v)
		}
	}
	if at.bh != nil {
		return at.bh.Blocknr
	}
	fs := ino.fs
	goal := fs.groupFirstBlock(ino.group)
	if ino.m != nil { // a regular file (not IsRegular: callers may hold ino.mu)
		goal += int64(fs.blocksPerGroup / 16)
	}
	return goal
}

// blksToAllocateLocked counts the data blocks to allocate for a branch
// (ext2_blks_to_allocate): with indirect blocks to make, as many as fit
// under the last one; otherwise the run of holes after the first.
// Preconditions: ino.tree is held.
func (ino *Inode) blksToAllocateLocked(at indirect, k, blks int, toBoundary int64) int {
	if k > 0 {
		if int64(blks) < toBoundary+1 {
			return blks
		}
		return int(toBoundary + 1)
	}
	count := 1
	for count < blks && int64(count) <= toBoundary {
		if ino.ptrAt(at, at.slot+count) != 0 {
			break
		}
		count++
	}
	return count
}

// allocBlocksLocked allocates indirectBlks indirect blocks and at least
// one (up to blks) data blocks, indirect blocks first so that they
// precede the data they map on disk (ext2_alloc_blocks). It returns the
// new block numbers (indirect ones, then the first data block) and the
// number of data blocks.
// Preconditions: ino.tree is held exclusively.
func (ino *Inode) allocBlocksLocked(goal int64, indirectBlks, blks int) ([4]int64, int, error) {
	var newBlocks [4]int64
	fs := ino.fs
	target := blks + indirectBlks
	index := 0
	for {
		first, count, err := fs.newBlocks(ino.rsv, goal, target)
		if err != nil {
			for i := 0; i < index; i++ {
				fs.freeBlocks(newBlocks[i], 1)
			}
			return newBlocks, 0, err
		}
		target -= count
		for index < indirectBlks && count > 0 {
			newBlocks[index] = first
			index++
			first++
			count--
		}
		goal = first
		if count > 0 {
			newBlocks[index] = first
			return newBlocks, count, nil
		}
	}
}

// allocBranchLocked allocates the missing indirect blocks and data blocks
// of a branch, zeroes the indirect blocks (through Getblk: they are not
// read) and links them together, leaving the branch unattached: branch[0]
// gets the key to store in the existing block or inode
// (ext2_alloc_branch). *blks is updated to the data blocks allocated.
// Preconditions: ino.tree is held exclusively.
func (ino *Inode) allocBranchLocked(indirectBlks int, blks *int, goal int64, offsets []int, branch []indirect) error {
	fs := ino.fs
	newBlocks, num, err := ino.allocBlocksLocked(goal, indirectBlks, *blks)
	if err != nil {
		return err
	}
	branch[0].key = uint32(newBlocks[0])
	for n := 1; n <= indirectBlks; n++ {
		bh := fs.bc.Getblk(newBlocks[n-1])
		branch[n].bh = bh
		branch[n].slot = offsets[n]
		branch[n].key = uint32(newBlocks[n])
		bh.Lock()
		clear(bh.Data)
		setPtr(bh, offsets[n], branch[n].key)
		if n == indirectBlks {
			for i := 1; i < num; i++ {
				setPtr(bh, offsets[n]+i, uint32(newBlocks[n])+uint32(i))
			}
		}
		bh.Set(buffer.Uptodate)
		bh.Unlock()
		fs.bc.MarkDirty(bh)
	}
	*blks = num
	return nil
}

// spliceBranchLocked attaches a branch made by allocBranchLocked
// (ext2_splice_branch): it stores the missing link, the pointers of
// further data blocks when they live in the same place, updates the
// allocation goal and i_blocks, and marks the inode or the indirect block
// dirty.
// Preconditions: ino.tree is held exclusively.
func (ino *Inode) spliceBranchLocked(iblock int64, where []indirect, num, blks int) {
	fs := ino.fs
	at := where[0]
	if at.bh != nil {
		at.bh.Lock()
		setPtr(at.bh, at.slot, at.key)
		if num == 0 {
			for i := 1; i < blks; i++ {
				setPtr(at.bh, at.slot+i, at.key+uint32(i))
			}
		}
		at.bh.Unlock()
		fs.bc.MarkDirty(at.bh)
	} else {
		ino.disk.Block[at.slot] = at.key
		if num == 0 {
			for i := 1; i < blks; i++ {
				ino.disk.Block[at.slot+i] = at.key + uint32(i)
			}
		}
	}
	ino.lastLogical = iblock + int64(blks) - 1
	ino.lastPhysical = int64(where[num].key) + int64(blks) - 1
	ino.addBlocksLocked(int64(num + blks))
}

// getBlock is ext2's get_block for the page cache (ext2_get_block): it
// maps iblock into bh, setting Mapped, New for a block just allocated and
// Boundary when the block is the last one mapped by its indirect block
// (or the last direct block), so mpage submits before the next indirect
// block is read. As in Linux, bh.Size asks for up to Size/blocksize
// blocks and is set to the size of the contiguous run found; a hole
// without create leaves bh unmapped.
func (ino *Inode) getBlock(iblock int64, bh *buffer.Head, create bool) error {
	fs := ino.fs
	maxBlocks := bh.Size >> fs.blockBits
	res, err := ino.getBlocks(iblock, maxBlocks, create)
	if err != nil {
		return err
	}
	if res.count == 0 {
		return nil
	}
	bh.Map(fs.q, res.blk)
	bh.Size = res.count << fs.blockBits
	if res.isNew {
		bh.Set(buffer.New)
	}
	if res.boundary {
		bh.Set(buffer.Boundary)
	}
	return nil
}

// MapBlock returns the device block holding file block iblock, 0 for a
// hole, allocating it when create is set; isNew reports a block just
// allocated (whose contents are garbage until written). It is the entry
// point of the directory layer and of slow symlinks, which keep their
// blocks in the buffer cache.
func (ino *Inode) MapBlock(iblock int64, create bool) (blk int64, isNew bool, err error) {
	res, err := ino.getBlocks(iblock, 1, create)
	if err != nil || res.count == 0 {
		return 0, false, err
	}
	return res.blk, res.isNew, nil
}

// MapBlocks maps up to maxBlocks file blocks from iblock onto one
// contiguous run of device blocks without allocating, returning the first
// device block and the run's length. For a hole it returns block 0 and,
// as count, how many file blocks from iblock are holes for sure (at least
// 1, at most maxBlocks): the rest of the range a missing pointer would
// map, so that a walk over a sparse file steps over a missing indirect
// block at once.
func (ino *Inode) MapBlocks(iblock int64, maxBlocks int) (blk int64, count int, err error) {
	maxBlocks = max(maxBlocks, 1)
	res, err := ino.getBlocks(iblock, maxBlocks, false)
	if err != nil {
		return 0, 0, err
	}
	if res.count == 0 {
		return 0, int(min(max(res.hole, 1), int64(maxBlocks))), nil
	}
	return res.blk, res.count, nil
}
