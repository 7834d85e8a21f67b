package ext2

import (
	"errors"
	"fmt"
	"time"

	"github.com/mpagefs/mpage/buffer"
	"github.com/mpagefs/mpage/ext2/layout"
)

// blockFreer gathers runs of contiguous blocks to free in one call each,
// as ext2_free_data() does with block_to_free/count.
type blockFreer struct {
	ino          *Inode
	start, count int64
	freed        int64
	errs         []error
}

func (f *blockFreer) add(blk int64) {
	if f.count > 0 && blk == f.start+f.count {
		f.count++
		return
	}
	f.flush()
	f.start, f.count = blk, 1
}

func (f *blockFreer) flush() {
	if f.count == 0 {
		return
	}
	if err := f.ino.fs.freeBlocks(f.start, f.count); err != nil {
		f.errs = append(f.errs, err)
	}
	f.freed += f.count
	f.count = 0
}

// truncateBlocks frees every block that maps file bytes at or past size,
// data and indirect blocks, keeping holes as they are, mirroring
// fs/ext2/inode.c:__ext2_truncate_blocks() with ext2_find_shared() and
// ext2_free_branches(): an indirect block left with no pointers is freed
// too. i_blocks goes down by what was freed and the reservation window is
// dropped. The page cache past size must already be gone.
func (ino *Inode) truncateBlocks(size int64) error {
	fs := ino.fs
	if err := fs.checkWritable(); err != nil {
		return err
	}
	from := (size + int64(fs.blockSize) - 1) >> fs.blockBits
	ino.tree.Lock()
	defer ino.tree.Unlock()
	ino.forgetRunLocked()
	f := &blockFreer{ino: ino}

	// Direct blocks.
	for i := from; i < layout.NDirBlocks; i++ {
		if b := ino.disk.Block[i]; b != 0 {
			f.add(int64(b))
			ino.disk.Block[i] = 0
		}
	}
	// The indirect trees: single, double, triple.
	apb := int64(1) << fs.addrBits
	base := int64(layout.NDirBlocks)
	span := apb
	for level, slot := 1, layout.IndBlock; slot <= layout.TIndBlock; level, slot = level+1, slot+1 {
		if b := ino.disk.Block[slot]; b != 0 && from < base+span {
			if from <= base {
				ino.disk.Block[slot] = 0
				ino.freeTreeLocked(f, int64(b), level)
			} else if empty := ino.truncateIndirectLocked(f, int64(b), level, base, from); empty {
				ino.disk.Block[slot] = 0
				fs.bc.Forget(int64(b))
				f.add(int64(b))
			}
		}
		base += span
		span *= apb
	}
	f.flush()
	ino.addBlocksLocked(-f.freed)
	if ino.rsv != nil {
		fs.rsv.drop(ino.rsv)
	}
	ino.markDirty()
	return errors.Join(f.errs...)
}

// freeTreeLocked frees the indirect block blk of the given level (1:
// pointers to data) and everything below it (ext2_free_branches).
// Preconditions: ino.tree is held exclusively.
func (ino *Inode) freeTreeLocked(f *blockFreer, blk int64, level int) {
	fs := ino.fs
	if !ino.validPtr(blk) {
		f.errs = append(f.errs, fs.corrupt(where{ino: ino.ino, group: int64(ino.group), block: blk, offset: -1}, nil,
			"indirect block %d is outside the filesystem; not freeing it", blk))
		return
	}
	bh, err := fs.bc.Bread(blk)
	if err != nil {
		// Linux: "Read failure, inode=%ld, block=%ld": the subtree
		// leaks, the block itself is still freed.
		f.errs = append(f.errs, fmt.Errorf("ext2: inode %d: reading indirect block %d to free it: %w", ino.ino, blk, err))
	} else {
		ptrs := make([]uint32, 1<<fs.addrBits)
		bh.Lock()
		for i := range ptrs {
			ptrs[i] = ptr(bh, i)
		}
		bh.Unlock()
		fs.bc.Release(bh)
		for _, p := range ptrs {
			if p == 0 {
				continue
			}
			if level == 1 {
				if ino.validPtr(int64(p)) {
					f.add(int64(p))
				}
			} else {
				ino.freeTreeLocked(f, int64(p), level-1)
			}
		}
	}
	fs.bc.Forget(blk)
	f.add(blk)
}

// truncateIndirectLocked frees, below the indirect block blk of the given
// level whose first pointer maps file block base, everything that maps
// file blocks at or past from, clearing those pointers. It reports whether
// blk is left with no pointers at all, so the caller frees it (the shared
// branch logic of ext2_find_shared).
// Preconditions: ino.tree is held exclusively; base < from < base + span.
func (ino *Inode) truncateIndirectLocked(f *blockFreer, blk int64, level int, base, from int64) bool {
	fs := ino.fs
	if !ino.validPtr(blk) {
		f.errs = append(f.errs, fs.corrupt(where{ino: ino.ino, group: int64(ino.group), block: blk, offset: -1}, nil,
			"indirect block %d is outside the filesystem", blk))
		return false
	}
	bh, err := fs.bc.Bread(blk)
	if err != nil {
		f.errs = append(f.errs, fmt.Errorf("ext2: inode %d: reading indirect block %d to truncate: %w", ino.ino, blk, err))
		return false
	}
	defer fs.bc.Release(bh)
	apb := 1 << fs.addrBits
	per := int64(1) << (fs.addrBits * uint(level-1)) // file blocks per pointer
	k0 := int((from - base) / per)
	partial := (from-base)%per != 0
	type freeing struct {
		slot int
		blk  uint32
	}
	var whole []freeing
	var part freeing
	bh.Lock()
	for k := k0; k < apb; k++ {
		p := ptr(bh, k)
		if p == 0 {
			continue
		}
		if k == k0 && partial {
			part = freeing{k, p}
			continue
		}
		whole = append(whole, freeing{k, p})
		setPtr(bh, k, 0)
	}
	bh.Unlock()
	changed := len(whole) > 0
	for _, w := range whole {
		if level == 1 {
			if ino.validPtr(int64(w.blk)) {
				f.add(int64(w.blk))
			}
		} else {
			ino.freeTreeLocked(f, int64(w.blk), level-1)
		}
	}
	if part.blk != 0 {
		if empty := ino.truncateIndirectLocked(f, int64(part.blk), level-1, base+int64(k0)*per, from); empty {
			bh.Lock()
			setPtr(bh, part.slot, 0)
			bh.Unlock()
			fs.bc.Forget(int64(part.blk))
			f.add(int64(part.blk))
			changed = true
		}
	}
	bh.Lock()
	empty := true
	for k := 0; k < apb; k++ {
		if ptr(bh, k) != 0 {
			empty = false
			break
		}
	}
	bh.Unlock()
	if changed && !empty {
		fs.bc.MarkDirty(bh)
	}
	return empty
}

// validPtr reports whether blk may be a data or indirect block.
func (ino *Inode) validPtr(blk int64) bool {
	return blk >= int64(ino.fs.firstDataBlock) && blk < int64(ino.fs.blocksCount)
}

// truncateLocked sets the size of a regular file, mirroring
// fs/ext2/inode.c:ext2_setsize(): growing only sets the size (the new
// part is a hole); shrinking zeroes the rest of the new last block
// (block_truncate_page), drops the cached pages past the end
// (truncate_setsize) and frees the blocks past it. mtime and ctime are
// set.
// Preconditions: ino.mu is held exclusively; ino is a regular file.
func (ino *Inode) truncateLocked(size int64) error {
	fs := ino.fs
	if err := fs.checkWritable(); err != nil {
		return err
	}
	if size < 0 {
		return ErrInvalid
	}
	if size > fs.maxFileSize() {
		return fmt.Errorf("%w: size %d is above the largest file size %d", ErrFileTooBig, size, fs.maxFileSize())
	}
	old := ino.m.Size()
	var errs []error
	if size < old {
		if err := buffer.BlockTruncatePage(ino.m, size, ino.getBlock); err != nil {
			errs = append(errs, err)
		}
		ino.m.Truncate(size)
		if err := ino.truncateBlocks(size); err != nil {
			errs = append(errs, err)
		}
	} else {
		ino.m.SetSize(size)
	}
	now := time.Now()
	ino.UpdateLocked(func(d *layout.Inode) {
		d.SetSize(uint64(size))
		setTimes(d, now, "mc")
	})
	return errors.Join(errs...)
}
