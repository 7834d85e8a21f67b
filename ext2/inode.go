package ext2

import (
	"container/list"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mpagefs/mpage/ext2/layout"
	"github.com/mpagefs/mpage/pagecache"
)

// Inode is an inode in memory (struct inode with struct ext2_inode_info).
// Get one with FS.Iget or FS.NewInode and give it back with FS.Iput.
type Inode struct {
	// Set when the inode is read and never changed after.
	fs    *FS
	ino   uint32
	group uint32             // i_block_group
	m     *pagecache.Mapping // the file data of a regular file, else nil

	// mu is the inode's i_mutex: writers, truncate and directory changes
	// hold it exclusively. It guards disk, except the fields tree guards.
	mu   sync.RWMutex
	disk layout.Inode

	// tree is truncate_mutex and i_meta_lock in one: it guards the block
	// map (disk.Block, and the indirect blocks reachable from it), the
	// block count (disk.BlocksLo/BlocksHigh), the allocation goal and the
	// reservation window. Lookups hold it shared, allocation and
	// truncate exclusively. It comes after mu and after the page lock.
	tree         sync.RWMutex
	lastLogical  int64 // i_block_alloc_info: last allocated file block
	lastPhysical int64 // and its device block (0: none yet)
	rsv          *rsvWindow

	// runMu guards run, the last run of mapped blocks a lookup found
	// (maprun.go). It is taken with tree held, shared or exclusive.
	runMu sync.Mutex
	run   mappedRun

	dirty atomic.Bool // disk differs from the inode table

	// linkable is I_LINKABLE: a file made by Tmpfile that has no link
	// yet, which Link may give its first one (tmpfile.go). Guarded by
	// mu.
	linkable bool

	// atimeDue is the Unix second from which a read may have to update
	// atime (0: look at the times); see accessed in atime.go. Stored
	// with mu held shared, reset with mu held exclusively.
	atimeDue atomic.Int64

	// Guarded by fs.icache.
	refs    int
	evicted bool
	lru     *list.Element // on fs.icache.lru: unused (refs 0, or only cachedInodes's)
	touched bool          // referenced since shrinkInodes pinned it
	// parked: unused, but off the list because shrinkInodes found dirty
	// pages in its mapping; it goes back on the list when those pages
	// are written (aops) or a reference is taken (grabLocked).
	parked bool

	// wbGen counts writeback calls on the mapping (aops.WritePages,
	// WritePage), so that shrinkInodes does not park an inode whose
	// pages were written while it looked.
	wbGen atomic.Uint64
}

// Ino is the inode number.
func (ino *Inode) Ino() uint32 { return ino.ino }

// FS is the filesystem the inode belongs to.
func (ino *Inode) FS() *FS { return ino.fs }

// Mapping is the page cache mapping of a regular file, nil for other types.
func (ino *Inode) Mapping() *pagecache.Mapping { return ino.m }

// Lock takes the inode's i_mutex exclusively.
func (ino *Inode) Lock() { ino.mu.Lock() }

// Unlock releases Lock.
func (ino *Inode) Unlock() { ino.mu.Unlock() }

// RLock takes the inode's i_mutex shared.
func (ino *Inode) RLock() { ino.mu.RLock() }

// RUnlock releases RLock.
func (ino *Inode) RUnlock() { ino.mu.RUnlock() }

// Mode is i_mode: the type and permission bits.
func (ino *Inode) Mode() uint16 {
	ino.mu.RLock()
	defer ino.mu.RUnlock()
	return ino.disk.Mode
}

// IsDir reports whether the inode is a directory. The type never changes.
func (ino *Inode) IsDir() bool { return ino.typ() == layout.ModeDir }

// IsRegular reports whether the inode is a regular file.
func (ino *Inode) IsRegular() bool { return ino.typ() == layout.ModeReg }

// IsSymlink reports whether the inode is a symbolic link.
func (ino *Inode) IsSymlink() bool { return ino.typ() == layout.ModeLnk }

func (ino *Inode) typ() uint16 {
	ino.mu.RLock()
	defer ino.mu.RUnlock()
	return ino.disk.Mode & layout.ModeFmt
}

// Size is the file size in bytes (for a regular file, what the page cache
// sees, which leads the inode table until the next write-out).
func (ino *Inode) Size() int64 {
	if ino.m != nil {
		return ino.m.Size()
	}
	ino.mu.RLock()
	defer ino.mu.RUnlock()
	return int64(ino.disk.Size())
}

// Stat is a snapshot of an inode's attributes.
type Stat struct {
	Ino                 uint32
	Mode                uint16
	Nlink               uint16
	UID, GID            uint32
	Size                int64
	Blocks              uint64 // i_blocks, in 512-byte units
	Atime, Mtime, Ctime time.Time
	Dtime               uint32
	Generation          uint32
	Flags               uint32
	FileACL             uint64
	RdevMajor           uint32
	RdevMinor           uint32
}

// Stat returns the inode's attributes.
func (ino *Inode) Stat() Stat {
	ino.mu.RLock()
	ino.tree.RLock()
	d := ino.disk
	ino.tree.RUnlock()
	ino.mu.RUnlock()
	st := Stat{
		Ino: ino.ino, Mode: d.Mode, Nlink: d.LinksCount, UID: d.UID(), GID: d.GID(),
		Size: int64(d.Size()), Blocks: d.Blocks(), Dtime: d.Dtime, Generation: d.Generation,
		Flags: d.Flags, FileACL: d.FileACL(),
		Atime: time.Unix(int64(d.Atime), int64(d.AtimeExtra>>2)),
		Mtime: time.Unix(int64(d.Mtime), int64(d.MtimeExtra>>2)),
		Ctime: time.Unix(int64(d.Ctime), int64(d.CtimeExtra>>2)),
	}
	if ino.m != nil {
		st.Size = ino.m.Size()
	}
	if t := d.Mode & layout.ModeFmt; t == layout.ModeChr || t == layout.ModeBlk {
		st.RdevMajor, st.RdevMinor = d.Rdev()
	}
	return st
}

// Disk returns a copy of the in-memory on-disk inode.
func (ino *Inode) Disk() layout.Inode {
	ino.mu.RLock()
	ino.tree.RLock()
	defer ino.tree.RUnlock()
	defer ino.mu.RUnlock()
	d := ino.disk
	d.Raw = slices.Clone(d.Raw)
	return d
}

// UpdateLocked changes the on-disk fields that the inode's i_mutex guards
// (mode bits, owner, link count, times, flags, directory size) and marks
// the inode dirty. The block map and block count are not for f to change.
// Preconditions: ino.Lock is held.
func (ino *Inode) UpdateLocked(f func(d *layout.Inode)) {
	ino.tree.Lock()
	blocks, n, nh := ino.disk.Block, ino.disk.BlocksLo, ino.disk.BlocksHigh
	f(&ino.disk)
	ino.disk.Block, ino.disk.BlocksLo, ino.disk.BlocksHigh = blocks, n, nh
	ino.tree.Unlock()
	ino.atimeDue.Store(0) // the times or flags may have changed
	ino.markDirty()
}

// TouchLocked sets the times named (any of 'a', 'm', 'c') to now.
// Preconditions: ino.Lock is held.
func (ino *Inode) TouchLocked(which string) {
	now := time.Now()
	ino.UpdateLocked(func(d *layout.Inode) { setTimes(d, now, which) })
}

// setTimes sets atime, mtime and/or ctime of d; with room for the extra
// fields of a large inode it stores the nanoseconds too.
func setTimes(d *layout.Inode, t time.Time, which string) {
	sec := uint32(t.Unix())
	extra := uint32(t.Nanosecond())<<2 | uint32((t.Unix()-int64(int32(sec)))>>32)&3
	for _, c := range which {
		switch c {
		case 'a':
			d.Atime, d.AtimeExtra = sec, extra
		case 'm':
			d.Mtime, d.MtimeExtra = sec, extra
		case 'c':
			d.Ctime, d.CtimeExtra = sec, extra
		}
	}
}

// markDirty notes that the inode must be written (mark_inode_dirty).
func (ino *Inode) markDirty() { ino.dirty.Store(true) }

// inodeLoc is where an inode lives on disk.
type inodeLoc struct {
	group  uint32
	block  int64 // inode table block
	offset int   // byte offset within the block
}

func (fs *FS) inodeLoc(n uint32) inodeLoc {
	idx := (n - 1) % fs.inodesPerGroup
	g := (n - 1) / fs.inodesPerGroup
	byteOff := int64(idx) * int64(fs.inodeSize)
	return inodeLoc{
		group:  g,
		block:  fs.groups[g].inodeTable + byteOff/int64(fs.blockSize),
		offset: int(byteOff % int64(fs.blockSize)),
	}
}

// validIno reports whether n may be read by Iget: the root or a
// non-reserved inode within s_inodes_count (ext2_iget's check).
func (fs *FS) validIno(n uint32) bool {
	return (n == layout.RootIno || n >= fs.firstIno) && n <= fs.inodesCount && n != 0
}

// Iget returns the inode numbered n with a reference, reading it from the
// inode table on first use, mirroring fs/ext2/inode.c:ext2_iget(). It
// checks what it reads (see readInode). Give the reference back with
// Iput.
func (fs *FS) Iget(n uint32) (*Inode, error) {
	if fs.closed.Load() {
		return nil, ErrClosed
	}
	if !fs.validIno(n) {
		return nil, fs.corrupt(where{ino: n, group: -1, block: -1, offset: -1}, nil,
			"bad inode number: not the root, below the first inode %d or above s_inodes_count %d", fs.firstIno, fs.inodesCount)
	}
	fs.icache.Lock()
	if ino, ok := fs.icache.m[n]; ok {
		fs.grabLocked(ino)
		fs.icache.Unlock()
		return ino, nil
	}
	fs.icache.Unlock()

	ino, err := fs.readInode(n)
	if err != nil {
		return nil, err
	}
	fs.icache.Lock()
	defer fs.icache.Unlock()
	if other, ok := fs.icache.m[n]; ok { // read twice concurrently
		fs.grabLocked(other)
		return other, nil
	}
	ino.refs = 1
	fs.icache.m[n] = ino
	return ino, nil
}

// grabLocked takes a reference to a cached inode (__iget), taking it off
// the unused list.
// Preconditions: fs.icache is held.
func (fs *FS) grabLocked(ino *Inode) {
	ino.refs++
	ino.touched = true
	ino.parked = false
	if ino.lru != nil {
		fs.icache.lru.Remove(ino.lru)
		ino.lru = nil
	}
}

// unpark puts an inode that shrinkInodes parked for its dirty pages back
// on the unused list, at the old end where the next shrink looks first:
// its pages have just been written. The writeback generation is bumped
// first, so that a shrink deciding to park it meanwhile sees the change
// and keeps it on the list instead.
func (fs *FS) unpark(ino *Inode) {
	ino.wbGen.Add(1)
	fs.icache.Lock()
	if ino.parked && ino.refs == 0 && !ino.evicted && ino.lru == nil {
		ino.parked = false
		ino.lru = fs.icache.lru.PushBack(ino)
	}
	fs.icache.Unlock()
}

// Iput gives back a reference taken by Iget or NewInode (iput). When the
// last reference to an inode with no links goes, the inode is deleted:
// its blocks and its number are freed (ext2_evict_inode).
func (fs *FS) Iput(ino *Inode) {
	fs.icache.Lock()
	ino.refs--
	last := ino.refs == 0 && !ino.evicted
	fs.icache.Unlock()
	if !last || fs.closed.Load() {
		return
	}
	// The link count is read without fs.icache held (icache is a leaf
	// lock), then the reference count checked again: an Iget may have
	// come in between.
	ino.mu.RLock()
	unlinked := ino.disk.LinksCount == 0
	ino.mu.RUnlock()
	if !unlinked {
		// Unused but still linked: it stays cached on the unused list
		// (inode_lru_list_add), from which shrinkInodes evicts the
		// least recently used when the cache holds too many.
		fs.icache.Lock()
		if ino.refs == 0 && !ino.evicted && ino.lru == nil && !ino.parked {
			ino.lru = fs.icache.lru.PushFront(ino)
		}
		over := len(fs.icache.m) > fs.icache.limit && fs.icache.limit > 0
		fs.icache.Unlock()
		if over {
			fs.shrinkInodes()
		}
		return
	}
	fs.icache.Lock()
	if ino.refs > 0 || ino.evicted {
		fs.icache.Unlock()
		return
	}
	ino.evicted = true
	delete(fs.icache.m, ino.ino)
	fs.icache.Unlock()
	if err := fs.evict(ino); err != nil {
		fs.logf("ext2: deleting inode %d: %v", ino.ino, err)
	}
}

// cachedInodes returns every cached inode with a reference each; the
// caller Iputs them.
func (fs *FS) cachedInodes() []*Inode {
	fs.icache.Lock()
	defer fs.icache.Unlock()
	out := make([]*Inode, 0, len(fs.icache.m))
	for _, ino := range fs.icache.m {
		// A reference that leaves an unused inode where it is on the
		// list: a sync does not make every inode recently used.
		ino.refs++
		ino.touched = true
		out = append(out, ino)
	}
	slices.SortFunc(out, func(a, b *Inode) int { return int(a.ino) - int(b.ino) })
	return out
}

// DefaultInodeCacheLimit is the number of inodes the inode cache keeps
// before it evicts unused ones (Options.InodeCacheLimit 0).
const DefaultInodeCacheLimit = 4096

// shrinkScanExtra is how many unused inodes shrinkInodes looks at beyond
// the excess, so that a few it must skip (dirty pages, in use again) do
// not stop it short.
const shrinkScanExtra = 32

// CachedInodes is the number of inodes in the inode cache, referenced or
// not.
func (fs *FS) CachedInodes() int {
	fs.icache.Lock()
	defer fs.icache.Unlock()
	return len(fs.icache.m)
}

// shrinkInodes evicts unused inodes, least recently used first, until the
// cache holds no more than its limit, mirroring the inode LRU of
// fs/inode.c (prune_icache_sb → inode_lru_isolate → evict). An inode
// goes only if nobody holds a reference, it still has links, its page
// cache holds no dirty or writeback pages, and it could be written to its
// inode table buffer (a dirty inode is written first: write_inode). Its
// clean pages are dropped (truncate_inode_pages_final), its mapping
// unregistered from the flusher and its reservation window given back.
// Only one shrink runs at a time; a caller finding one under way returns.
//
// An inode whose mapping has dirty pages is parked: taken off the list
// until its pages are written (unpark) or it is used again, as Linux's
// inode_lru_isolate rotates such inodes off the part of the list it
// scans. Without that, every Iput past the limit rescanned all the
// unused inodes with dirty pages (creating thousands of files, whose data
// waits for writeback, cost O(n²)). Other inodes it must keep (in use
// again, pages under writeback, or not writable) go to the recent end of
// the list. Each inode is looked at once per shrink at most, and each
// look evicts it, parks it or moves it: work proportional to the inodes
// that came onto the list since, not to those waiting there.
func (fs *FS) shrinkInodes() {
	if !fs.icache.shrinking.TryLock() {
		return
	}
	defer fs.icache.shrinking.Unlock()

	fs.icache.Lock()
	excess := len(fs.icache.m) - fs.icache.limit
	budget := fs.icache.lru.Len() // each inode on the list looked at once
	fs.icache.Unlock()

	var gone []*Inode
	for ; len(gone) < excess && budget > 0; budget-- {
		// Pin the oldest unused inode with a reference of our own, so
		// that it cannot go away (or be deleted) while we look.
		fs.icache.Lock()
		e := fs.icache.lru.Back()
		if e == nil {
			fs.icache.Unlock()
			break
		}
		ino := e.Value.(*Inode)
		fs.icache.lru.Remove(e)
		ino.lru = nil
		ino.refs++
		ino.touched = false
		fs.icache.scanned++
		fs.icache.Unlock()

		gen := ino.wbGen.Load()
		ok, park := fs.evictable(ino)
		fs.icache.Lock()
		if ok && ino.refs == 1 && !ino.touched && !ino.evicted && !ino.dirty.Load() {
			ino.refs = 0
			ino.evicted = true
			delete(fs.icache.m, ino.ino)
			gone = append(gone, ino)
			fs.icache.Unlock()
			continue
		}
		if park && ino.refs == 1 && !ino.touched && !ino.evicted && ino.wbGen.Load() == gen {
			ino.refs = 0
			ino.parked = true
			fs.icache.Unlock()
			continue
		}
		fs.icache.Unlock()
		// Kept: our reference goes back through Iput, which puts the
		// inode on the list again (or deletes it if it was unlinked
		// meanwhile). The shrink lock keeps Iput from recursing here.
		fs.Iput(ino)
	}
	for _, ino := range gone {
		fs.dropInode(ino)
	}
}

// evictable reports whether an inode pinned by shrinkInodes may leave the
// cache, writing it to its inode table buffer if it is dirty; if not,
// park reports that it cannot until its dirty pages are written (or, on
// a mount that cannot write, ever).
func (fs *FS) evictable(ino *Inode) (ok, park bool) {
	if fs.closed.Load() {
		return false, false
	}
	ino.mu.RLock()
	linked := ino.disk.LinksCount > 0
	ino.mu.RUnlock()
	if !linked {
		return false, false
	}
	if ino.m != nil && ino.m.Tagged(pagecache.TagDirty) {
		return false, true
	}
	if ino.m != nil && ino.m.Tagged(pagecache.TagWriteback) {
		return false, false
	}
	if ino.dirty.Load() {
		if fs.readOnly.Load() && !fs.writableAtMount() {
			return false, true
		}
		if err := ino.writeInode(); err != nil {
			fs.logf("ext2: writing inode %d to evict it: %v", ino.ino, err)
			return false, false
		}
	}
	return true, false
}

// dropInode frees what an inode evicted by shrinkInodes holds in memory:
// its mapping (unregistered from the flusher, its clean pages dropped)
// and its reservation window.
func (fs *FS) dropInode(ino *Inode) {
	if ino.m != nil {
		if fs.flusher != nil {
			fs.flusher.Unregister(ino.m)
		}
		ino.m.TruncatePages(0)
	}
	ino.tree.Lock()
	if ino.rsv != nil {
		fs.rsv.drop(ino.rsv)
	}
	ino.tree.Unlock()
}

// maxFileSize is the largest file the block map can address, capped as
// fs/ext2/super.c:ext2_max_size() caps it (i_blocks, in 512-byte units,
// must fit in 32 bits).
func (fs *FS) maxFileSize() int64 {
	apb := int64(1) << fs.addrBits
	blocks := int64(layout.NDirBlocks) + apb + apb*apb + apb*apb*apb
	res := blocks << fs.blockBits
	// Metadata blocks count in i_blocks too.
	meta := int64(1) + 1 + apb + 1 + apb + apb*apb
	upper := ((int64(1)<<32 - 1) >> (fs.blockBits - 9)) - meta
	if upper<<fs.blockBits < res {
		res = upper << fs.blockBits
	}
	return res
}

// readInode reads inode n from its table block and checks it: a known
// file type, a sane size, block pointers inside the filesystem. Errors
// name the inode, its group and table block and the device byte offset
// of the bad field, wrap ErrCorrupt, and are recorded against the
// filesystem.
func (fs *FS) readInode(n uint32) (*Inode, error) {
	loc := fs.inodeLoc(n)
	bh, err := fs.bc.Bread(loc.block)
	if err != nil {
		return nil, fmt.Errorf("ext2: reading inode %d from block %d: %w", n, loc.block, err)
	}
	bh.Lock()
	d, err := layout.DecodeInode(bh.Data[loc.offset : loc.offset+fs.inodeSize])
	bh.Unlock()
	fs.bc.Release(bh)
	if err != nil {
		return nil, fs.inodeCorrupt(n, loc, 0, err, "cannot decode")
	}
	if d.LinksCount == 0 && (d.Mode == 0 || d.Dtime != 0) {
		return nil, fmt.Errorf("ext2: inode %d is deleted (links 0, dtime %d): %w", n, d.Dtime, syscall.ESTALE)
	}
	if err := fs.checkInode(n, loc, d); err != nil {
		return nil, err
	}
	ino := &Inode{fs: fs, ino: n, group: loc.group, disk: *d}
	if d.IsReg() {
		fs.newMapping(ino)
		ino.m.SetSize(int64(d.Size()))
	}
	return ino, nil
}

// inodeCorrupt reports a bad field at byte field of inode n.
func (fs *FS) inodeCorrupt(n uint32, loc inodeLoc, field int, cause error, format string, args ...any) error {
	w := where{
		group:  int64(loc.group),
		ino:    n,
		block:  loc.block,
		offset: loc.block*int64(fs.blockSize) + int64(loc.offset) + int64(field),
	}
	return fs.corrupt(w, cause, format, args...)
}

// checkInode checks a decoded inode (ext2_iget's checks and more).
func (fs *FS) checkInode(n uint32, loc inodeLoc, d *layout.Inode) error {
	switch d.Type() {
	case layout.ModeReg, layout.ModeDir, layout.ModeLnk, layout.ModeChr,
		layout.ModeBlk, layout.ModeFifo, layout.ModeSock:
	default:
		return fs.inodeCorrupt(n, loc, 0, nil, "bogus i_mode %#o: no such file type", d.Mode)
	}
	if d.Flags&(layout.FlExtents|layout.FlInlineData|layout.FlEncrypt|layout.FlCompr) != 0 {
		return fs.inodeCorrupt(n, loc, 32, nil, "i_flags %#x ask for extents, inline data, encryption or compression, which ext2 does not have", d.Flags)
	}
	size := d.Size()
	if d.IsReg() && size > uint64(fs.maxFileSize()) {
		field := 4 // i_size, or i_size_high when that is what is too big
		if d.SizeHigh != 0 {
			field = 108
		}
		return fs.inodeCorrupt(n, loc, field, nil, "i_size %d is beyond the largest file size %d", size, fs.maxFileSize())
	}
	if d.IsDir() && size%uint64(fs.blockSize) != 0 {
		return fs.inodeCorrupt(n, loc, 4, nil, "directory i_size %d is not a multiple of the block size %d", size, fs.blockSize)
	}
	if acl := d.FileACL(); acl != 0 && (acl < uint64(fs.firstDataBlock) || acl >= uint64(fs.blocksCount)) {
		return fs.inodeCorrupt(n, loc, 104, nil, "i_file_acl %d is outside the filesystem (blocks %d-%d)", acl, fs.firstDataBlock, fs.blocksCount-1)
	}
	if !fs.hasBlockMap(d) {
		return nil
	}
	for i, b := range d.Block {
		if b != 0 && (b < fs.firstDataBlock || b >= fs.blocksCount) {
			return fs.inodeCorrupt(n, loc, 40+4*i, nil, "i_block[%d] = %d is outside the filesystem (blocks %d-%d)",
				i, b, fs.firstDataBlock, fs.blocksCount-1)
		}
	}
	return nil
}

// hasBlockMap reports whether i_block holds block numbers: regular files,
// directories and slow symlinks (ext2_inode_is_fast_symlink is the
// exception, and device numbers).
func (fs *FS) hasBlockMap(d *layout.Inode) bool {
	switch d.Type() {
	case layout.ModeReg, layout.ModeDir:
		return true
	case layout.ModeLnk:
		return !fs.isFastSymlink(d)
	}
	return false
}

// isFastSymlink mirrors ext2_inode_is_fast_symlink(): a symlink with no
// data blocks (other than its xattr block) keeps its target in i_block.
func (fs *FS) isFastSymlink(d *layout.Inode) bool {
	eaBlocks := uint64(0)
	if d.FileACL() != 0 {
		eaBlocks = uint64(fs.blockSize >> 9)
	}
	return d.IsLnk() && d.Blocks()-eaBlocks == 0
}

// writeInode writes the inode into its inode table buffer and marks it
// dirty, if the inode changed (fs/ext2/inode.c:__ext2_write_inode()). A
// regular file of 2 GiB or more sets the large_file feature the first
// time.
func (ino *Inode) writeInode() error {
	if !ino.dirty.Swap(false) {
		return nil
	}
	fs := ino.fs
	ino.mu.RLock()
	ino.tree.RLock()
	d := ino.disk
	d.Raw = slices.Clone(d.Raw)
	ino.tree.RUnlock()
	ino.mu.RUnlock()
	if ino.m != nil && ino.m.Size() != int64(d.Size()) {
		// The size the page cache has is the truth for regular files.
		d.SetSize(uint64(ino.m.Size()))
	}
	if d.IsReg() && d.Size() > 1<<31-1 {
		if err := fs.setLargeFile(); err != nil {
			ino.dirty.Store(true)
			return err
		}
	}
	loc := fs.inodeLoc(ino.ino)
	bh, err := fs.bc.Bread(loc.block)
	if err != nil {
		ino.dirty.Store(true)
		return fmt.Errorf("ext2: reading inode table block %d for inode %d: %w", loc.block, ino.ino, err)
	}
	bh.Lock()
	d.Encode(bh.Data[loc.offset : loc.offset+fs.inodeSize])
	bh.Unlock()
	fs.bc.MarkDirty(bh)
	fs.bc.Release(bh)
	return nil
}

// setLargeFile sets the large_file ro_compat feature (first file of 2 GiB
// or more) and writes the superblock, as __ext2_write_inode does.
func (fs *FS) setLargeFile() error {
	fs.sbMu.Lock()
	sb := fs.sbMu.sb
	if sb.HasROCompat(layout.ROCompatLargeFile) {
		fs.sbMu.Unlock()
		return nil
	}
	if sb.RevLevel == layout.GoodOldRev {
		fs.sbMu.Unlock()
		return fmt.Errorf("%w: a revision 0 filesystem cannot hold files of 2 GiB", ErrFileTooBig)
	}
	sb.FeatureROCompat |= layout.ROCompatLargeFile
	fs.sbMu.Unlock()
	return fs.writeSuper(true)
}

// evict deletes an inode whose last link and last reference are gone
// (ext2_evict_inode): dtime is set, the size goes to 0 freeing every
// block, the xattr block is released, the inode is written and its number
// freed.
func (fs *FS) evict(ino *Inode) error {
	if err := fs.checkWritable(); err != nil {
		return err
	}
	var errs []error
	if ino.m != nil {
		if fs.flusher != nil {
			fs.flusher.Unregister(ino.m)
		}
		ino.m.Truncate(0)
	}
	ino.mu.Lock()
	ino.disk.Dtime = uint32(time.Now().Unix())
	ino.mu.Unlock()
	if fs.hasBlockMap(&ino.disk) {
		if err := ino.truncateBlocks(0); err != nil {
			errs = append(errs, err)
		}
	}
	ino.mu.Lock()
	ino.disk.SetSize(0)
	acl := ino.disk.FileACL()
	ino.disk.SetFileACL(0)
	ino.mu.Unlock()
	if ino.m != nil {
		ino.m.SetSize(0)
	}
	if acl != 0 {
		if err := ino.releaseXattrBlock(int64(acl)); err != nil {
			errs = append(errs, err)
		}
	}
	ino.markDirty()
	if err := ino.writeInode(); err != nil {
		errs = append(errs, err)
	}
	if err := fs.freeInode(ino); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// releaseXattrBlock drops the inode's reference to its extended attribute
// block: the block's h_refcount goes down, and at zero the block is freed
// (ext2_xattr_delete_inode).
func (ino *Inode) releaseXattrBlock(blk int64) error {
	fs := ino.fs
	bh, err := fs.bc.Bread(blk)
	if err != nil {
		return fmt.Errorf("ext2: reading xattr block %d of inode %d: %w", blk, ino.ino, err)
	}
	bh.Lock()
	h, err := layout.DecodeXattrHeader(bh.Data)
	if err != nil || h.Magic != layout.XattrMagic {
		bh.Unlock()
		fs.bc.Release(bh)
		return fs.corrupt(where{ino: ino.ino, group: -1, block: blk, offset: blk * int64(fs.blockSize)}, err, "bad extended attribute block")
	}
	free := h.Refcount <= 1
	if !free {
		h.Refcount--
		h.Encode(bh.Data)
	}
	bh.Unlock()
	if free {
		fs.bc.Release(bh)
		fs.bc.Forget(blk)
		ino.addBlocks(-1)
		return fs.freeBlocks(blk, 1)
	}
	fs.bc.MarkDirty(bh)
	fs.bc.Release(bh)
	ino.addBlocks(-1)
	return nil
}

// addBlocks adds n filesystem blocks to i_blocks (in 512-byte units).
func (ino *Inode) addBlocks(n int64) {
	ino.tree.Lock()
	ino.addBlocksLocked(n)
	ino.tree.Unlock()
}

// addBlocksLocked is addBlocks with ino.tree held.
// Preconditions: ino.tree is held exclusively.
func (ino *Inode) addBlocksLocked(n int64) {
	per := int64(ino.fs.blockSize >> 9)
	cur := int64(ino.disk.Blocks())
	cur += n * per
	if cur < 0 {
		cur = 0
	}
	ino.disk.SetBlocks(uint64(cur))
	ino.markDirty()
}
