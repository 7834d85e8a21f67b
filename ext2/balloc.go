package ext2

import (
	"fmt"
	"sort"
	"sync"

	"github.com/mpagefs/mpage/buffer"
)

// Reservation window sizes, in blocks (EXT2_DEFAULT_RESERVE_BLOCKS and
// EXT2_MAX_RESERVE_BLOCKS, the latter rounded to a power of two).
const (
	defaultReserveBlocks = 8
	maxReserveBlocks     = 1024
)

// rsvWindow is one file's block reservation window (struct
// ext2_reserve_window_node), simplified from fs/ext2/balloc.c: a run of
// blocks [start, end] inside one group that other files' reserving
// allocations stay out of, so that files written at the same time do not
// interleave their blocks. Blocks of a window are not allocated on disk
// until the file writes them; dropping the window frees nothing.
type rsvWindow struct {
	// Guarded by reservations.mu.
	start, end int64 // inclusive; the window is in the set iff inSet
	inSet      bool
	goalSize   int // the size the next window is made with
	allocHit   int // blocks allocated from the current window
}

// reservations is the per-filesystem ordered set of windows
// (s_rsv_window_root with s_rsv_window_lock).
type reservations struct {
	// mu guards wins and every window's fields. It is held across a whole
	// reserving allocation (it comes before group.mu in the lock order).
	mu   sync.Mutex
	wins []*rsvWindow // sorted by start, non-overlapping
}

func (r *reservations) init() {}

// newWindow makes an empty window for a file.
func newWindow() *rsvWindow { return &rsvWindow{goalSize: defaultReserveBlocks} }

// removeLocked takes w out of the set.
// Preconditions: r.mu is held.
func (r *reservations) removeLocked(w *rsvWindow) {
	if !w.inSet {
		return
	}
	i := sort.Search(len(r.wins), func(i int) bool { return r.wins[i].start >= w.start })
	for ; i < len(r.wins); i++ {
		if r.wins[i] == w {
			r.wins = append(r.wins[:i], r.wins[i+1:]...)
			break
		}
	}
	w.inSet = false
	w.allocHit = 0
}

// insertLocked adds w, which must not overlap any window of the set.
// Preconditions: r.mu is held.
func (r *reservations) insertLocked(w *rsvWindow) {
	i := sort.Search(len(r.wins), func(i int) bool { return r.wins[i].start > w.start })
	r.wins = append(r.wins, nil)
	copy(r.wins[i+1:], r.wins[i:])
	r.wins[i] = w
	w.inSet = true
}

// coveringLocked returns the window containing blk, or nil, and the start
// of the first window after blk (or -1).
// Preconditions: r.mu is held.
func (r *reservations) coveringLocked(blk int64) (cover *rsvWindow, nextStart int64) {
	i := sort.Search(len(r.wins), func(i int) bool { return r.wins[i].start > blk })
	nextStart = -1
	if i < len(r.wins) {
		nextStart = r.wins[i].start
	}
	if i > 0 && r.wins[i-1].end >= blk {
		return r.wins[i-1], nextStart
	}
	return nil, nextStart
}

// drop removes a file's window (ext2_discard_reservation), on last close
// and on truncate.
func (r *reservations) drop(w *rsvWindow) {
	if w == nil {
		return
	}
	r.mu.Lock()
	r.removeLocked(w)
	r.mu.Unlock()
}

// dropAll empties the set at unmount.
func (r *reservations) dropAll() {
	r.mu.Lock()
	for _, w := range r.wins {
		w.inSet = false
	}
	r.wins = nil
	r.mu.Unlock()
}

// Windows returns the reserved windows as [start, end] pairs, for tests
// and statistics.
func (fs *FS) Windows() [][2]int64 {
	fs.rsv.mu.Lock()
	defer fs.rsv.mu.Unlock()
	out := make([][2]int64, len(fs.rsv.wins))
	for i, w := range fs.rsv.wins {
		out[i] = [2]int64{w.start, w.end}
	}
	return out
}

// newBlocks allocates up to count contiguous blocks, at or after goal if
// it can, and returns the first and how many (at least 1), mirroring
// fs/ext2/balloc.c:ext2_new_blocks(): it starts in the goal's group at
// the goal and then tries every group in turn, the goal's group last. With a window (a regular file
// being written) it allocates inside the file's reservation window,
// making a new one where needed; if no group has room for a window it
// tries again without. It fails with ErrNoSpace when no block is free.
func (fs *FS) newBlocks(w *rsvWindow, goal int64, count int) (int64, int, error) {
	if err := fs.checkWritable(); err != nil {
		return 0, 0, err
	}
	if count < 1 {
		count = 1
	}
	if goal < int64(fs.firstDataBlock) || goal >= int64(fs.blocksCount) {
		goal = int64(fs.firstDataBlock)
	}
	if w != nil {
		fs.rsv.mu.Lock()
		defer fs.rsv.mu.Unlock()
		if w.goalSize < count {
			w.goalSize = min(count, maxReserveBlocks)
		}
	}
	for pass := 0; pass < 2; pass++ {
		gno := fs.groupOfBlock(goal)
		// The goal's group first, from the goal on; then every group
		// in turn from its start, ending with the goal's group again
		// for the blocks before the goal (ext2_new_blocks' second loop
		// visits ngroups groups after the goal's, wrapping to it).
		for i := uint32(0); i <= fs.groupsCount; i++ {
			g := fs.groups[(gno+i)%fs.groupsCount]
			grpGoal := int64(-1)
			if i == 0 {
				grpGoal = goal
			}
			first, n, err := fs.allocInGroup(g, w, grpGoal, count)
			if err != nil {
				return 0, 0, err
			}
			if n > 0 {
				return first, n, nil
			}
		}
		if w == nil {
			break
		}
		// No room for a window anywhere: allocate without one, as
		// ext2_new_blocks retries with my_rsv = NULL.
		fs.rsv.removeLocked(w)
		w = nil
	}
	return 0, 0, fmt.Errorf("%w: no free blocks", ErrNoSpace)
}

// allocInGroup tries to allocate in group g, at or after grpGoal (a block
// number, or -1 for anywhere in the group). It returns n == 0 when the
// group has no room.
// Preconditions: fs.rsv.mu is held when w != nil.
func (fs *FS) allocInGroup(g *group, w *rsvWindow, grpGoal int64, count int) (int64, int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.desc.FreeBlocksCount == 0 {
		return 0, 0, nil
	}
	bh, err := fs.readBlockBitmapLocked(g)
	if err != nil {
		return 0, 0, err
	}
	defer fs.bc.Release(bh)
	for tries := 0; tries < 64; tries++ {
		var first int64
		var n int
		if w != nil {
			first, n = fs.allocWithWindowLocked(g, bh, w, grpGoal, count)
		} else {
			first, n = fs.tryAllocateLocked(g, bh, grpGoal, count, g.last)
		}
		if n == 0 {
			return 0, 0, nil
		}
		if fs.isSystemBlock(g, first, int64(n)) {
			// The bitmap said free, but these are the group's own
			// metadata blocks. Leave the bits set (the blocks are in
			// use), record the error and look further, as
			// ext2_new_blocks does ("Allocating block in system zone").
			fs.bc.MarkDirty(bh)
			g.desc.FreeBlocksCount -= min(g.desc.FreeBlocksCount, uint16(n))
			w := atGroup(g.n)
			w.block = first
			err := fs.corrupt(w, nil, "allocating blocks %d-%d in the system zone: the block bitmap marks group metadata free", first, first+int64(n)-1)
			if fs.readOnly.Load() {
				return 0, 0, err
			}
			continue
		}
		fs.bc.MarkDirty(bh)
		g.desc.FreeBlocksCount -= min(g.desc.FreeBlocksCount, uint16(n))
		return first, n, nil
	}
	return 0, 0, nil
}

// tryAllocateLocked finds the first free block at or after goal (or the
// group start) and no later than limit, marks it and up to count-1
// following free blocks in use, and returns them (ext2_try_to_allocate).
// Preconditions: g.mu is held.
func (fs *FS) tryAllocateLocked(g *group, bh *buffer.Head, goal int64, count int, limit int64) (int64, int) {
	start := goal
	if start < g.first {
		start = g.first
	}
	if limit > g.last {
		limit = g.last
	}
	bh.Lock()
	defer bh.Unlock()
	bit := nextZeroBit(bh.Data, int(start-g.first), int(limit-g.first)+1)
	if bit < 0 {
		return 0, 0
	}
	n := 0
	for n < count && bit+n <= int(limit-g.first) && !testBit(bh.Data, bit+n) {
		setBit(bh.Data, bit+n)
		n++
	}
	return g.first + int64(bit), n
}

// allocWithWindowLocked allocates inside w, first moving or making w so
// that it holds a free block at or after grpGoal in g
// (ext2_try_to_allocate_with_rsv with alloc_new_reservation).
// Preconditions: fs.rsv.mu and g.mu are held.
func (fs *FS) allocWithWindowLocked(g *group, bh *buffer.Head, w *rsvWindow, grpGoal int64, count int) (int64, int) {
	for tries := 0; tries < 8; tries++ {
		inGroup := w.inSet && w.start >= g.first && w.end <= g.last
		goalIn := grpGoal < 0 || (grpGoal >= w.start && grpGoal <= w.end)
		if !inGroup || !goalIn {
			if !fs.newWindowLocked(g, bh, w, grpGoal) {
				return 0, 0
			}
		}
		goal := grpGoal
		if goal < w.start {
			goal = w.start
		}
		first, n := fs.tryAllocateLocked(g, bh, goal, count, w.end)
		if n > 0 {
			w.allocHit += n
			return first, n
		}
		// The window is used up: the next one starts after it.
		grpGoal = w.end + 1
		if grpGoal > g.last {
			fs.rsv.removeLocked(w)
			return 0, 0
		}
	}
	return 0, 0
}

// newWindowLocked replaces w by a window of w.goalSize blocks (doubled if
// the old window was more than half used, up to maxReserveBlocks) that
// starts at the first free block at or after goal in g that no other
// window covers (alloc_new_reservation, find_next_reservable_window). It
// reports false when g has no such block.
// Preconditions: fs.rsv.mu and g.mu are held.
func (fs *FS) newWindowLocked(g *group, bh *buffer.Head, w *rsvWindow, goal int64) bool {
	if w.inSet && w.allocHit > int(w.end-w.start+1)/2 {
		w.goalSize = min(2*w.goalSize, maxReserveBlocks)
	}
	fs.rsv.removeLocked(w)
	start := goal
	if start < g.first {
		start = g.first
	}
	for start <= g.last {
		bh.Lock()
		bit := nextZeroBit(bh.Data, int(start-g.first), int(g.last-g.first)+1)
		bh.Unlock()
		if bit < 0 {
			return false
		}
		fb := g.first + int64(bit)
		cover, next := fs.rsv.coveringLocked(fb)
		if cover != nil {
			start = cover.end + 1
			continue
		}
		end := fb + int64(w.goalSize) - 1
		if end > g.last {
			end = g.last
		}
		if next >= 0 && end >= next {
			end = next - 1
		}
		w.start, w.end = fb, end
		fs.rsv.insertLocked(w)
		return true
	}
	return false
}

// freeBlocks frees count blocks from block, mirroring
// fs/ext2/balloc.c:ext2_free_blocks(): the range must lie in the data
// zone and outside the groups' metadata, and every bit must be set;
// otherwise the error is recorded and the bad part left alone.
func (fs *FS) freeBlocks(blk int64, count int64) error {
	if count <= 0 {
		return nil
	}
	if blk < int64(fs.firstDataBlock) || blk+count < blk || blk+count > int64(fs.blocksCount) {
		return fs.corrupt(atBlock(blk), nil, "freeing blocks %d-%d not in the data zone", blk, blk+count-1)
	}
	var firstErr error
	for count > 0 {
		gno := fs.groupOfBlock(blk)
		g := fs.groups[gno]
		n := count
		if blk+n-1 > g.last {
			n = g.last - blk + 1
		}
		if err := fs.freeInGroup(g, blk, n); err != nil && firstErr == nil {
			firstErr = err
		}
		blk += n
		count -= n
	}
	return firstErr
}

// freeInGroup clears the bits of [blk, blk+n) in g.
func (fs *FS) freeInGroup(g *group, blk, n int64) error {
	if fs.isSystemBlock(g, blk, n) {
		return fs.corrupt(atGroup(g.n), nil, "freeing blocks %d-%d in the system zone", blk, blk+n-1)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	bh, err := fs.readBlockBitmapLocked(g)
	if err != nil {
		return err
	}
	defer fs.bc.Release(bh)
	freed := 0
	var already []int64
	bh.Lock()
	for b := blk; b < blk+n; b++ {
		bit := int(b - g.first)
		if !testBit(bh.Data, bit) {
			already = append(already, b)
			continue
		}
		clearBit(bh.Data, bit)
		freed++
	}
	bh.Unlock()
	fs.bc.MarkDirty(bh)
	max := uint16(g.last - g.first + 1)
	if int(g.desc.FreeBlocksCount)+freed > int(max) {
		g.desc.FreeBlocksCount = max
	} else {
		g.desc.FreeBlocksCount += uint16(freed)
	}
	if len(already) > 0 {
		w := atGroup(g.n)
		w.block = already[0]
		return fs.corrupt(w, nil, "freeing %d blocks already free in the bitmap, first %d", len(already), already[0])
	}
	return nil
}

// nextZeroBit returns the first clear bit of b in [from, to), or -1
// (ext2_find_next_zero_bit).
func nextZeroBit(b []byte, from, to int) int {
	for i := from; i < to; {
		if i&7 == 0 && i+8 <= to && b[i>>3] == 0xff {
			i += 8
			continue
		}
		if !testBit(b, i) {
			return i
		}
		i++
	}
	return -1
}
