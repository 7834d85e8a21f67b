package layout

import (
	"bytes"
	"fmt"
)

// Superblock location and identity.
const (
	// SuperblockOffset is the byte offset of the primary superblock from
	// the start of the device, whatever the block size.
	SuperblockOffset = 1024
	// SuperblockSize is the size of struct ext2_super_block.
	SuperblockSize = 1024
	// Magic is the value of s_magic (EXT2_SUPER_MAGIC).
	Magic = 0xEF53
)

// Block size limits (EXT2_MIN_BLOCK_LOG_SIZE, EXT2_MAX_BLOCK_LOG_SIZE).
const (
	MinBlockLogSize = 10
	MaxBlockLogSize = 16
	MinBlockSize    = 1 << MinBlockLogSize
	MaxBlockSize    = 1 << MaxBlockLogSize
	// MaxClusterLogSize is EXT2_MAX_CLUSTER_LOG_SIZE (bigalloc).
	MaxClusterLogSize = 29
)

// Filesystem states, s_state (EXT2_VALID_FS and friends).
const (
	ValidFS  = 0x0001 // unmounted cleanly
	ErrorFS  = 0x0002 // errors detected
	OrphanFS = 0x0004 // orphans being recovered (ext3)
)

// Behaviours when detecting errors, s_errors (EXT2_ERRORS_*).
const (
	ErrorsContinue  = 1
	ErrorsRemountRO = 2
	ErrorsPanic     = 3
	ErrorsDefault   = ErrorsContinue
)

// Creator operating systems, s_creator_os (EXT2_OS_*).
const (
	OSLinux   = 0
	OSHurd    = 1
	OSMasix   = 2 // obsolete
	OSFreeBSD = 3
	OSLites   = 4
)

// Revision levels, s_rev_level.
const (
	GoodOldRev = 0 // the original format: 128-byte inodes, first inode 11
	DynamicRev = 1 // variable inode size, feature flags
)

// Default directory hash versions, s_def_hash_version (EXT2_HASH_*).
const (
	HashLegacy          = 0
	HashHalfMD4         = 1
	HashTea             = 2
	HashLegacyUnsigned  = 3
	HashHalfMD4Unsigned = 4
	HashTeaUnsigned     = 5
	HashSiphash         = 6
)

// Miscellaneous superblock flags, s_flags (EXT2_FLAGS_*).
const (
	SBFlagSignedHash   = 0x0001
	SBFlagUnsignedHash = 0x0002
	SBFlagTestFilesys  = 0x0004
	SBFlagIsSnapshot   = 0x0010
	SBFlagFixSnapshot  = 0x0020
	SBFlagFixExclude   = 0x0040
)

// Default mount options, s_default_mount_opts (EXT2_DEFM_*).
const (
	DefmDebug         = 0x0001
	DefmBSDGroups     = 0x0002
	DefmXattrUser     = 0x0004
	DefmACL           = 0x0008
	DefmUID16         = 0x0010
	DefmJModeMask     = 0x0060
	DefmJModeData     = 0x0020
	DefmJModeOrdered  = 0x0040
	DefmJModeWBack    = 0x0060
	DefmNoBarrier     = 0x0100
	DefmBlockValidity = 0x0200
	DefmDiscard       = 0x0400
	DefmNoDelalloc    = 0x0800
)

// Superblock mirrors struct ext2_super_block of e2fsprogs
// lib/ext2fs/ext2_fs.h (1024 bytes, s_inodes_count through s_checksum).
// Fields are in on-disk order; the comment on each gives its byte offset
// and C name. Fields ext2 does not use are kept so that Encode reproduces
// the decoded bytes exactly.
type Superblock struct {
	InodesCount      uint32 // 0 s_inodes_count
	BlocksCountLo    uint32 // 4 s_blocks_count
	RBlocksCountLo   uint32 // 8 s_r_blocks_count
	FreeBlocksLo     uint32 // 12 s_free_blocks_count
	FreeInodesCount  uint32 // 16 s_free_inodes_count
	FirstDataBlock   uint32 // 20 s_first_data_block
	LogBlockSize     uint32 // 24 s_log_block_size
	LogClusterSize   uint32 // 28 s_log_cluster_size (was s_log_frag_size)
	BlocksPerGroup   uint32 // 32 s_blocks_per_group
	ClustersPerGroup uint32 // 36 s_clusters_per_group (was s_frags_per_group)
	InodesPerGroup   uint32 // 40 s_inodes_per_group
	Mtime            uint32 // 44 s_mtime
	Wtime            uint32 // 48 s_wtime
	MntCount         uint16 // 52 s_mnt_count
	MaxMntCount      int16  // 54 s_max_mnt_count
	Magic            uint16 // 56 s_magic
	State            uint16 // 58 s_state
	Errors           uint16 // 60 s_errors
	MinorRevLevel    uint16 // 62 s_minor_rev_level
	Lastcheck        uint32 // 64 s_lastcheck
	Checkinterval    uint32 // 68 s_checkinterval
	CreatorOS        uint32 // 72 s_creator_os
	RevLevel         uint32 // 76 s_rev_level
	DefResuid        uint16 // 80 s_def_resuid
	DefResgid        uint16 // 82 s_def_resgid

	// Fields below are meaningful for DynamicRev superblocks only.

	FirstInoRaw          uint32          // 84 s_first_ino; see FirstIno
	InodeSizeRaw         uint16          // 88 s_inode_size; see InodeSize
	BlockGroupNr         uint16          // 90 s_block_group_nr
	FeatureCompat        CompatFeature   // 92 s_feature_compat
	FeatureIncompat      IncompatFeature // 96 s_feature_incompat
	FeatureROCompat      ROCompatFeature // 100 s_feature_ro_compat
	UUID                 [16]byte        // 104 s_uuid
	VolumeName           [16]byte        // 120 s_volume_name
	LastMounted          [64]byte        // 136 s_last_mounted
	AlgorithmUsageBitmap uint32          // 200 s_algorithm_usage_bitmap
	PreallocBlocks       uint8           // 204 s_prealloc_blocks
	PreallocDirBlocks    uint8           // 205 s_prealloc_dir_blocks
	ReservedGDTBlocks    uint16          // 206 s_reserved_gdt_blocks
	JournalUUID          [16]byte        // 208 s_journal_uuid
	JournalInum          uint32          // 224 s_journal_inum
	JournalDev           uint32          // 228 s_journal_dev
	LastOrphan           uint32          // 232 s_last_orphan
	HashSeed             [4]uint32       // 236 s_hash_seed
	DefHashVersion       uint8           // 252 s_def_hash_version
	JnlBackupType        uint8           // 253 s_jnl_backup_type
	DescSizeRaw          uint16          // 254 s_desc_size; see DescSize
	DefaultMountOpts     uint32          // 256 s_default_mount_opts
	FirstMetaBG          uint32          // 260 s_first_meta_bg
	MkfsTime             uint32          // 264 s_mkfs_time
	JnlBlocks            [17]uint32      // 268 s_jnl_blocks
	BlocksCountHi        uint32          // 336 s_blocks_count_hi
	RBlocksCountHi       uint32          // 340 s_r_blocks_count_hi
	FreeBlocksHi         uint32          // 344 s_free_blocks_hi
	MinExtraIsize        uint16          // 348 s_min_extra_isize
	WantExtraIsize       uint16          // 350 s_want_extra_isize
	Flags                uint32          // 352 s_flags
	RaidStride           uint16          // 356 s_raid_stride
	MMPUpdateInterval    uint16          // 358 s_mmp_update_interval
	MMPBlock             uint64          // 360 s_mmp_block
	RaidStripeWidth      uint32          // 368 s_raid_stripe_width
	LogGroupsPerFlex     uint8           // 372 s_log_groups_per_flex
	ChecksumType         uint8           // 373 s_checksum_type
	EncryptionLevel      uint8           // 374 s_encryption_level
	ReservedPad          uint8           // 375 s_reserved_pad
	KbytesWritten        uint64          // 376 s_kbytes_written
	SnapshotInum         uint32          // 384 s_snapshot_inum
	SnapshotID           uint32          // 388 s_snapshot_id
	SnapshotRBlocksCount uint64          // 392 s_snapshot_r_blocks_count
	SnapshotList         uint32          // 400 s_snapshot_list
	ErrorCount           uint32          // 404 s_error_count
	FirstErrorTime       uint32          // 408 s_first_error_time
	FirstErrorIno        uint32          // 412 s_first_error_ino
	FirstErrorBlock      uint64          // 416 s_first_error_block
	FirstErrorFunc       [32]byte        // 424 s_first_error_func
	FirstErrorLine       uint32          // 456 s_first_error_line
	LastErrorTime        uint32          // 460 s_last_error_time
	LastErrorIno         uint32          // 464 s_last_error_ino
	LastErrorLine        uint32          // 468 s_last_error_line
	LastErrorBlock       uint64          // 472 s_last_error_block
	LastErrorFunc        [32]byte        // 480 s_last_error_func
	MountOpts            [64]byte        // 512 s_mount_opts
	UsrQuotaInum         uint32          // 576 s_usr_quota_inum
	GrpQuotaInum         uint32          // 580 s_grp_quota_inum
	OverheadClusters     uint32          // 584 s_overhead_clusters
	BackupBGs            [2]uint32       // 588 s_backup_bgs
	EncryptAlgos         [4]byte         // 596 s_encrypt_algos
	EncryptPwSalt        [16]byte        // 600 s_encrypt_pw_salt
	LpfIno               uint32          // 616 s_lpf_ino
	PrjQuotaInum         uint32          // 620 s_prj_quota_inum
	ChecksumSeed         uint32          // 624 s_checksum_seed
	WtimeHi              uint8           // 628 s_wtime_hi
	MtimeHi              uint8           // 629 s_mtime_hi
	MkfsTimeHi           uint8           // 630 s_mkfs_time_hi
	LastcheckHi          uint8           // 631 s_lastcheck_hi
	FirstErrorTimeHi     uint8           // 632 s_first_error_time_hi
	LastErrorTimeHi      uint8           // 633 s_last_error_time_hi
	FirstErrorErrcode    uint8           // 634 s_first_error_errcode
	LastErrorErrcode     uint8           // 635 s_last_error_errcode
	Encoding             uint16          // 636 s_encoding
	EncodingFlags        uint16          // 638 s_encoding_flags
	OrphanFileInum       uint32          // 640 s_orphan_file_inum
	Reserved             [376]byte       // 644 s_reserved[94]
	Checksum             uint32          // 1020 s_checksum
}

// DecodeSuperblock decodes the first SuperblockSize bytes of b. It only
// fails when b is too short; call Validate before trusting the values.
func DecodeSuperblock(b []byte) (*Superblock, error) {
	if len(b) < SuperblockSize {
		return nil, shortBuffer("ext2_super_block", len(b), SuperblockSize)
	}
	s := new(Superblock)
	d := decoder{b: b[:SuperblockSize]}
	s.InodesCount = d.u32()
	s.BlocksCountLo = d.u32()
	s.RBlocksCountLo = d.u32()
	s.FreeBlocksLo = d.u32()
	s.FreeInodesCount = d.u32()
	s.FirstDataBlock = d.u32()
	s.LogBlockSize = d.u32()
	s.LogClusterSize = d.u32()
	s.BlocksPerGroup = d.u32()
	s.ClustersPerGroup = d.u32()
	s.InodesPerGroup = d.u32()
	s.Mtime = d.u32()
	s.Wtime = d.u32()
	s.MntCount = d.u16()
	s.MaxMntCount = int16(d.u16())
	s.Magic = d.u16()
	s.State = d.u16()
	s.Errors = d.u16()
	s.MinorRevLevel = d.u16()
	s.Lastcheck = d.u32()
	s.Checkinterval = d.u32()
	s.CreatorOS = d.u32()
	s.RevLevel = d.u32()
	s.DefResuid = d.u16()
	s.DefResgid = d.u16()
	s.FirstInoRaw = d.u32()
	s.InodeSizeRaw = d.u16()
	s.BlockGroupNr = d.u16()
	s.FeatureCompat = CompatFeature(d.u32())
	s.FeatureIncompat = IncompatFeature(d.u32())
	s.FeatureROCompat = ROCompatFeature(d.u32())
	d.bytes(s.UUID[:])
	d.bytes(s.VolumeName[:])
	d.bytes(s.LastMounted[:])
	s.AlgorithmUsageBitmap = d.u32()
	s.PreallocBlocks = d.u8()
	s.PreallocDirBlocks = d.u8()
	s.ReservedGDTBlocks = d.u16()
	d.bytes(s.JournalUUID[:])
	s.JournalInum = d.u32()
	s.JournalDev = d.u32()
	s.LastOrphan = d.u32()
	for i := range s.HashSeed {
		s.HashSeed[i] = d.u32()
	}
	s.DefHashVersion = d.u8()
	s.JnlBackupType = d.u8()
	s.DescSizeRaw = d.u16()
	s.DefaultMountOpts = d.u32()
	s.FirstMetaBG = d.u32()
	s.MkfsTime = d.u32()
	for i := range s.JnlBlocks {
		s.JnlBlocks[i] = d.u32()
	}
	s.BlocksCountHi = d.u32()
	s.RBlocksCountHi = d.u32()
	s.FreeBlocksHi = d.u32()
	s.MinExtraIsize = d.u16()
	s.WantExtraIsize = d.u16()
	s.Flags = d.u32()
	s.RaidStride = d.u16()
	s.MMPUpdateInterval = d.u16()
	s.MMPBlock = d.u64()
	s.RaidStripeWidth = d.u32()
	s.LogGroupsPerFlex = d.u8()
	s.ChecksumType = d.u8()
	s.EncryptionLevel = d.u8()
	s.ReservedPad = d.u8()
	s.KbytesWritten = d.u64()
	s.SnapshotInum = d.u32()
	s.SnapshotID = d.u32()
	s.SnapshotRBlocksCount = d.u64()
	s.SnapshotList = d.u32()
	s.ErrorCount = d.u32()
	s.FirstErrorTime = d.u32()
	s.FirstErrorIno = d.u32()
	s.FirstErrorBlock = d.u64()
	d.bytes(s.FirstErrorFunc[:])
	s.FirstErrorLine = d.u32()
	s.LastErrorTime = d.u32()
	s.LastErrorIno = d.u32()
	s.LastErrorLine = d.u32()
	s.LastErrorBlock = d.u64()
	d.bytes(s.LastErrorFunc[:])
	d.bytes(s.MountOpts[:])
	s.UsrQuotaInum = d.u32()
	s.GrpQuotaInum = d.u32()
	s.OverheadClusters = d.u32()
	s.BackupBGs[0] = d.u32()
	s.BackupBGs[1] = d.u32()
	d.bytes(s.EncryptAlgos[:])
	d.bytes(s.EncryptPwSalt[:])
	s.LpfIno = d.u32()
	s.PrjQuotaInum = d.u32()
	s.ChecksumSeed = d.u32()
	s.WtimeHi = d.u8()
	s.MtimeHi = d.u8()
	s.MkfsTimeHi = d.u8()
	s.LastcheckHi = d.u8()
	s.FirstErrorTimeHi = d.u8()
	s.LastErrorTimeHi = d.u8()
	s.FirstErrorErrcode = d.u8()
	s.LastErrorErrcode = d.u8()
	s.Encoding = d.u16()
	s.EncodingFlags = d.u16()
	s.OrphanFileInum = d.u32()
	d.bytes(s.Reserved[:])
	s.Checksum = d.u32()
	if d.off != SuperblockSize {
		panic(fmt.Sprintf("layout: superblock decoder ended at %d", d.off))
	}
	return s, nil
}

// Encode writes the superblock into b[:SuperblockSize]. It panics if b is
// shorter than SuperblockSize, as binary.LittleEndian.PutUint32 would.
// It does not update s_checksum.
func (s *Superblock) Encode(b []byte) {
	_ = b[SuperblockSize-1]
	e := encoder{b: b[:SuperblockSize]}
	e.u32(s.InodesCount)
	e.u32(s.BlocksCountLo)
	e.u32(s.RBlocksCountLo)
	e.u32(s.FreeBlocksLo)
	e.u32(s.FreeInodesCount)
	e.u32(s.FirstDataBlock)
	e.u32(s.LogBlockSize)
	e.u32(s.LogClusterSize)
	e.u32(s.BlocksPerGroup)
	e.u32(s.ClustersPerGroup)
	e.u32(s.InodesPerGroup)
	e.u32(s.Mtime)
	e.u32(s.Wtime)
	e.u16(s.MntCount)
	e.u16(uint16(s.MaxMntCount))
	e.u16(s.Magic)
	e.u16(s.State)
	e.u16(s.Errors)
	e.u16(s.MinorRevLevel)
	e.u32(s.Lastcheck)
	e.u32(s.Checkinterval)
	e.u32(s.CreatorOS)
	e.u32(s.RevLevel)
	e.u16(s.DefResuid)
	e.u16(s.DefResgid)
	e.u32(s.FirstInoRaw)
	e.u16(s.InodeSizeRaw)
	e.u16(s.BlockGroupNr)
	e.u32(uint32(s.FeatureCompat))
	e.u32(uint32(s.FeatureIncompat))
	e.u32(uint32(s.FeatureROCompat))
	e.bytes(s.UUID[:])
	e.bytes(s.VolumeName[:])
	e.bytes(s.LastMounted[:])
	e.u32(s.AlgorithmUsageBitmap)
	e.u8(s.PreallocBlocks)
	e.u8(s.PreallocDirBlocks)
	e.u16(s.ReservedGDTBlocks)
	e.bytes(s.JournalUUID[:])
	e.u32(s.JournalInum)
	e.u32(s.JournalDev)
	e.u32(s.LastOrphan)
	for _, v := range s.HashSeed {
		e.u32(v)
	}
	e.u8(s.DefHashVersion)
	e.u8(s.JnlBackupType)
	e.u16(s.DescSizeRaw)
	e.u32(s.DefaultMountOpts)
	e.u32(s.FirstMetaBG)
	e.u32(s.MkfsTime)
	for _, v := range s.JnlBlocks {
		e.u32(v)
	}
	e.u32(s.BlocksCountHi)
	e.u32(s.RBlocksCountHi)
	e.u32(s.FreeBlocksHi)
	e.u16(s.MinExtraIsize)
	e.u16(s.WantExtraIsize)
	e.u32(s.Flags)
	e.u16(s.RaidStride)
	e.u16(s.MMPUpdateInterval)
	e.u64(s.MMPBlock)
	e.u32(s.RaidStripeWidth)
	e.u8(s.LogGroupsPerFlex)
	e.u8(s.ChecksumType)
	e.u8(s.EncryptionLevel)
	e.u8(s.ReservedPad)
	e.u64(s.KbytesWritten)
	e.u32(s.SnapshotInum)
	e.u32(s.SnapshotID)
	e.u64(s.SnapshotRBlocksCount)
	e.u32(s.SnapshotList)
	e.u32(s.ErrorCount)
	e.u32(s.FirstErrorTime)
	e.u32(s.FirstErrorIno)
	e.u64(s.FirstErrorBlock)
	e.bytes(s.FirstErrorFunc[:])
	e.u32(s.FirstErrorLine)
	e.u32(s.LastErrorTime)
	e.u32(s.LastErrorIno)
	e.u32(s.LastErrorLine)
	e.u64(s.LastErrorBlock)
	e.bytes(s.LastErrorFunc[:])
	e.bytes(s.MountOpts[:])
	e.u32(s.UsrQuotaInum)
	e.u32(s.GrpQuotaInum)
	e.u32(s.OverheadClusters)
	e.u32(s.BackupBGs[0])
	e.u32(s.BackupBGs[1])
	e.bytes(s.EncryptAlgos[:])
	e.bytes(s.EncryptPwSalt[:])
	e.u32(s.LpfIno)
	e.u32(s.PrjQuotaInum)
	e.u32(s.ChecksumSeed)
	e.u8(s.WtimeHi)
	e.u8(s.MtimeHi)
	e.u8(s.MkfsTimeHi)
	e.u8(s.LastcheckHi)
	e.u8(s.FirstErrorTimeHi)
	e.u8(s.LastErrorTimeHi)
	e.u8(s.FirstErrorErrcode)
	e.u8(s.LastErrorErrcode)
	e.u16(s.Encoding)
	e.u16(s.EncodingFlags)
	e.u32(s.OrphanFileInum)
	e.bytes(s.Reserved[:])
	e.u32(s.Checksum)
	if e.off != SuperblockSize {
		panic(fmt.Sprintf("layout: superblock encoder ended at %d", e.off))
	}
}

// BlockSize returns the block size in bytes, 1024 << s_log_block_size.
// The result is meaningful only after Validate; for an out-of-range
// s_log_block_size it returns 0.
func (s *Superblock) BlockSize() int {
	if s.LogBlockSize > MaxBlockLogSize-MinBlockLogSize {
		return 0
	}
	return MinBlockSize << s.LogBlockSize
}

// FragmentSize returns the fragment (bigalloc: cluster) size in bytes,
// 1024 << s_log_cluster_size, or 0 if s_log_cluster_size is out of range.
// ext2 requires it to equal BlockSize.
func (s *Superblock) FragmentSize() int {
	if s.LogClusterSize > MaxClusterLogSize-MinBlockLogSize {
		return 0
	}
	return MinBlockSize << s.LogClusterSize
}

// InodeSize returns the size of an on-disk inode: GoodOldInodeSize for
// revision 0, s_inode_size otherwise (EXT2_INODE_SIZE).
func (s *Superblock) InodeSize() int {
	if s.RevLevel == GoodOldRev {
		return GoodOldInodeSize
	}
	return int(s.InodeSizeRaw)
}

// FirstIno returns the first inode number not reserved for the
// filesystem: GoodOldFirstIno for revision 0, s_first_ino otherwise
// (EXT2_FIRST_INO).
func (s *Superblock) FirstIno() uint32 {
	if s.RevLevel == GoodOldRev {
		return GoodOldFirstIno
	}
	return s.FirstInoRaw
}

// DescSize returns the size of one group descriptor: s_desc_size when
// the 64bit feature is set, GroupDescSize otherwise (EXT2_DESC_SIZE).
func (s *Superblock) DescSize() int {
	if s.HasIncompat(Incompat64Bit) {
		return int(s.DescSizeRaw)
	}
	return GroupDescSize
}

// InodesPerBlock returns BlockSize / InodeSize, or 0 if either is 0.
func (s *Superblock) InodesPerBlock() int {
	bs, is := s.BlockSize(), s.InodeSize()
	if bs == 0 || is == 0 {
		return 0
	}
	return bs / is
}

// DescPerBlock returns the number of group descriptors in one block, or
// 0 if the block or descriptor size is 0.
func (s *Superblock) DescPerBlock() int {
	bs, ds := s.BlockSize(), s.DescSize()
	if bs == 0 || ds == 0 {
		return 0
	}
	return bs / ds
}

// InodeTableBlocks returns the number of blocks of one group's inode
// table, rounded up, or 0 if the block size is invalid.
func (s *Superblock) InodeTableBlocks() uint32 {
	bs := uint64(s.BlockSize())
	if bs == 0 {
		return 0
	}
	return uint32((uint64(s.InodesPerGroup)*uint64(s.InodeSize()) + bs - 1) / bs)
}

// BlocksCount returns the number of blocks in the filesystem; the high
// word s_blocks_count_hi counts only with the 64bit feature.
func (s *Superblock) BlocksCount() uint64 {
	return s.hiLo(s.BlocksCountHi, s.BlocksCountLo)
}

// RBlocksCount returns the number of blocks reserved for the superuser.
func (s *Superblock) RBlocksCount() uint64 {
	return s.hiLo(s.RBlocksCountHi, s.RBlocksCountLo)
}

// FreeBlocks returns the free block count recorded in the superblock.
func (s *Superblock) FreeBlocks() uint64 {
	return s.hiLo(s.FreeBlocksHi, s.FreeBlocksLo)
}

// SetFreeBlocks records n free blocks, splitting it into the low and (with
// the 64bit feature) high words.
func (s *Superblock) SetFreeBlocks(n uint64) {
	s.FreeBlocksLo = uint32(n)
	if s.HasIncompat(Incompat64Bit) {
		s.FreeBlocksHi = uint32(n >> 32)
	}
}

// FreeInodes returns the free inode count recorded in the superblock.
func (s *Superblock) FreeInodes() uint32 { return s.FreeInodesCount }

// SetFreeInodes records n free inodes.
func (s *Superblock) SetFreeInodes(n uint32) { s.FreeInodesCount = n }

func (s *Superblock) hiLo(hi, lo uint32) uint64 {
	if s.HasIncompat(Incompat64Bit) {
		return uint64(hi)<<32 | uint64(lo)
	}
	return uint64(lo)
}

// GroupCount returns the number of block groups,
// ceil((blocks count - first data block) / blocks per group), as Linux
// fs/ext2/super.c:ext2_fill_super() computes s_groups_count. It fails
// with a *CorruptError when the inputs make that meaningless.
func (s *Superblock) GroupCount() (uint32, error) {
	if s.BlocksPerGroup == 0 {
		return 0, s.fieldErr("s_blocks_per_group", "is zero")
	}
	n := s.BlocksCount()
	if n <= uint64(s.FirstDataBlock) {
		return 0, s.fieldErr("s_blocks_count", "%d blocks, not more than s_first_data_block %d", n, s.FirstDataBlock)
	}
	g := (n-uint64(s.FirstDataBlock)-1)/uint64(s.BlocksPerGroup) + 1
	if g>>32 != 0 {
		return 0, s.fieldErr("s_blocks_count", "%d groups do not fit in 32 bits", g)
	}
	return uint32(g), nil
}

// HasCompat reports whether all features in f are set in s_feature_compat.
func (s *Superblock) HasCompat(f CompatFeature) bool { return s.FeatureCompat&f == f }

// HasIncompat reports whether all features in f are set in
// s_feature_incompat.
func (s *Superblock) HasIncompat(f IncompatFeature) bool { return s.FeatureIncompat&f == f }

// HasROCompat reports whether all features in f are set in
// s_feature_ro_compat.
func (s *Superblock) HasROCompat(f ROCompatFeature) bool { return s.FeatureROCompat&f == f }

// FeatureNames names every feature set in the superblock, compat first,
// then incompat, then ro_compat, each by ascending bit, as dumpe2fs
// prints the "Filesystem features" line.
func (s *Superblock) FeatureNames() []string {
	var names []string
	names = append(names, s.FeatureCompat.Names()...)
	names = append(names, s.FeatureIncompat.Names()...)
	names = append(names, s.FeatureROCompat.Names()...)
	return names
}

// Label returns the volume name up to its first NUL byte.
func (s *Superblock) Label() string { return cString(s.VolumeName[:]) }

// LastMountedPath returns s_last_mounted up to its first NUL byte.
func (s *Superblock) LastMountedPath() string { return cString(s.LastMounted[:]) }

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
