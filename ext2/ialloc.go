package ext2

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/mpagefs/mpage/buffer"
	"github.com/mpagefs/mpage/ext2/layout"
)

// Inode flags a new inode inherits from its directory (EXT2_FL_INHERITED),
// and the masks applied for regular files and other non-directories
// (EXT2_REG_FLMASK, EXT2_OTHER_FLMASK), as ext2_mask_flags() applies them.
const (
	flInherited = layout.FlSecRm | layout.FlUnrm | layout.FlCompr | layout.FlSync |
		layout.FlImmutable | layout.FlAppend | layout.FlNoDump | layout.FlNoAtime |
		layout.FlComprBlk | layout.FlNoCompr | layout.FlJournalData | layout.FlNoTail |
		layout.FlDirSync
	flRegMask   = ^uint32(layout.FlDirSync | layout.FlTopDir)
	flOtherMask = uint32(layout.FlNoDump | layout.FlNoAtime)
)

// findGroupOrlov picks the group of a new directory, mirroring
// fs/ext2/ialloc.c:find_group_orlov() without the debt counters: top
// directories (children of the root, or of a TOPDIR directory) go to the
// group, from a random start, with the fewest directories among those
// with at least average free inodes and blocks; other directories stay
// near their parent unless its group is crowded.
func (fs *FS) findGroupOrlov(parent *Inode) (uint32, bool) {
	ngroups := fs.groupsCount
	type snap struct{ freeI, freeB, dirs uint32 }
	s := make([]snap, ngroups)
	var freeI, freeB, ndirs uint64
	for i, g := range fs.groups {
		g.mu.Lock()
		s[i] = snap{uint32(g.desc.FreeInodesCount), uint32(g.desc.FreeBlocksCount), uint32(g.desc.UsedDirsCount)}
		g.mu.Unlock()
		freeI += uint64(s[i].freeI)
		freeB += uint64(s[i].freeB)
		ndirs += uint64(s[i].dirs)
	}
	avefreei := uint32(freeI / uint64(ngroups))
	avefreeb := uint32(freeB / uint64(ngroups))
	parentGroup := parent.group
	parent.mu.RLock()
	topdir := parent.ino == layout.RootIno || parent.disk.Flags&layout.FlTopDir != 0
	parent.mu.RUnlock()

	if topdir {
		bestNdir := fs.inodesPerGroup
		best := -1
		start := rand.Uint32N(ngroups)
		for i := uint32(0); i < ngroups; i++ {
			g := (start + i) % ngroups
			d := s[g]
			if d.freeI == 0 || d.dirs >= bestNdir || d.freeI < avefreei || d.freeB < avefreeb {
				continue
			}
			best, bestNdir = int(g), d.dirs
		}
		if best >= 0 {
			return uint32(best), true
		}
	} else {
		if ndirs == 0 {
			ndirs = 1
		}
		maxDirs := uint32(ndirs/uint64(ngroups)) + fs.inodesPerGroup/16
		minInodes := int64(avefreei) - int64(fs.inodesPerGroup/4)
		minBlocks := int64(avefreeb) - int64(fs.blocksPerGroup/4)
		for i := uint32(0); i < ngroups; i++ {
			g := (parentGroup + i) % ngroups
			d := s[g]
			if d.freeI == 0 || d.dirs >= maxDirs || int64(d.freeI) < minInodes || int64(d.freeB) < minBlocks {
				continue
			}
			return g, true
		}
	}
	// Fallback: any group with at least average free inodes, then any
	// with a free inode.
	for _, ave := range []uint32{avefreei, 0} {
		for i := uint32(0); i < ngroups; i++ {
			g := (parentGroup + i) % ngroups
			if s[g].freeI > 0 && s[g].freeI >= ave {
				return g, true
			}
		}
	}
	return 0, false
}

// findGroupOther picks the group of a new non-directory, mirroring
// fs/ext2/ialloc.c:find_group_other(): the parent's group if it has a
// free inode and a free block, else a quadratic hash from a start that
// depends on the parent, else a linear scan for any free inode.
func (fs *FS) findGroupOther(parent *Inode) (uint32, bool) {
	ngroups := fs.groupsCount
	has := func(g uint32, needBlock bool) bool {
		grp := fs.groups[g]
		grp.mu.Lock()
		defer grp.mu.Unlock()
		return grp.desc.FreeInodesCount > 0 && (!needBlock || grp.desc.FreeBlocksCount > 0)
	}
	pg := parent.group
	if has(pg, true) {
		return pg, true
	}
	g := (pg + parent.ino) % ngroups
	for i := uint32(1); i < ngroups; i <<= 1 {
		g += i
		if g >= ngroups {
			g -= ngroups
		}
		if has(g, true) {
			return g, true
		}
	}
	g = pg
	for i := uint32(0); i < ngroups; i++ {
		if g++; g >= ngroups {
			g = 0
		}
		if has(g, false) {
			return g, true
		}
	}
	return 0, false
}

// NewInode allocates an inode for a new file of the given mode in
// directory dir, mirroring fs/ext2/ialloc.c:ext2_new_inode(): Orlov
// spreading for directories, the parent's group for other files, the
// first free inode of the group from there on. The inode is returned
// with a reference, a link count of 0 (the directory layer links it),
// the times set to now, a new generation number, the flags dir passes
// on, and its on-disk copy zeroed, as Linux's EXT2_STATE_NEW write does.
// It is written out with the next Sync. dir is not locked by NewInode.
func (fs *FS) NewInode(dir *Inode, mode uint16, uid, gid uint32) (*Inode, error) {
	if err := fs.checkWritable(); err != nil {
		return nil, err
	}
	isDir := mode&layout.ModeFmt == layout.ModeDir
	var start uint32
	var ok bool
	if isDir {
		start, ok = fs.findGroupOrlov(dir)
	} else {
		start, ok = fs.findGroupOther(dir)
	}
	if !ok {
		return nil, fmt.Errorf("%w: no free inodes", ErrNoSpace)
	}
	var n uint32
	var grp uint32
	for i := uint32(0); i < fs.groupsCount && n == 0; i++ {
		grp = (start + i) % fs.groupsCount
		var err error
		n, err = fs.allocInodeInGroup(fs.groups[grp], isDir)
		if err != nil {
			return nil, err
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: no free inodes", ErrNoSpace)
	}

	dir.mu.RLock()
	pflags := dir.disk.Flags
	dir.mu.RUnlock()
	flags := pflags & flInherited
	switch mode & layout.ModeFmt {
	case layout.ModeDir:
	case layout.ModeReg:
		flags &= flRegMask
	default:
		flags &= flOtherMask
	}
	fs.sbMu.Lock()
	gen := fs.sbMu.nextGen
	fs.sbMu.nextGen++
	fs.sbMu.Unlock()

	ino := &Inode{fs: fs, ino: n, group: grp}
	d := &ino.disk
	d.Mode = mode
	d.SetUID(uid)
	d.SetGID(gid)
	d.Flags = flags
	d.Generation = gen
	if fs.inodeSize > layout.InodeSize {
		// The extra space holds the nanosecond and creation times
		// (i_extra_isize 32, what mke2fs and ext4 use).
		d.ExtraIsize = 32
	}
	now := time.Now()
	setTimes(d, now, "amc")
	if d.ExtraIsize >= 24 {
		d.Crtime = d.Ctime
		d.CrtimeExtra = d.CtimeExtra
	}
	if d.IsReg() {
		fs.newMapping(ino)
	}
	ino.markDirty()
	fs.icache.Lock()
	ino.refs = 1
	fs.icache.m[n] = ino
	fs.icache.Unlock()
	return ino, nil
}

// allocInodeInGroup takes the first free inode of g that is not reserved,
// updating the descriptor counts. It returns 0 if g has none.
func (fs *FS) allocInodeInGroup(g *group, isDir bool) (uint32, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.desc.FreeInodesCount == 0 {
		return 0, nil
	}
	bh, err := fs.bc.Bread(g.inodeBitmap)
	if err != nil {
		return 0, fmt.Errorf("ext2: reading the inode bitmap of group %d at block %d: %w", g.n, g.inodeBitmap, err)
	}
	defer fs.bc.Release(bh)
	first := 0
	if g.n == 0 {
		first = int(fs.firstIno) - 1 // the reserved inodes are never handed out
	}
	bh.Lock()
	bit := nextZeroBit(bh.Data, first, int(fs.inodesPerGroup))
	alone := false
	if bit >= 0 {
		alone = fs.opts.FreshInodeTables && fs.aloneInTableBlock(bh.Data, bit)
		setBit(bh.Data, bit)
	}
	bh.Unlock()
	if bit < 0 {
		// The descriptor said free inodes, the bitmap has none.
		w := atGroup(g.n)
		w.block = g.inodeBitmap
		return 0, fs.corrupt(w, nil, "free inodes count %d but no free inode in the bitmap", g.desc.FreeInodesCount)
	}
	fs.bc.MarkDirty(bh)
	if alone {
		fs.zeroTableBlock(g.inodeTable + int64(bit)*int64(fs.inodeSize)/int64(fs.blockSize))
	}
	g.desc.FreeInodesCount--
	if isDir {
		g.desc.UsedDirsCount++
	}
	return g.n*fs.inodesPerGroup + uint32(bit) + 1, nil
}

// aloneInTableBlock reports whether no inode that shares bit's inode
// table block is in use, by the group's inode bitmap b.
func (fs *FS) aloneInTableBlock(b []byte, bit int) bool {
	per := fs.blockSize / fs.inodeSize
	from := bit / per * per
	to := min(from+per, int(fs.inodesPerGroup))
	for i := from; i < to; i++ {
		if testBit(b, i) {
			return false
		}
	}
	return true
}

// zeroTableBlock makes the cached buffer of inode table block blk zeroed
// and uptodate without reading it, unless it is cached already. Only for
// a block no inode in use shares (aloneInTableBlock) on a filesystem
// whose free table blocks hold zeros (Options.FreshInodeTables): the
// block is then zeros on the device too, and writing the new inode back
// (which fills its slot of this buffer) needs no synchronous read of it,
// where Linux's ext2_write_inode reads it (sb_bread).
func (fs *FS) zeroTableBlock(blk int64) {
	bh := fs.bc.Getblk(blk)
	if !bh.Has(buffer.Uptodate) {
		bh.Lock()
		if !bh.Has(buffer.Uptodate) { // not read meanwhile
			clear(bh.Data)
			bh.Set(buffer.Uptodate)
		}
		bh.Unlock()
	}
	fs.bc.Release(bh)
}

// freeInode gives the inode's number back (ext2_free_inode): its bit in
// the inode bitmap is cleared and the group counts updated. Clearing a
// bit that is already clear is an error, recorded.
func (fs *FS) freeInode(ino *Inode) error {
	n := ino.ino
	if n < fs.firstIno || n > fs.inodesCount {
		return fs.corrupt(where{ino: n, group: -1, block: -1, offset: -1}, nil, "freeing a reserved or nonexistent inode")
	}
	ino.mu.RLock()
	isDir := ino.disk.IsDir()
	ino.mu.RUnlock()
	if ino.m != nil {
		fs.rsv.drop(ino.rsv)
	}
	gi := (n - 1) / fs.inodesPerGroup
	bit := int((n - 1) % fs.inodesPerGroup)
	g := fs.groups[gi]
	g.mu.Lock()
	defer g.mu.Unlock()
	bh, err := fs.bc.Bread(g.inodeBitmap)
	if err != nil {
		return fmt.Errorf("ext2: reading the inode bitmap of group %d at block %d: %w", g.n, g.inodeBitmap, err)
	}
	defer fs.bc.Release(bh)
	bh.Lock()
	wasSet := testBit(bh.Data, bit)
	clearBit(bh.Data, bit)
	bh.Unlock()
	if !wasSet {
		w := atGroup(g.n)
		w.ino = n
		w.block = g.inodeBitmap
		return fs.corrupt(w, nil, "bit already cleared for inode %d", n)
	}
	fs.bc.MarkDirty(bh)
	if uint32(g.desc.FreeInodesCount) < fs.inodesPerGroup {
		g.desc.FreeInodesCount++
	}
	if isDir && g.desc.UsedDirsCount > 0 {
		g.desc.UsedDirsCount--
	}
	return nil
}
