package ext2

// The mapped-run cache: each inode remembers the last run of contiguous
// mapped blocks a lookup found, so that the next lookups inside it skip
// the walk down the block map (the indirect blocks' buffer-cache look-ups
// and references). Writeback asks for one page at a time (mpage's
// __mpage_writepage maps each page without buffers through get_block),
// and so does every READ of a FUSE mount: without the cache each 4 KiB
// page of a sequential write cost a walk (about a tenth of the FUSE
// daemon's CPU in a 1 GiB sequential write). Linux's ext2 has no such
// cache; ext4's extent status tree plays this part there.
//
// A lookup that finds iblock mapped counts the run from it past what was
// asked, up to mapRunAhead blocks or the end of the indirect block
// (where the boundary flag falls), and remembers it. The run holds only
// blocks that were mapped: allocation fills holes and never moves a
// mapped block, so only freeing blocks (truncateBlocks, which also
// deletes) makes a run stale, and it forgets the run holding tree
// exclusively, while lookups read it holding tree shared.

// mapRunAhead is how many blocks a lookup counts beyond those asked for,
// to remember: 64 pages' worth of 4 KiB blocks, a scan of 64 pointers.
const mapRunAhead = 64

// mappedRun is a run of contiguous mapped blocks: file blocks [start,
// start+count) on device blocks [blk, blk+count). boundaryAt is the file
// block whose mapping is the last its indirect block (or the direct
// blocks) holds: a lookup whose last block is that one reports Boundary.
type mappedRun struct {
	start, blk, count, boundaryAt int64
}

// cachedRun maps iblock from the inode's remembered run, reporting false
// when the run does not hold it.
//
// Preconditions: ino.tree is held (shared or exclusive).
func (ino *Inode) cachedRun(iblock int64, maxBlocks int) (mapResult, bool) {
	ino.runMu.Lock()
	r := ino.run
	ino.runMu.Unlock()
	if r.count == 0 || iblock < r.start || iblock >= r.start+r.count {
		return mapResult{}, false
	}
	n := min(int64(maxBlocks), r.start+r.count-iblock)
	return mapResult{
		blk:      r.blk + (iblock - r.start),
		count:    int(n),
		boundary: iblock+n-1 == r.boundaryAt,
	}, true
}

// mappedRunFrom counts the mapped run at iblock, whose lookup path is
// chain (fully mapped), remembers it and returns the first maxBlocks
// blocks of it, as countMapped would.
//
// Preconditions: ino.tree is held (shared or exclusive).
func (ino *Inode) mappedRunFrom(iblock int64, chain []indirect, depth, maxBlocks int, toBoundary int64) mapResult {
	full := ino.countMapped(chain, depth, max(maxBlocks, mapRunAhead), toBoundary)
	ino.runMu.Lock()
	ino.run = mappedRun{start: iblock, blk: full.blk, count: int64(full.count), boundaryAt: iblock + toBoundary}
	ino.runMu.Unlock()
	count := min(full.count, maxBlocks)
	return mapResult{blk: full.blk, count: count, boundary: int64(count) > toBoundary}
}

// forgetRunLocked forgets the remembered run: blocks are being freed.
//
// Preconditions: ino.tree is held exclusively.
func (ino *Inode) forgetRunLocked() {
	ino.runMu.Lock()
	ino.run = mappedRun{}
	ino.runMu.Unlock()
}
