package ext2

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"time"

	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/ext2/layout"
)

// ErrFormatOptions is wrapped by every error Format returns for options it
// cannot honour: a bad block or inode size, a device too small for one
// group's metadata, too many inodes, an unsupported feature.
var ErrFormatOptions = errors.New("ext2: cannot format with these options")

// Features is a set of superblock feature flags.
type Features struct {
	Compat   layout.CompatFeature
	Incompat layout.IncompatFeature
	ROCompat layout.ROCompatFeature
}

// DefaultFeatures are the features Format sets when FormatOptions.Features
// is nil: those of mke2fs.conf's base_features (sparse_super, large_file,
// filetype, resize_inode, dir_index, ext_attr) except resize_inode, which
// Format does not implement (no reserved GDT blocks, no inode 7).
var DefaultFeatures = Features{
	Compat:   layout.CompatExtAttr | layout.CompatDirIndex,
	Incompat: layout.IncompatFiletype,
	ROCompat: layout.ROCompatSparseSuper | layout.ROCompatLargeFile,
}

// formatSupported are the features Format can lay out. dir_index and
// ext_attr only set a flag on a new filesystem; filetype changes the
// directory entries; sparse_super where the backups go; large_file
// nothing at all.
var formatSupported = DefaultFeatures

// String lists the feature names as dumpe2fs prints them.
func (f Features) String() string {
	var n []string
	n = append(n, f.Compat.Names()...)
	n = append(n, f.Incompat.Names()...)
	n = append(n, f.ROCompat.Names()...)
	if len(n) == 0 {
		return "(none)"
	}
	return strings.Join(n, " ")
}

// ParseFeatures applies a mke2fs -O style list such as
// "^dir_index,sparse_super" to base: each name sets a feature, a name
// after '^' clears it, "none" clears all.
func ParseFeatures(base Features, list string) (Features, error) {
	f := base
	for _, word := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' }) {
		clear := strings.HasPrefix(word, "^")
		name := strings.TrimPrefix(word, "^")
		if name == "none" {
			f = Features{}
			continue
		}
		found := false
		for bit := range 32 {
			m := uint32(1) << bit
			switch name {
			case joinOne(layout.CompatFeature(m).Names()):
				f.Compat = setFeature(f.Compat, layout.CompatFeature(m), clear)
			case joinOne(layout.IncompatFeature(m).Names()):
				f.Incompat = setFeature(f.Incompat, layout.IncompatFeature(m), clear)
			case joinOne(layout.ROCompatFeature(m).Names()):
				f.ROCompat = setFeature(f.ROCompat, layout.ROCompatFeature(m), clear)
			default:
				continue
			}
			found = true
			break
		}
		if !found {
			return base, fmt.Errorf("%w: unknown feature %q", ErrFormatOptions, name)
		}
	}
	return f, nil
}

func joinOne(n []string) string {
	if len(n) != 1 {
		return ""
	}
	return n[0]
}

func setFeature[T ~uint32](set, f T, clear bool) T {
	if clear {
		return set &^ f
	}
	return set | f
}

// FormatOptions choose the geometry of a new filesystem. Zero values take
// the defaults of mke2fs -t ext2 with the stock /etc/mke2fs.conf.
type FormatOptions struct {
	// Size is the filesystem size in bytes; default the device size.
	Size int64
	// BlockSize is 1024, 2048 or 4096. Default: 1024 below 512 MiB
	// (mke2fs.conf's "floppy" and "small" types), 4096 otherwise.
	BlockSize int
	// InodeSize is 128 or 256 (a power of two up to the block size);
	// default 256, and always 128 with Rev0.
	InodeSize int
	// Inodes is the least number of inodes; default one per 8192 bytes
	// below 3 MiB ("floppy"), per 4096 bytes below 512 MiB ("small"),
	// per 16384 bytes otherwise. Format rounds it up to fill whole inode
	// table blocks in every group, as mke2fs does.
	Inodes uint32
	// BlocksPerGroup is a multiple of 8 from 256 to 8*BlockSize; default
	// 8*BlockSize.
	BlocksPerGroup uint32
	// ReservedPercent is the share of blocks reserved for root; 0 takes
	// the default 5, a negative value reserves none.
	ReservedPercent float64
	// Label is the volume name, at most 16 bytes.
	Label string
	// UUID is the filesystem UUID; default random.
	UUID [16]byte
	// HashSeed seeds the directory hash (s_hash_seed); default random.
	HashSeed [16]byte
	// Features default to DefaultFeatures. They are ignored with Rev0.
	Features *Features
	// Rev0 makes a revision 0 filesystem: 128-byte inodes, no features,
	// a superblock backup in every group.
	Rev0 bool
	// Time stamps the superblock and the new inodes; default now. Fixing
	// it (with UUID and HashSeed) makes Format's output reproducible.
	Time time.Time
	// DeviceZeroed tells that the device reads as zeros (a file just
	// created or truncated to its size): the inode tables are then not
	// written with zeros, as mke2fs skips zeroing after discarding a
	// device that then reads back zeros. Only their blocks holding the
	// reserved inodes, the root and lost+found are written.
	DeviceZeroed bool
}

// formatPlan is the geometry Format computed, all counts in blocks of
// blockSize unless named otherwise.
type formatPlan struct {
	blockSize      int
	inodeSize      int
	rev            uint32
	features       Features
	blocksCount    uint64
	reserved       uint64 // s_r_blocks_count
	firstDataBlock uint32
	blocksPerGroup uint32
	inodesPerGroup uint32
	itableBlocks   uint32 // inode table blocks per group
	groups         uint32
	descBlocks     uint32
	lpfBlocks      int // blocks of lost+found
}

// sizeType mirrors misc/mke2fs.c:parse_fs_type(): the mke2fs.conf type by
// size, and that type's block size and bytes per inode.
func sizeType(size int64) (blockSize int, inodeRatio int64) {
	const mib = 1 << 20
	switch {
	case size < 3*mib: // floppy
		return 1024, 8192
	case size < 512*mib: // small
		return 1024, 4096
	case size < 4<<40: // default
		return 4096, 16384
	case size < 16<<40: // big
		return 4096, 32768
	default: // huge
		return 4096, 65536
	}
}

// hasSuper mirrors lib/ext2fs/closefs.c:ext2fs_bg_has_super(): every
// group has a superblock backup without sparse_super; with it groups 0, 1
// and the powers of 3, 5 and 7.
func (p *formatPlan) hasSuper(g uint32) bool {
	if g <= 1 || p.features.ROCompat&layout.ROCompatSparseSuper == 0 {
		return true
	}
	if g%2 == 0 {
		return false
	}
	for _, base := range []uint64{3, 5, 7} {
		n := base
		for n < uint64(g) {
			n *= base
		}
		if n == uint64(g) {
			return true
		}
	}
	return false
}

func (p *formatPlan) groupFirst(g uint32) uint64 {
	return uint64(p.firstDataBlock) + uint64(g)*uint64(p.blocksPerGroup)
}

// groupLen is the number of blocks in group g; the last one may be short.
func (p *formatPlan) groupLen(g uint32) uint32 {
	if g == p.groups-1 {
		return uint32(p.blocksCount - p.groupFirst(g))
	}
	return p.blocksPerGroup
}

// metaStart is the first block after group g's superblock and descriptor
// copy: where its block bitmap goes, followed by the inode bitmap and the
// inode table (lib/ext2fs/alloc_tables.c without flex_bg).
func (p *formatPlan) metaStart(g uint32) uint64 {
	b := p.groupFirst(g)
	if p.hasSuper(g) {
		b += 1 + uint64(p.descBlocks)
	}
	return b
}

// groupOverhead is the number of metadata blocks in group g.
func (p *formatPlan) groupOverhead(g uint32) uint64 {
	return p.metaStart(g) - p.groupFirst(g) + 2 + uint64(p.itableBlocks)
}

func badOpt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrFormatOptions}, args...)...)
}

// plan works out the geometry, mirroring the parts of misc/mke2fs.c:PRS()
// and lib/ext2fs/initialize.c:ext2fs_initialize() that apply to ext2
// without resize_inode, flex_bg or bigalloc.
func plan(devSize int64, o FormatOptions) (*formatPlan, error) {
	size := o.Size
	if size == 0 {
		size = devSize
	}
	if size <= 0 || size > devSize {
		return nil, badOpt("size %d bytes, device holds %d", size, devSize)
	}
	defBS, ratio := sizeType(size)
	p := &formatPlan{blockSize: o.BlockSize, inodeSize: o.InodeSize, rev: layout.DynamicRev}
	if p.blockSize == 0 {
		p.blockSize = defBS
	}
	switch p.blockSize {
	case 1024, 2048, 4096:
	default:
		return nil, badOpt("block size %d, want 1024, 2048 or 4096", p.blockSize)
	}
	if o.Rev0 {
		p.rev = layout.GoodOldRev
		if p.inodeSize != 0 && p.inodeSize != layout.GoodOldInodeSize {
			return nil, badOpt("inode size %d with revision 0, which has 128-byte inodes", p.inodeSize)
		}
		p.inodeSize = layout.GoodOldInodeSize
	} else {
		if p.inodeSize == 0 {
			p.inodeSize = 256
		}
		if p.inodeSize < layout.GoodOldInodeSize || p.inodeSize > p.blockSize || bits.OnesCount(uint(p.inodeSize)) != 1 {
			return nil, badOpt("inode size %d, want a power of two from 128 to the block size %d", p.inodeSize, p.blockSize)
		}
		p.features = DefaultFeatures
		if o.Features != nil {
			p.features = *o.Features
		}
		if un := (Features{p.features.Compat &^ formatSupported.Compat, p.features.Incompat &^ formatSupported.Incompat,
			p.features.ROCompat &^ formatSupported.ROCompat}); un != (Features{}) {
			return nil, badOpt("Format does not implement feature %s", un)
		}
	}
	if len(o.Label) > 16 {
		return nil, badOpt("label %q is longer than 16 bytes", o.Label)
	}

	bs := uint64(p.blockSize)
	requested := uint64(size) / bs
	if requested>>32 != 0 {
		return nil, badOpt("%d blocks of %d bytes do not fit in 32 bits", requested, bs)
	}
	if bs == 1024 {
		p.firstDataBlock = 1
	}
	p.blocksPerGroup = o.BlocksPerGroup
	if p.blocksPerGroup == 0 {
		p.blocksPerGroup = uint32(8 * bs)
	} else if p.blocksPerGroup%8 != 0 || p.blocksPerGroup < 256 || uint64(p.blocksPerGroup) > 8*bs {
		return nil, badOpt("%d blocks per group, want a multiple of 8 from 256 to %d", p.blocksPerGroup, 8*bs)
	}
	inodes := uint64(o.Inodes)
	if inodes == 0 {
		if int64(bs) > ratio {
			ratio = int64(bs)
		}
		inodes = requested * bs / uint64(ratio)
	}
	reservedRatio := 5.0
	if o.ReservedPercent > 0 {
		reservedRatio = o.ReservedPercent
	} else if o.ReservedPercent < 0 {
		reservedRatio = 0
	}
	if reservedRatio > 50 {
		return nil, badOpt("%g%% reserved blocks, at most 50%% allowed", reservedRatio)
	}
	// mke2fs computes s_r_blocks_count in floating point and truncates.
	reserved := uint64(reservedRatio * float64(requested) / 100.0)

	firstIno := uint64(layout.GoodOldFirstIno)
	p.blocksCount = requested
	p.reserved = reserved
retry:
	if p.blocksCount <= uint64(p.firstDataBlock) {
		return nil, badOpt("%d bytes are too small for a block group", size)
	}
	p.groups = uint32((p.blocksCount - uint64(p.firstDataBlock) + uint64(p.blocksPerGroup) - 1) / uint64(p.blocksPerGroup))
	descPerBlock := uint32(bs / layout.GroupDescSize)
	p.descBlocks = (p.groups + descPerBlock - 1) / descPerBlock
	n := max(inodes, firstIno+1)
	ipg := (n + uint64(p.groups) - 1) / uint64(p.groups)
	if ipg > 8*bs {
		if p.blocksPerGroup >= 256 {
			// As ext2fs_initialize(): try again with smaller groups.
			p.blocksPerGroup -= 8
			p.blocksCount = requested
			goto retry
		}
		return nil, badOpt("%d inodes need more than %d per group", n, 8*bs)
	}
	ipb := bs / uint64(p.inodeSize)
	if maxIPG := uint64(1<<16) - ipb; ipg > maxIPG {
		ipg = maxIPG
	}
	// Fill whole inode table blocks, then round down to a multiple of 8.
	itb := (ipg*uint64(p.inodeSize) + bs - 1) / bs
	ipg = (itb * bs / uint64(p.inodeSize)) &^ 7
	p.inodesPerGroup = uint32(ipg)
	p.itableBlocks = uint32((ipg*uint64(p.inodeSize) + bs - 1) / bs)
	if n := uint64(p.inodesPerGroup) * uint64(p.groups); n < firstIno+1 {
		return nil, badOpt("too small: %d inodes, need at least %d", n, firstIno+1)
	} else if n > 1<<32-1 {
		return nil, badOpt("%d groups of %d inodes exceed 2^32 inodes", p.groups, p.inodesPerGroup)
	}
	if overhead := 3 + uint64(p.itableBlocks) + uint64(p.descBlocks); overhead > uint64(p.blocksPerGroup) {
		return nil, badOpt("too many inodes: %d blocks of metadata in a group of %d blocks", overhead, p.blocksPerGroup)
	}
	// A short last group must hold its own metadata and 50 blocks more,
	// or it is dropped.
	last := p.groups - 1
	overhead := 2 + uint64(p.itableBlocks)
	if p.hasSuper(last) {
		overhead += 1 + uint64(p.descBlocks)
	}
	rem := (p.blocksCount - uint64(p.firstDataBlock)) % uint64(p.blocksPerGroup)
	if p.groups == 1 && rem != 0 && rem < overhead {
		return nil, badOpt("%d bytes are too small for the %d blocks of metadata of one group", size, overhead)
	}
	if rem != 0 && rem < overhead+50 {
		p.blocksCount -= rem
		// The reserved count keeps its ratio (ext2fs_initialize).
		ratio := 100.0 * float64(reserved) / float64(requested)
		p.reserved = uint64(ratio * float64(p.blocksCount) / 100.0)
		goto retry
	}

	// lost+found: at least 16 KiB and 2 blocks, within the direct
	// blocks (misc/mke2fs.c:create_lost_and_found()).
	p.lpfBlocks = 1
	for i, lpfSize := 1, 0; i < layout.NDirBlocks; i++ {
		if lpfSize += p.blockSize; lpfSize >= 16*1024 && lpfSize >= 2*p.blockSize {
			break
		}
		p.lpfBlocks++
	}
	free := uint64(0)
	for g := range p.groups {
		free += uint64(p.groupLen(g)) - p.groupOverhead(g)
	}
	if need := uint64(1 + p.lpfBlocks); free < need {
		return nil, badOpt("%d free blocks after the metadata, the root and lost+found need %d", free, need)
	}
	return p, nil
}

// fmtBitmap is one group's bitmap block.
type fmtBitmap []byte

func (b fmtBitmap) set(i uint64)        { b[i/8] |= 1 << (i % 8) }
func (b fmtBitmap) isSet(i uint64) bool { return b[i/8]&(1<<(i%8)) != 0 }

// Format writes a new, empty ext2 filesystem to dev, as mke2fs -t ext2
// does: superblocks and group descriptor tables (backups in the
// sparse_super groups), bitmaps, zeroed inode tables, the root directory
// (inode 2) and lost+found (inode 11). It writes straight to the device,
// not through the page cache, and flushes it at the end.
//
// It follows misc/mke2fs.c and lib/ext2fs/initialize.c of e2fsprogs for
// the geometry and layout, so that dumpe2fs shows the same group layout as
// for an image made by mke2fs -t ext2 -O ^resize_inode with the same
// parameters.
func Format(dev block.Device, opts FormatOptions) error {
	p, err := plan(dev.Size(), opts)
	if err != nil {
		return err
	}
	now := opts.Time
	if now.IsZero() {
		now = time.Now()
	}
	ts := uint32(now.Unix())
	uuid, seed := opts.UUID, opts.HashSeed
	if uuid == ([16]byte{}) {
		uuid = randomUUID()
	}
	if seed == ([16]byte{}) {
		seed = randomUUID()
	}
	bs := uint64(p.blockSize)

	// Bitmaps. Bits past the end of a group are set, as
	// lib/ext2fs/rw_bitmaps.c:write_bitmaps() pads them.
	bbm := make([]fmtBitmap, p.groups)
	ibm := make([]fmtBitmap, p.groups)
	gds := make([]layout.GroupDesc, p.groups)
	for g := range p.groups {
		bbm[g], ibm[g] = make(fmtBitmap, bs), make(fmtBitmap, bs)
		for i := uint64(p.groupLen(g)); i < 8*bs; i++ {
			bbm[g].set(i)
		}
		for i := uint64(p.inodesPerGroup); i < 8*bs; i++ {
			ibm[g].set(i)
		}
		for i := range p.groupOverhead(g) {
			bbm[g].set(i)
		}
		ms := p.metaStart(g)
		gds[g] = layout.GroupDesc{
			BlockBitmap:     uint32(ms),
			InodeBitmap:     uint32(ms + 1),
			InodeTable:      uint32(ms + 2),
			FreeInodesCount: uint16(p.inodesPerGroup),
		}
	}
	// alloc marks the first free block at or after goal, as
	// ext2fs_new_block2() finds it.
	alloc := func(goal uint64) uint64 {
		for blk := goal; blk < p.blocksCount; blk++ {
			g := uint32((blk - uint64(p.firstDataBlock)) / uint64(p.blocksPerGroup))
			i := (blk - uint64(p.firstDataBlock)) % uint64(p.blocksPerGroup)
			if !bbm[g].isSet(i) {
				bbm[g].set(i)
				return blk
			}
		}
		panic("ext2: format: plan left no free block") // plan checked the free count
	}
	rootBlk := alloc(uint64(p.firstDataBlock))
	lpf := make([]uint64, p.lpfBlocks)
	goal := rootBlk
	for i := range lpf {
		lpf[i] = alloc(goal)
		goal = lpf[i]
	}
	// Inodes 1 to 11 are in use: the reserved ones, the root and
	// lost+found.
	for ino := uint64(1); ino <= layout.GoodOldFirstIno; ino++ {
		g, i := (ino-1)/uint64(p.inodesPerGroup), (ino-1)%uint64(p.inodesPerGroup)
		ibm[g].set(i)
		gds[g].FreeInodesCount--
	}
	for _, ino := range []uint64{layout.RootIno, layout.GoodOldFirstIno} {
		gds[(ino-1)/uint64(p.inodesPerGroup)].UsedDirsCount++
	}
	var freeBlocks, freeInodes, overhead uint64
	for g := range p.groups {
		n := uint32(0)
		for i := range uint64(p.groupLen(g)) {
			if !bbm[g].isSet(i) {
				n++
			}
		}
		gds[g].FreeBlocksCount = uint16(n)
		freeBlocks += uint64(n)
		freeInodes += uint64(gds[g].FreeInodesCount)
		overhead += p.groupOverhead(g)
	}

	sb := &layout.Superblock{
		InodesCount:      p.inodesPerGroup * p.groups,
		BlocksCountLo:    uint32(p.blocksCount),
		RBlocksCountLo:   uint32(p.reserved),
		FreeBlocksLo:     uint32(freeBlocks),
		FreeInodesCount:  uint32(freeInodes),
		FirstDataBlock:   p.firstDataBlock,
		LogBlockSize:     uint32(bits.TrailingZeros(uint(bs)) - layout.MinBlockLogSize),
		BlocksPerGroup:   p.blocksPerGroup,
		ClustersPerGroup: p.blocksPerGroup,
		InodesPerGroup:   p.inodesPerGroup,
		Wtime:            ts,
		MaxMntCount:      -1,
		Magic:            layout.Magic,
		State:            layout.ValidFS,
		Errors:           layout.ErrorsDefault,
		Lastcheck:        ts,
		CreatorOS:        layout.OSLinux,
		RevLevel:         p.rev,
		UUID:             uuid,
		DefHashVersion:   layout.HashHalfMD4,
		MkfsTime:         ts,
		Flags:            layout.SBFlagSignedHash, // char is signed on x86, where mke2fs runs
		OverheadClusters: uint32(overhead) + p.firstDataBlock,
	}
	sb.LogClusterSize = sb.LogBlockSize
	copy(sb.VolumeName[:], opts.Label)
	for i := range sb.HashSeed {
		sb.HashSeed[i] = uint32(seed[4*i]) | uint32(seed[4*i+1])<<8 | uint32(seed[4*i+2])<<16 | uint32(seed[4*i+3])<<24
	}
	if p.rev == layout.DynamicRev {
		sb.FirstInoRaw = layout.GoodOldFirstIno
		sb.InodeSizeRaw = uint16(p.inodeSize)
		sb.FeatureCompat = p.features.Compat
		sb.FeatureIncompat = p.features.Incompat
		sb.FeatureROCompat = p.features.ROCompat
		// default_mntopts = acl,user_xattr of the stock mke2fs.conf.
		sb.DefaultMountOpts = layout.DefmXattrUser | layout.DefmACL
		if p.inodeSize >= layout.InodeLargeSize {
			sb.MinExtraIsize = layout.InodeLargeSize - layout.InodeSize
			sb.WantExtraIsize = sb.MinExtraIsize
		}
	}

	w := &fmtWriter{dev: dev, bs: int64(bs)}

	// Inode tables, zeroed, with inodes 1, 2 and 11 filled in.
	for g := range p.groups {
		if !opts.DeviceZeroed {
			w.zero(uint64(gds[g].InodeTable), uint64(p.itableBlocks))
		}
	}
	filetype := p.features.Incompat&layout.IncompatFiletype != 0
	newInode := func(mode uint16, links uint16, blocks []uint64) *layout.Inode {
		in := &layout.Inode{Mode: mode, LinksCount: links, Atime: ts, Ctime: ts, Mtime: ts}
		in.SetSize(uint64(len(blocks)) * bs)
		in.SetBlocks(uint64(len(blocks)) * bs / 512)
		for i, b := range blocks {
			in.Block[i] = uint32(b)
		}
		if p.inodeSize >= layout.InodeLargeSize {
			in.ExtraIsize = layout.InodeLargeSize - layout.InodeSize
			in.Crtime = ts
		}
		return in
	}
	// The bad blocks inode keeps only its times
	// (lib/ext2fs/bb_inode.c:ext2fs_update_bb_inode()).
	w.inode(p, gds, layout.BadIno, &layout.Inode{Atime: ts, Ctime: ts, Mtime: ts})
	w.inode(p, gds, layout.RootIno, newInode(layout.ModeDir|0o755, 3, []uint64{rootBlk}))
	w.inode(p, gds, layout.GoodOldFirstIno, newInode(layout.ModeDir|0o700, 2, lpf))
	w.flushInodes()

	// Directory blocks.
	dir := make([]byte, bs)
	ents := []layout.DirEntry{
		{Inode: layout.RootIno, RecLen: 12, FileType: layout.FtDir, Name: "."},
		{Inode: layout.RootIno, RecLen: 12, FileType: layout.FtDir, Name: ".."},
		{Inode: layout.GoodOldFirstIno, RecLen: int(bs) - 24, FileType: layout.FtDir, Name: "lost+found"},
	}
	w.dirBlock(dir, ents, filetype)
	w.write(rootBlk, dir)
	ents = []layout.DirEntry{
		{Inode: layout.GoodOldFirstIno, RecLen: 12, FileType: layout.FtDir, Name: "."},
		{Inode: layout.RootIno, RecLen: int(bs) - 12, FileType: layout.FtDir, Name: ".."},
	}
	w.dirBlock(dir, ents, filetype)
	w.write(lpf[0], dir)
	w.dirBlock(dir, []layout.DirEntry{{RecLen: int(bs)}}, filetype)
	for _, b := range lpf[1:] {
		w.write(b, dir)
	}

	// Bitmaps, then the descriptor table and superblock copies; the
	// primary superblock last.
	for g := range p.groups {
		w.write(uint64(gds[g].BlockBitmap), bbm[g])
		w.write(uint64(gds[g].InodeBitmap), ibm[g])
	}
	gdt := make([]byte, uint64(p.descBlocks)*bs)
	for g := range gds {
		gds[g].Encode(gdt[g*layout.GroupDescSize:])
	}
	sbBuf := make([]byte, bs)
	for g := p.groups - 1; ; g-- {
		if p.hasSuper(g) {
			first := p.groupFirst(g)
			w.write(first+1, gdt)
			sb.BlockGroupNr = uint16(g)
			if p.rev == layout.GoodOldRev {
				sb.BlockGroupNr = 0 // a revision 0 field does not exist
			}
			clear(sbBuf)
			if g == 0 {
				// The primary superblock is at byte 1024 whatever the
				// block size; the bytes before it (the boot sector) are
				// left alone and the rest of its block zeroed.
				sb.Encode(sbBuf[:layout.SuperblockSize])
				w.writeAt(layout.SuperblockOffset, sbBuf[:max(int(bs)-layout.SuperblockOffset, layout.SuperblockSize)])
			} else {
				sb.Encode(sbBuf)
				w.write(first, sbBuf)
			}
		}
		if g == 0 {
			break
		}
	}
	if w.err != nil {
		return w.err
	}
	return dev.Flush()
}

// fmtWriter writes blocks to the device, keeping the first error.
type fmtWriter struct {
	dev  block.Device
	bs   int64
	err  error
	itab map[uint64][]byte // inode table blocks with inodes in use
}

func (w *fmtWriter) writeAt(off int64, b []byte) {
	if w.err == nil {
		if err := w.dev.WriteVecAt([][]byte{b}, off); err != nil {
			w.err = fmt.Errorf("ext2: format: writing %d bytes at byte %d: %w", len(b), off, err)
		}
	}
}

func (w *fmtWriter) write(blk uint64, b []byte) { w.writeAt(int64(blk)*w.bs, b) }

// zero writes n zeroed blocks from blk, in requests of up to 1 MiB.
func (w *fmtWriter) zero(blk, n uint64) {
	const chunk = 1 << 20
	z := make([]byte, min(chunk, int64(n)*w.bs))
	off, end := int64(blk)*w.bs, int64(blk+n)*w.bs
	for off < end && w.err == nil {
		k := min(int64(len(z)), end-off)
		w.writeAt(off, z[:k])
		off += k
	}
}

// inode encodes inode ino into its inode table block, kept in itab until
// flushInodes writes it: the device takes whole sectors only.
func (w *fmtWriter) inode(p *formatPlan, gds []layout.GroupDesc, ino uint32, in *layout.Inode) {
	g := (ino - 1) / p.inodesPerGroup
	off := uint64((ino-1)%p.inodesPerGroup) * uint64(p.inodeSize)
	blk := uint64(gds[g].InodeTable) + off/uint64(w.bs)
	if w.itab == nil {
		w.itab = map[uint64][]byte{}
	}
	b := w.itab[blk]
	if b == nil {
		b = make([]byte, w.bs)
		w.itab[blk] = b
	}
	off %= uint64(w.bs)
	in.Encode(b[off : off+uint64(p.inodeSize)])
}

// flushInodes writes the inode table blocks filled by inode.
func (w *fmtWriter) flushInodes() {
	for blk, b := range w.itab {
		w.write(blk, b)
	}
}

// dirBlock fills b with the entries, one after another.
func (w *fmtWriter) dirBlock(b []byte, ents []layout.DirEntry, filetype bool) {
	clear(b)
	off := 0
	for _, e := range ents {
		if !filetype {
			e.FileType = 0
		}
		if err := e.Encode(b[off:], filetype); err != nil && w.err == nil {
			w.err = fmt.Errorf("ext2: format: %w", err)
		}
		off += e.RecLen
	}
}

// randomUUID returns a random (version 4) UUID.
func randomUUID() [16]byte {
	var u [16]byte
	_, _ = rand.Read(u[:]) // crypto/rand.Read never fails
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}
