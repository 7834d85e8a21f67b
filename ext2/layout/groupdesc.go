package layout

// Group descriptor sizes (EXT2_MIN_DESC_SIZE, EXT2_MIN_DESC_SIZE_64BIT).
const (
	GroupDescSize   = 32
	GroupDescSize64 = 64
)

// Block group flags, bg_flags (EXT2_BG_*).
const (
	BGInodeUninit = 0x0001 // inode table and bitmap not initialized
	BGBlockUninit = 0x0002 // block bitmap not initialized
	BGInodeZeroed = 0x0004 // inode table zeroed on disk
)

// GroupDesc mirrors struct ext2_group_desc of e2fsprogs
// lib/ext2fs/ext2_fs.h: the 32-byte descriptor of one block group. The
// comment on each field gives its byte offset and C name. With the 64bit
// feature a descriptor is s_desc_size bytes, of which this is the first
// 32; the ext2 package does not support 64bit and keeps the rest opaque.
type GroupDesc struct {
	BlockBitmap       uint32 // 0 bg_block_bitmap
	InodeBitmap       uint32 // 4 bg_inode_bitmap
	InodeTable        uint32 // 8 bg_inode_table
	FreeBlocksCount   uint16 // 12 bg_free_blocks_count
	FreeInodesCount   uint16 // 14 bg_free_inodes_count
	UsedDirsCount     uint16 // 16 bg_used_dirs_count
	Flags             uint16 // 18 bg_flags
	ExcludeBitmapLo   uint32 // 20 bg_exclude_bitmap_lo
	BlockBitmapCsumLo uint16 // 24 bg_block_bitmap_csum_lo
	InodeBitmapCsumLo uint16 // 26 bg_inode_bitmap_csum_lo
	ItableUnused      uint16 // 28 bg_itable_unused
	Checksum          uint16 // 30 bg_checksum
}

// DecodeGroupDesc decodes the first GroupDescSize bytes of b.
func DecodeGroupDesc(b []byte) (*GroupDesc, error) {
	if len(b) < GroupDescSize {
		return nil, shortBuffer("ext2_group_desc", len(b), GroupDescSize)
	}
	d := decoder{b: b[:GroupDescSize]}
	return &GroupDesc{
		BlockBitmap:       d.u32(),
		InodeBitmap:       d.u32(),
		InodeTable:        d.u32(),
		FreeBlocksCount:   d.u16(),
		FreeInodesCount:   d.u16(),
		UsedDirsCount:     d.u16(),
		Flags:             d.u16(),
		ExcludeBitmapLo:   d.u32(),
		BlockBitmapCsumLo: d.u16(),
		InodeBitmapCsumLo: d.u16(),
		ItableUnused:      d.u16(),
		Checksum:          d.u16(),
	}, nil
}

// Encode writes the descriptor into b[:GroupDescSize]. It panics if b is
// shorter than GroupDescSize.
func (g *GroupDesc) Encode(b []byte) {
	_ = b[GroupDescSize-1]
	e := encoder{b: b[:GroupDescSize]}
	e.u32(g.BlockBitmap)
	e.u32(g.InodeBitmap)
	e.u32(g.InodeTable)
	e.u16(g.FreeBlocksCount)
	e.u16(g.FreeInodesCount)
	e.u16(g.UsedDirsCount)
	e.u16(g.Flags)
	e.u32(g.ExcludeBitmapLo)
	e.u16(g.BlockBitmapCsumLo)
	e.u16(g.InodeBitmapCsumLo)
	e.u16(g.ItableUnused)
	e.u16(g.Checksum)
}
