package ext2

import (
	"container/list"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/buffer"
	"github.com/mpagefs/mpage/ext2/layout"
	"github.com/mpagefs/mpage/pagecache"
	"github.com/mpagefs/mpage/writeback"
)

// ErrorBehavior says what the filesystem does when it finds corrupt
// metadata (s_errors, or the errors= mount option).
type ErrorBehavior uint8

// Error behaviours. There is no "panic": finding corruption never crashes
// the process; ErrorsPanic in a superblock acts as ErrorsRemountRO.
const (
	// ErrorsDefault follows the superblock's s_errors.
	ErrorsDefault ErrorBehavior = iota
	// ErrorsContinue records the error (ERROR_FS at unmount) and goes on.
	ErrorsContinue
	// ErrorsRemountRO records the error and refuses further changes.
	ErrorsRemountRO
)

func (b ErrorBehavior) String() string {
	switch b {
	case ErrorsContinue:
		return "continue"
	case ErrorsRemountRO:
		return "remount-ro"
	}
	return "default"
}

// Options are the mount options.
type Options struct {
	// ReadOnly mounts without writing anything to the device.
	ReadOnly bool
	// CacheLimit bounds the page cache of file data, in bytes (0: the
	// pagecache default). Ignored when PageCache is set.
	CacheLimit int64
	// Readahead is the largest readahead window in pages (0: 1024 pages,
	// 4 MiB, one full device request; pagecache caps it at a quarter of
	// the cache). Linux defaults to 128 KiB and relies on request merging
	// and a deep device queue; a larger window lets a cold sequential read
	// move in requests of the queue's maximum size. Ignored when PageCache
	// is set.
	Readahead int
	// HugePages puts the page cache's memory on transparent huge pages
	// (pagecache.Config.HugePages): large direct writes of file data then
	// reach the device in a few segments, and ext2fs.Open also reads
	// large runs of the image directly (block.FileOptions.DirectReads).
	// The first use of each 2 MiB costs more, and directly read data is
	// not left in the kernel's cache. Ignored when PageCache is set.
	HugePages bool
	// MetadataCacheLimit bounds the clean metadata buffers, in bytes (0:
	// the buffer cache default).
	MetadataCacheLimit int64
	// InodeCacheLimit is how many inodes the inode cache holds before it
	// evicts unused, clean ones, least recently used first (0:
	// DefaultInodeCacheLimit; negative: no limit, inodes stay cached
	// until unmount). Inodes in use (open, or in the middle of an
	// operation) and those with dirty file data stay cached beyond it.
	InodeCacheLimit int
	// FreshInodeTables promises that every inode table block in which
	// no inode is in use holds zeros, as Format leaves them (for a
	// filesystem just made and filled, as mpage mkfs --from does). A new
	// inode alone in its table block (by the inode bitmap) then gets a
	// zeroed buffer for the block instead of a read of it when it is
	// written back; Linux's ext2_write_inode reads it. On a consistent
	// filesystem even a broken promise loses nothing (a free inode's old
	// contents are dead); what the option trusts is the bitmap, which a
	// corrupt one could make wipe inodes it calls free.
	FreshInodeTables bool
	// PageCache, if set, is shared with other mounts instead of making
	// a new one.
	PageCache *pagecache.Cache
	// Queue configures the device's request queue.
	Queue block.Config
	// Writeback configures the flusher of dirty file data.
	Writeback writeback.Config
	// SuperblockAt is the block number of a backup superblock to mount
	// from (the sb= option), in units of the filesystem's block size,
	// e.g. 8193 for 1 KiB blocks or 32768 for 4 KiB blocks. 0 uses the
	// primary. The block size is found by trying each size in turn, as
	// e2fsprogs does. A read-write mount from a backup writes the
	// superblock and group descriptors back to the primary location.
	SuperblockAt int64
	// Errors overrides the superblock's error behaviour.
	Errors ErrorBehavior
	// Atime is when reads update access times (the relatime, noatime
	// and strictatime mount options); the zero value is relatime, as in
	// Linux. A read-only filesystem never updates them. See atime.go.
	Atime AtimeMode
	// NoDirAtime exempts directories: listing one never updates its
	// atime (nodiratime).
	NoDirAtime bool
	// Name names the device in error messages, e.g. the image path.
	Name string
	// Logf receives warnings (mounting an unchecked filesystem, errors
	// found). Nil discards them.
	Logf func(format string, args ...any)
}

// FS is a mounted ext2 filesystem (struct super_block with struct
// ext2_sb_info).
type FS struct {
	// Set by Mount and never changed after.
	dev  block.Device
	q    *block.Queue
	bc   *buffer.Cache
	pc   *pagecache.Cache
	opts Options

	blockSize      int
	blockBits      uint
	addrBits       uint // log2 of block pointers per block
	groupsCount    uint32
	blocksPerGroup uint32
	inodesPerGroup uint32
	inodesCount    uint32
	blocksCount    uint32
	firstDataBlock uint32
	inodeSize      int
	inodesPerBlock int
	itbPerGroup    uint32 // inode table blocks per group
	firstIno       uint32
	filetype       bool  // directory entries carry a file type
	sparseSuper    bool  // backups only in groups 0, 1 and powers of 3, 5, 7
	reservedGDT    int64 // s_reserved_gdt_blocks
	descBlocks     int64 // blocks of group descriptors
	sbBlock        int64 // block holding the primary superblock
	sbOffset       int   // byte offset of the superblock in sbBlock
	readDescAt     int64 // first descriptor block read at mount
	groups         []*group
	mountState     uint16 // s_state as found at mount
	errBehavior    ErrorBehavior

	readOnly atomic.Bool // no more changes (mounted so, or after an error)
	closed   atomic.Bool
	atime    atomic.Uint32 // AtimeMode, | atimeNoDir for nodiratime (atime.go)
	clock    coarseClock   // whole seconds for atime checks; started and halted with the flusher

	// syncMu serialises Sync and Close.
	syncMu sync.Mutex

	// renameMu serialises renames (s_vfs_rename_mutex); see the lock
	// order in namei.go.
	renameMu sync.Mutex

	sbMu struct {
		sync.Mutex
		sb        *layout.Superblock // the in-memory superblock; counts filled at write
		hasErrors bool               // an error was found: write ERROR_FS
		nextGen   uint32             // next inode generation
	}

	icache struct {
		sync.Mutex
		m       map[uint32]*Inode // inodes in memory, by number
		lru     list.List         // of *Inode: the unused ones, most recent first
		limit   int               // evict unused inodes beyond this many (never changes)
		scanned int64             // inodes shrinkInodes has looked at (tests)

		// shrinking is held by the one shrinkInodes at work; it is
		// only ever TryLocked, so it orders with nothing.
		shrinking sync.Mutex
	}

	rsv reservations

	// dcache is the name cache of large directories (dcache.go); its mu
	// is a leaf under the directory's Inode.mu.
	dcache dcache

	// fallback counts the pages mpage sent down the per-block path
	// (FallbackPages).
	fallback struct {
		reads, writes atomic.Int64
	}

	// flusher writes dirty file data in the background (nil on a
	// read-only mount). Set by Mount, never changed after.
	flusher *writeback.Flusher
}

// blockSize limits: the page cache works in 4096-byte pages and a block
// must not be larger than a page (Linux: "blocksize > PAGE_SIZE").
const maxBlockSize = pagecache.PageSize

// Supported features. Everything else incompat is refused; unknown
// ro_compat features allow read-only mounts only. Compat features need no
// support to be kept intact.
const (
	supportedIncompat = layout.IncompatFiletype
	supportedROCompat = layout.ROCompatSparseSuper | layout.ROCompatLargeFile
)

// Mount mounts the ext2 filesystem on dev, mirroring
// fs/ext2/super.c:ext2_fill_super(): it reads and validates the
// superblock, refuses features it does not support, reads and checks the
// group descriptors (ext2_check_descriptors) and, for a read-write mount,
// marks the filesystem not clean and counts the mount (ext2_setup_super).
// The FS owns dev from then on: Close closes it, and so does a failed
// Mount.
func Mount(dev block.Device, opts Options) (_ *FS, err error) {
	fs := &FS{dev: dev, opts: opts}
	fs.icache.m = make(map[uint32]*Inode)
	switch {
	case opts.InodeCacheLimit == 0:
		fs.icache.limit = DefaultInodeCacheLimit
	case opts.InodeCacheLimit > 0:
		fs.icache.limit = opts.InodeCacheLimit
	}
	fs.rsv.init()
	fs.dcache.init()
	defer func() {
		if err != nil {
			if fs.bc != nil {
				fs.bc.Close()
			}
			if fs.q != nil {
				fs.q.Close()
			} else {
				dev.Close()
			}
			// Every mount error names the device, as corruption errors
			// already do: "disk.img: ext2: unsupported ... extent".
			if opts.Name != "" && !strings.Contains(err.Error(), opts.Name) {
				err = fmt.Errorf("%s: %w", opts.Name, err)
			}
		}
	}()
	if err := fs.SetAtimeMode(opts.Atime, opts.NoDirAtime); err != nil {
		return nil, err
	}
	sb, sbByteOff, err := fs.readSuper()
	if err != nil {
		return nil, err
	}
	if err := fs.setGeometry(sb, sbByteOff); err != nil {
		return nil, err
	}
	fs.q = block.NewQueue(dev, opts.Queue)
	fs.bc = buffer.NewCache(fs.q, fs.blockSize, buffer.CacheConfig{Limit: opts.MetadataCacheLimit})
	fs.pc = opts.PageCache
	if fs.pc == nil {
		ra := opts.Readahead
		if ra <= 0 {
			ra = pagecache.MaxReadaheadLimit
		}
		fs.pc = pagecache.NewCache(pagecache.Config{Limit: opts.CacheLimit, MaxReadahead: ra, HugePages: opts.HugePages})
		fs.pc.SetReleasePage(buffer.TryToFreeBuffers)
	}
	if !opts.ReadOnly {
		fs.flusher = writeback.New(fs.pc, opts.Writeback)
		// A flusher pass and a sync hold the queue plugged across
		// the files they write, so adjacent small files go to the
		// device in one request (blk_start_plug in wb_writeback).
		fs.flusher.SetPlugger(fs.q)
	}
	if err := fs.readGroups(); err != nil {
		return nil, err
	}
	root, err := fs.Iget(layout.RootIno)
	if err != nil {
		return nil, fmt.Errorf("ext2: cannot read the root inode: %w", err)
	}
	ok := root.IsDir() && root.disk.Blocks() != 0 && root.disk.Size() != 0
	fs.Iput(root)
	if !ok {
		return nil, fs.corrupt(where{ino: layout.RootIno, group: 0, block: -1, offset: -1}, nil,
			"root inode is not a directory with blocks (run e2fsck)")
	}
	if !opts.ReadOnly {
		if err := fs.setupSuper(); err != nil {
			return nil, err
		}
		fs.flusher.Start()
		fs.clock.start()
	} else {
		fs.readOnly.Store(true)
	}
	return fs, nil
}

// readSuper reads the superblock, from the primary location or the
// backup named by Options.SuperblockAt, and checks it. It returns the byte
// offset it was read from.
func (fs *FS) readSuper() (*layout.Superblock, int64, error) {
	buf := make([]byte, layout.SuperblockSize)
	read := func(off int64) (*layout.Superblock, error) {
		if off+layout.SuperblockSize > fs.dev.Size() {
			return nil, fmt.Errorf("ext2: superblock at byte %d is beyond the end of the %d-byte device", off, fs.dev.Size())
		}
		if err := fs.dev.ReadVecAt([][]byte{buf}, off); err != nil {
			return nil, fmt.Errorf("ext2: reading the superblock at byte %d: %w", off, err)
		}
		return layout.DecodeSuperblock(buf)
	}
	var sb *layout.Superblock
	var off int64
	if fs.opts.SuperblockAt == 0 {
		off = layout.SuperblockOffset
		s, err := read(off)
		if err != nil {
			return nil, 0, err
		}
		sb = s
	} else {
		// Try each block size, as e2fsprogs does for "-b N" without a
		// block size: the right one has a superblock with the magic and
		// that block size.
		var firstErr error
		for bs := int64(layout.MinBlockSize); bs <= layout.MaxBlockSize; bs <<= 1 {
			o := fs.opts.SuperblockAt * bs
			s, err := read(o)
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			if s.Magic == layout.Magic && int64(s.BlockSize()) == bs {
				sb, off = s, o
				break
			}
		}
		if sb == nil {
			if firstErr != nil {
				return nil, 0, fmt.Errorf("ext2: no backup superblock at block %d: %w", fs.opts.SuperblockAt, firstErr)
			}
			return nil, 0, &CorruptError{Device: fs.opts.Name, Group: -1, Block: fs.opts.SuperblockAt, Offset: -1,
				Reason: "no ext2 superblock (magic 0xEF53 with a matching block size) at this block for any block size"}
		}
	}
	if err := sb.Validate(); err != nil {
		return nil, 0, &CorruptError{Device: fs.opts.Name, Group: -1, Block: -1, Offset: off, Reason: "bad superblock", Err: err}
	}
	if err := checkFeatures(sb, fs.opts.ReadOnly); err != nil {
		return nil, 0, err
	}
	if bs := sb.BlockSize(); bs > maxBlockSize {
		return nil, 0, fmt.Errorf("%w: block size %d is larger than the %d-byte page size", ErrUnsupported, bs, maxBlockSize)
	}
	if sb.BlocksCount() >= 1<<32 {
		return nil, 0, fmt.Errorf("%w: %d blocks do not fit in 32-bit block numbers", ErrUnsupported, sb.BlocksCount())
	}
	return sb, off, nil
}

// checkFeatures refuses incompatible features we do not support, naming
// them, and unknown ro_compat features on a read-write mount
// (ext2_fill_super's EXT2_HAS_*_FEATURE checks).
func checkFeatures(sb *layout.Superblock, readOnly bool) error {
	if sb.RevLevel == layout.GoodOldRev {
		return nil // revision 0 has no feature fields
	}
	if bad := sb.FeatureIncompat &^ supportedIncompat; bad != 0 {
		return fmt.Errorf("%w: incompat features %s (this ext2 supports only filetype)", ErrUnsupported, bad)
	}
	if bad := sb.FeatureROCompat &^ supportedROCompat; bad != 0 && !readOnly {
		return fmt.Errorf("%w: ro_compat features %s; mount read-only", ErrUnsupported, bad)
	}
	return nil
}

// setGeometry fills the never-changing fields of fs from a checked
// superblock read at byte sbByteOff.
func (fs *FS) setGeometry(sb *layout.Superblock, sbByteOff int64) error {
	fs.blockSize = sb.BlockSize()
	fs.blockBits = uint(layout.MinBlockLogSize + sb.LogBlockSize)
	fs.addrBits = fs.blockBits - 2
	groups, err := sb.GroupCount()
	if err != nil {
		return &CorruptError{Device: fs.opts.Name, Group: -1, Block: -1, Offset: layout.SuperblockOffset, Reason: "bad superblock", Err: err}
	}
	fs.groupsCount = groups
	fs.blocksPerGroup = sb.BlocksPerGroup
	fs.inodesPerGroup = sb.InodesPerGroup
	fs.inodesCount = sb.InodesCount
	fs.blocksCount = uint32(sb.BlocksCount())
	fs.firstDataBlock = sb.FirstDataBlock
	fs.inodeSize = sb.InodeSize()
	fs.inodesPerBlock = sb.InodesPerBlock()
	fs.itbPerGroup = sb.InodeTableBlocks()
	fs.firstIno = sb.FirstIno()
	fs.filetype = sb.HasIncompat(layout.IncompatFiletype)
	fs.sparseSuper = sb.HasROCompat(layout.ROCompatSparseSuper)
	if sb.HasCompat(layout.CompatResizeInode) {
		fs.reservedGDT = int64(sb.ReservedGDTBlocks)
	}
	dpb := uint32(sb.DescPerBlock())
	fs.descBlocks = int64((groups + dpb - 1) / dpb)
	if fs.blockSize == layout.MinBlockSize {
		fs.sbBlock, fs.sbOffset = 1, 0
	} else {
		fs.sbBlock, fs.sbOffset = 0, layout.SuperblockOffset
	}
	fs.readDescAt = sbByteOff/int64(fs.blockSize) + 1
	if fs.dev.Size() < int64(fs.blocksCount)*int64(fs.blockSize) {
		return &CorruptError{Device: fs.opts.Name, Group: -1, Block: -1, Offset: layout.SuperblockOffset + 4,
			Reason: fmt.Sprintf("s_blocks_count %d blocks of %d bytes is beyond the end of the %d-byte device",
				fs.blocksCount, fs.blockSize, fs.dev.Size())}
	}
	fs.mountState = sb.State
	fs.errBehavior = fs.opts.Errors
	if fs.errBehavior == ErrorsDefault {
		switch sb.Errors {
		case layout.ErrorsRemountRO, layout.ErrorsPanic:
			fs.errBehavior = ErrorsRemountRO
		default:
			fs.errBehavior = ErrorsContinue
		}
	}
	fs.sbMu.sb = sb
	fs.sbMu.nextGen = uint32(time.Now().UnixNano())
	return nil
}

// setupSuper prepares a read-write mount, mirroring
// fs/ext2/super.c:ext2_setup_super(): it warns about an unchecked
// filesystem, clears VALID_FS (so a crash leaves it marked not clean),
// counts the mount, sets the mount time and writes the superblock.
func (fs *FS) setupSuper() error {
	fs.sbMu.Lock()
	sb := fs.sbMu.sb
	switch {
	case sb.State&layout.ValidFS == 0:
		fs.logf("ext2: warning: mounting unchecked fs, running e2fsck is recommended")
	case sb.State&layout.ErrorFS != 0:
		fs.logf("ext2: warning: mounting fs with errors, running e2fsck is recommended")
	case sb.MaxMntCount >= 0 && sb.MntCount >= uint16(sb.MaxMntCount):
		fs.logf("ext2: warning: maximal mount count reached, running e2fsck is recommended")
	}
	if sb.MaxMntCount == 0 {
		sb.MaxMntCount = -1 // EXT2_DFL_MAX_MNT_COUNT is 20 in Linux; mke2fs now writes -1
	}
	sb.MntCount++
	sb.Mtime = uint32(time.Now().Unix())
	sb.State &^= layout.ValidFS
	fs.sbMu.Unlock()
	return fs.writeSuper(true)
}

// logf reports a warning through Options.Logf.
func (fs *FS) logf(format string, args ...any) {
	if fs.opts.Logf != nil {
		fs.opts.Logf(format, args...)
	}
}

// handleError records a metadata error as fs/ext2/super.c:ext2_error()
// does: the filesystem is marked as having errors (ERROR_FS is written at
// the next superblock write) and, with ErrorsRemountRO, it stops
// accepting changes.
func (fs *FS) handleError(err error) {
	fs.sbMu.Lock()
	fs.sbMu.hasErrors = true
	sb := fs.sbMu.sb
	if sb != nil {
		sb.State |= layout.ErrorFS
		sb.ErrorCount++
		now := uint32(time.Now().Unix())
		if sb.FirstErrorTime == 0 {
			sb.FirstErrorTime = now
		}
		sb.LastErrorTime = now
		var ce *CorruptError
		if errors.As(err, &ce) {
			if ce.Inode != 0 {
				if sb.FirstErrorIno == 0 {
					sb.FirstErrorIno = ce.Inode
				}
				sb.LastErrorIno = ce.Inode
			}
			if ce.Block >= 0 {
				if sb.FirstErrorBlock == 0 {
					sb.FirstErrorBlock = uint64(ce.Block)
				}
				sb.LastErrorBlock = uint64(ce.Block)
			}
		}
	}
	fs.sbMu.Unlock()
	fs.logf("%v", err)
	if fs.errBehavior == ErrorsRemountRO && !fs.readOnly.Swap(true) {
		fs.logf("ext2: remounting filesystem read-only")
	}
}

// HasErrors reports whether an error was found since mount.
func (fs *FS) HasErrors() bool {
	fs.sbMu.Lock()
	defer fs.sbMu.Unlock()
	return fs.sbMu.hasErrors
}

// ReadOnly reports whether the filesystem refuses changes.
func (fs *FS) ReadOnly() bool { return fs.readOnly.Load() }

// BlockSize is the filesystem block size in bytes.
func (fs *FS) BlockSize() int { return fs.blockSize }

// Queue is the device's request queue (for statistics and tracing).
func (fs *FS) Queue() *block.Queue { return fs.q }

// BufferCache is the metadata buffer cache.
func (fs *FS) BufferCache() *buffer.Cache { return fs.bc }

// PageCache is the page cache of file data.
func (fs *FS) PageCache() *pagecache.Cache { return fs.pc }

// Superblock returns a copy of the in-memory superblock, with the free
// counts summed from the group descriptors.
func (fs *FS) Superblock() layout.Superblock {
	freeB, freeI := fs.freeCounts()
	fs.sbMu.Lock()
	defer fs.sbMu.Unlock()
	sb := *fs.sbMu.sb
	sb.SetFreeBlocks(freeB)
	sb.SetFreeInodes(freeI)
	return sb
}

// checkWritable returns ErrClosed or ErrReadOnly when no change may be
// made.
func (fs *FS) checkWritable() error {
	if fs.closed.Load() {
		return ErrClosed
	}
	if fs.readOnly.Load() {
		return ErrReadOnly
	}
	return nil
}

// writeSuper writes the superblock to its primary location, with the free
// counts summed over the groups, mirroring
// fs/ext2/super.c:ext2_sync_super(). With wait the write is synchronous.
// A superblock read from a backup is written as the primary
// (s_block_group_nr 0).
func (fs *FS) writeSuper(wait bool) error {
	freeB, freeI := fs.freeCounts()
	bh, err := fs.bc.Bread(fs.sbBlock)
	if err != nil {
		return fmt.Errorf("ext2: reading the superblock block %d: %w", fs.sbBlock, err)
	}
	defer fs.bc.Release(bh)
	fs.sbMu.Lock()
	sb := fs.sbMu.sb
	sb.SetFreeBlocks(freeB)
	sb.SetFreeInodes(freeI)
	sb.Wtime = uint32(time.Now().Unix())
	sb.BlockGroupNr = 0
	bh.Lock()
	sb.Encode(bh.Data[fs.sbOffset : fs.sbOffset+layout.SuperblockSize])
	bh.Unlock()
	fs.sbMu.Unlock()
	fs.bc.MarkDirty(bh)
	if wait {
		if err := fs.bc.WriteSync(bh); err != nil {
			return fmt.Errorf("ext2: writing the superblock: %w", err)
		}
	}
	return nil
}

// freeCounts sums the free block and inode counts of the group
// descriptors (ext2_count_free_blocks, ext2_count_free_inodes).
func (fs *FS) freeCounts() (blocks uint64, inodes uint32) {
	for _, g := range fs.groups {
		g.mu.Lock()
		blocks += uint64(g.desc.FreeBlocksCount)
		inodes += uint32(g.desc.FreeInodesCount)
		g.mu.Unlock()
	}
	return blocks, inodes
}

// Sync writes everything to the device and flushes it, without
// unmounting (ext2_sync_fs after sync_filesystem): the dirty pages of
// every cached file, then the inodes, bitmaps, group descriptors and
// superblock, then a device flush. It returns the first error.
func (fs *FS) Sync() error {
	if fs.closed.Load() {
		return ErrClosed
	}
	fs.syncMu.Lock()
	defer fs.syncMu.Unlock()
	return fs.syncLocked(false)
}

// syncLocked does the work of Sync and Close. With final the superblock
// gets its unmount state.
// Preconditions: fs.syncMu is held.
func (fs *FS) syncLocked(final bool) error {
	var errs []error
	if fs.readOnly.Load() && !fs.writableAtMount() {
		return nil
	}
	// File data first (writeback may still allocate blocks for pages
	// dirtied without write_begin), then the inodes (sizes, block maps).
	if fs.flusher != nil {
		if err := fs.flusher.SyncAll(); err != nil {
			errs = append(errs, fmt.Errorf("ext2: writing file data: %w", err))
		}
	}
	for _, ino := range fs.cachedInodes() {
		if err := ino.writeInode(); err != nil {
			errs = append(errs, err)
		}
		fs.Iput(ino)
	}
	if err := fs.writeDescriptors(); err != nil {
		errs = append(errs, err)
	}
	if final {
		fs.sbMu.Lock()
		st := fs.mountState
		if fs.sbMu.hasErrors {
			st |= layout.ErrorFS
		}
		fs.sbMu.sb.State = st
		fs.sbMu.Unlock()
	}
	if err := fs.writeSuper(false); err != nil {
		errs = append(errs, err)
	}
	if err := fs.bc.Sync(); err != nil {
		errs = append(errs, fmt.Errorf("ext2: writing metadata: %w", err))
	}
	if err := fs.q.Flush(); err != nil {
		errs = append(errs, fmt.Errorf("ext2: flushing the device: %w", err))
	}
	return errors.Join(errs...)
}

// writableAtMount reports whether the filesystem was mounted read-write
// (it may since have turned read-only after an error; what was changed
// before still has to reach the disk, and the error state with it).
func (fs *FS) writableAtMount() bool { return !fs.opts.ReadOnly }

// deleteOpenOrphans deletes, for Close, the inodes that have no name left
// but are still referenced: files unlinked while open and tmpfiles never
// linked. Their last Iput would have deleted them; after Close it never
// comes, and left alone they would stay allocated on disk with no name
// and link count 0 (e2fsck: "Deleted inode has zero dtime", bitmap
// differences). Linux never meets this, as umount waits for the last
// open file; here Close ends every use of the filesystem, so the
// references still held are dead ones.
func (fs *FS) deleteOpenOrphans() []error {
	var errs []error
	for _, ino := range fs.cachedInodes() {
		ino.mu.RLock()
		orphan := ino.disk.LinksCount == 0
		ino.mu.RUnlock()
		if orphan {
			fs.icache.Lock()
			gone := ino.evicted
			if !gone {
				ino.evicted = true
				delete(fs.icache.m, ino.ino)
			}
			fs.icache.Unlock()
			if !gone {
				if err := fs.evict(ino); err != nil {
					errs = append(errs, fmt.Errorf("ext2: deleting inode %d, open but unlinked, at close: %w", ino.ino, err))
				}
			}
		}
		fs.Iput(ino)
	}
	return errs
}

// Close unmounts the filesystem, mirroring
// fs/ext2/super.c:ext2_put_super(): it writes back all file data, inodes,
// bitmaps, group descriptors and the superblock with correct free counts,
// restores the state found at mount (VALID_FS for a filesystem that was
// clean) plus ERROR_FS if errors were found, flushes and closes the
// device. Files still open that have no name left (unlinked while open,
// tmpfiles never linked) are deleted first, as their last close would
// have. A second Close returns ErrClosed.
func (fs *FS) Close() error {
	fs.syncMu.Lock()
	defer fs.syncMu.Unlock()
	if fs.closed.Load() {
		return ErrClosed
	}
	var errs []error
	if fs.writableAtMount() {
		if !fs.readOnly.Load() {
			errs = append(errs, fs.deleteOpenOrphans()...)
		}
		if err := fs.syncLocked(true); err != nil {
			errs = append(errs, err)
		}
	}
	if fs.flusher != nil {
		fs.flusher.Stop()
	}
	fs.clock.halt()
	fs.closed.Store(true)
	fs.rsv.dropAll()
	fs.dcache.close()
	fs.bc.Close()
	if err := fs.q.Close(); err != nil {
		errs = append(errs, fmt.Errorf("ext2: closing the device: %w", err))
	}
	return errors.Join(errs...)
}
