package layout

import "fmt"

// Byte offsets of the superblock fields that Validate names.
var sbFieldOffset = map[string]int{
	"s_inodes_count":        0,
	"s_blocks_count":        4,
	"s_first_data_block":    20,
	"s_log_block_size":      24,
	"s_log_cluster_size":    28,
	"s_blocks_per_group":    32,
	"s_clusters_per_group":  36,
	"s_inodes_per_group":    40,
	"s_magic":               56,
	"s_first_ino":           84,
	"s_inode_size":          88,
	"s_reserved_gdt_blocks": 206,
	"s_desc_size":           254,
	"s_first_meta_bg":       260,
	"s_log_groups_per_flex": 372,
}

func (s *Superblock) fieldErr(field, format string, args ...any) *CorruptError {
	off, ok := sbFieldOffset[field]
	if !ok {
		panic("layout: no offset recorded for superblock field " + field)
	}
	return &CorruptError{Struct: "ext2_super_block", Field: field, Offset: int64(off), Reason: fmt.Sprintf(format, args...)}
}

// Validate checks the superblock for values that would make later
// arithmetic divide by zero, overflow, shift out of range or loop: the
// checks of Linux fs/ext2/super.c:ext2_fill_super() and e2fsprogs
// lib/ext2fs/openfs.c:ext2fs_open2(). It returns the first problem found
// as a *CorruptError wrapping ErrCorrupt.
//
// Validate does not judge feature flags: which features the ext2 package
// supports is its own decision. It does use the bigalloc, 64bit, meta_bg
// and flex_bg flags where they change the geometry.
func (s *Superblock) Validate() error {
	if s.Magic != Magic {
		return s.fieldErr("s_magic", "magic %#04x, want %#04x", s.Magic, Magic)
	}
	if s.LogBlockSize > MaxBlockLogSize-MinBlockLogSize {
		return s.fieldErr("s_log_block_size", "%d gives a block size above %d", s.LogBlockSize, MaxBlockSize)
	}
	bs := uint32(s.BlockSize())
	bigalloc := s.HasROCompat(ROCompatBigalloc)
	if bigalloc {
		if s.LogClusterSize < s.LogBlockSize || s.LogClusterSize > MaxClusterLogSize-MinBlockLogSize {
			return s.fieldErr("s_log_cluster_size", "%d with s_log_block_size %d", s.LogClusterSize, s.LogBlockSize)
		}
	} else if s.LogClusterSize != s.LogBlockSize {
		return s.fieldErr("s_log_cluster_size", "fragment size %d differs from block size %d", uint64(MinBlockSize)<<(s.LogClusterSize&63), bs)
	}

	// Group geometry. Bitmaps are one block, so a group holds at most
	// 8*blocksize blocks (clusters, with bigalloc) and inodes.
	maxPerGroup := 8 * bs
	if s.BlocksPerGroup == 0 {
		return s.fieldErr("s_blocks_per_group", "is zero")
	}
	if !bigalloc && s.BlocksPerGroup > maxPerGroup {
		return s.fieldErr("s_blocks_per_group", "%d, above 8 * block size = %d", s.BlocksPerGroup, maxPerGroup)
	}
	if s.ClustersPerGroup == 0 || s.ClustersPerGroup > maxPerGroup {
		return s.fieldErr("s_clusters_per_group", "%d, want 1..%d", s.ClustersPerGroup, maxPerGroup)
	}
	ratioBits := s.LogClusterSize - s.LogBlockSize
	if uint64(s.BlocksPerGroup) != uint64(s.ClustersPerGroup)<<ratioBits {
		return s.fieldErr("s_blocks_per_group", "%d, want s_clusters_per_group %d << %d", s.BlocksPerGroup, s.ClustersPerGroup, ratioBits)
	}
	if s.InodesPerGroup == 0 || s.InodesPerGroup > maxPerGroup {
		return s.fieldErr("s_inodes_per_group", "%d, want 1..%d", s.InodesPerGroup, maxPerGroup)
	}

	// Inodes.
	if s.RevLevel != GoodOldRev {
		is := uint32(s.InodeSizeRaw)
		if is < GoodOldInodeSize || is > bs || is&(is-1) != 0 {
			return s.fieldErr("s_inode_size", "%d, want a power of two in %d..%d", is, GoodOldInodeSize, bs)
		}
		if s.FirstInoRaw < GoodOldFirstIno {
			return s.fieldErr("s_first_ino", "%d, below %d", s.FirstInoRaw, GoodOldFirstIno)
		}
	}
	if ipb := uint32(s.InodesPerBlock()); s.InodesPerGroup < ipb {
		return s.fieldErr("s_inodes_per_group", "%d, fewer than the %d inodes of one block", s.InodesPerGroup, ipb)
	}
	if s.FirstIno() > s.InodesCount {
		return s.fieldErr("s_first_ino", "%d, beyond s_inodes_count %d", s.FirstIno(), s.InodesCount)
	}

	// Descriptors.
	if s.HasIncompat(Incompat64Bit) {
		ds := uint32(s.DescSizeRaw)
		if ds < GroupDescSize64 || ds > MinBlockSize || ds&(ds-1) != 0 {
			return s.fieldErr("s_desc_size", "%d, want a power of two in %d..%d", ds, GroupDescSize64, MinBlockSize)
		}
	}

	// Block counts. The first data block holds the superblock: block 1
	// with 1024-byte blocks, block 0 otherwise (and always 0 with
	// bigalloc, which mke2fs lays out from block 0).
	wantFirst := uint32(0)
	if bs == MinBlockSize && !bigalloc {
		wantFirst = 1
	}
	if s.FirstDataBlock != wantFirst {
		return s.fieldErr("s_first_data_block", "%d with %d-byte blocks, want %d", s.FirstDataBlock, bs, wantFirst)
	}
	groups, err := s.GroupCount()
	if err != nil {
		return err
	}
	if got, want := uint64(s.InodesCount), uint64(groups)*uint64(s.InodesPerGroup); got != want {
		return s.fieldErr("s_inodes_count", "%d, want %d groups * %d inodes per group = %d", got, groups, s.InodesPerGroup, want)
	}
	if s.HasIncompat(IncompatMetaBG) {
		dpb := uint64(s.DescPerBlock())
		descBlocks := (uint64(groups) + dpb - 1) / dpb
		if uint64(s.FirstMetaBG) > descBlocks {
			return s.fieldErr("s_first_meta_bg", "%d, beyond the %d descriptor blocks", s.FirstMetaBG, descBlocks)
		}
	}
	if apb := bs / 4; uint32(s.ReservedGDTBlocks) > apb {
		return s.fieldErr("s_reserved_gdt_blocks", "%d, more than the %d addresses of one block", s.ReservedGDTBlocks, apb)
	}
	if s.HasIncompat(IncompatFlexBG) && s.LogGroupsPerFlex > 31 {
		return s.fieldErr("s_log_groups_per_flex", "%d, above 31", s.LogGroupsPerFlex)
	}
	return nil
}
