package layout

import (
	"bytes"
	"encoding/binary"
)

// Special inode numbers (EXT2_*_INO).
const (
	BadIno        = 1  // bad blocks
	RootIno       = 2  // root directory
	UsrQuotaIno   = 3  // ext4 user quota
	GrpQuotaIno   = 4  // ext4 group quota
	BootLoaderIno = 5  // boot loader
	UndelDirIno   = 6  // undelete directory
	ResizeIno     = 7  // reserved group descriptors (resize_inode)
	JournalIno    = 8  // ext3 journal
	ExcludeIno    = 9  // snapshot exclude bitmap
	ReplicaIno    = 10 // non-upstream replica feature
)

// Revision-0 geometry (EXT2_GOOD_OLD_*). mke2fs puts lost+found at the
// first non-reserved inode, GoodOldFirstIno, on a fresh filesystem.
const (
	GoodOldInodeSize = 128
	GoodOldFirstIno  = 11
)

// InodeSize is the size of struct ext2_inode, the part every inode has.
// InodeLargeSize is the size of struct ext2_inode_large through i_projid.
const (
	InodeSize      = 128
	InodeLargeSize = 160
)

// Block map slots in i_block (EXT2_NDIR_BLOCKS and friends).
const (
	NDirBlocks = 12
	IndBlock   = NDirBlocks
	DIndBlock  = IndBlock + 1
	TIndBlock  = DIndBlock + 1
	NBlocks    = TIndBlock + 1
)

// LinkMax is EXT2_LINK_MAX, the most hard links ext2 allows.
const LinkMax = 65000

// File mode bits, i_mode (the S_IF* and permission bits of stat.h).
const (
	ModeFmt  = 0xF000 // S_IFMT: mask of the type bits
	ModeSock = 0xC000 // S_IFSOCK
	ModeLnk  = 0xA000 // S_IFLNK
	ModeReg  = 0x8000 // S_IFREG
	ModeBlk  = 0x6000 // S_IFBLK
	ModeDir  = 0x4000 // S_IFDIR
	ModeChr  = 0x2000 // S_IFCHR
	ModeFifo = 0x1000 // S_IFIFO

	ModeSetuid = 0o4000 // S_ISUID
	ModeSetgid = 0o2000 // S_ISGID
	ModeSticky = 0o1000 // S_ISVTX
	ModePerm   = 0o7777 // permission bits with setuid, setgid, sticky
)

// Inode flags, i_flags (EXT2_*_FL, EXT3_*_FL, EXT4_*_FL).
const (
	FlSecRm           = 0x00000001 // secure deletion
	FlUnrm            = 0x00000002 // undelete
	FlCompr           = 0x00000004 // compress file
	FlSync            = 0x00000008 // synchronous updates
	FlImmutable       = 0x00000010 // immutable file
	FlAppend          = 0x00000020 // writes may only append
	FlNoDump          = 0x00000040 // do not dump
	FlNoAtime         = 0x00000080 // do not update atime
	FlDirty           = 0x00000100 // compression: dirty
	FlComprBlk        = 0x00000200 // compression: compressed clusters
	FlNoCompr         = 0x00000400 // compression: access raw data
	FlEncrypt         = 0x00000800 // ext4 encrypted inode (was ECOMPR)
	FlIndex           = 0x00001000 // hash-indexed (htree) directory
	FlBtree           = FlIndex    // old name of FlIndex
	FlImagic          = 0x00002000 // AFS directory
	FlJournalData     = 0x00004000 // ext3: journal file data
	FlNoTail          = 0x00008000 // do not merge the file tail
	FlDirSync         = 0x00010000 // synchronous directory changes
	FlTopDir          = 0x00020000 // top of directory hierarchies
	FlHugeFile        = 0x00040000 // i_blocks counts filesystem blocks
	FlExtents         = 0x00080000 // ext4: inode uses extents
	FlVerity          = 0x00100000 // ext4: verity protected
	FlEAInode         = 0x00200000 // ext4: inode holds a large xattr value
	FlNoCow           = 0x00800000 // do not copy on write
	FlSnapfile        = 0x01000000 // snapshot file
	FlDax             = 0x02000000 // DAX
	FlSnapfileDeleted = 0x04000000 // snapshot being deleted
	FlSnapfileShrunk  = 0x08000000 // snapshot shrink done
	FlInlineData      = 0x10000000 // ext4: data stored in the inode
	FlProjInherit     = 0x20000000 // inherit the project ID
	FlCasefold        = 0x40000000 // casefolded directory
	FlReserved        = 0x80000000 // reserved for ext2 lib
)

// Inode mirrors struct ext2_inode_large of e2fsprogs lib/ext2fs/ext2_fs.h:
// the 128 bytes of struct ext2_inode followed, on filesystems with larger
// inodes, by the extra fields i_extra_isize through i_projid. The comment
// on each field gives its byte offset and C name.
//
// The osd1 and osd2 unions are decoded in their Linux form. The Hurd form
// puts i_uid_high and i_gid_high at the same offsets, and its other fields
// (h_i_frag, h_i_fsize, h_i_mode_high, h_i_author) survive encoding as the
// bytes of the Linux fields that overlay them.
type Inode struct {
	Mode         uint16          // 0 i_mode
	UIDLow       uint16          // 2 i_uid
	SizeLo       uint32          // 4 i_size
	Atime        uint32          // 8 i_atime
	Ctime        uint32          // 12 i_ctime
	Mtime        uint32          // 16 i_mtime
	Dtime        uint32          // 20 i_dtime
	GIDLow       uint16          // 24 i_gid
	LinksCount   uint16          // 26 i_links_count
	BlocksLo     uint32          // 28 i_blocks (512-byte units unless FlHugeFile)
	Flags        uint32          // 32 i_flags
	OSD1         uint32          // 36 osd1: l_i_version (Linux), h_i_translator (Hurd)
	Block        [NBlocks]uint32 // 40 i_block
	Generation   uint32          // 100 i_generation
	FileACLLo    uint32          // 104 i_file_acl: the xattr block
	SizeHigh     uint32          // 108 i_size_high (was i_dir_acl); see Size
	Faddr        uint32          // 112 i_faddr (obsolete fragment address)
	BlocksHigh   uint16          // 116 osd2.linux2.l_i_blocks_hi
	FileACLHigh  uint16          // 118 osd2.linux2.l_i_file_acl_high
	UIDHigh      uint16          // 120 osd2.linux2.l_i_uid_high
	GIDHigh      uint16          // 122 osd2.linux2.l_i_gid_high
	ChecksumLo   uint16          // 124 osd2.linux2.l_i_checksum_lo
	OSD2Reserved uint16          // 126 osd2.linux2.l_i_reserved

	// The extra fields exist only when the on-disk inode is larger than
	// 128 bytes. ExtraIsize is decoded whenever the inode has room for
	// it; each later field is decoded (and encoded) only when it lies
	// within the first 128+ExtraIsize bytes, as e2fsprogs'
	// ext2fs_inode_includes() decides. Fields outside are left zero.

	ExtraIsize  uint16 // 128 i_extra_isize
	ChecksumHi  uint16 // 130 i_checksum_hi
	CtimeExtra  uint32 // 132 i_ctime_extra
	MtimeExtra  uint32 // 136 i_mtime_extra
	AtimeExtra  uint32 // 140 i_atime_extra
	Crtime      uint32 // 144 i_crtime
	CrtimeExtra uint32 // 148 i_crtime_extra
	VersionHi   uint32 // 152 i_version_hi
	Projid      uint32 // 156 i_projid

	// Raw holds a copy of the whole on-disk inode the fields were decoded
	// from. Encode starts from it, so bytes no field covers (in-inode
	// extended attributes, padding, fields newer than this package)
	// survive a decode/encode cycle. It is nil for a new inode.
	Raw []byte
}

// extraField describes one field of struct ext2_inode_large past 128.
type extraField struct {
	off, size int
}

// Offsets of the extra fields, in order.
var (
	xChecksumHi  = extraField{130, 2}
	xCtimeExtra  = extraField{132, 4}
	xMtimeExtra  = extraField{136, 4}
	xAtimeExtra  = extraField{140, 4}
	xCrtime      = extraField{144, 4}
	xCrtimeExtra = extraField{148, 4}
	xVersionHi   = extraField{152, 4}
	xProjid      = extraField{156, 4}
)

// includes reports whether field f lies within both the n bytes of an
// on-disk inode and its 128+extra bytes in use.
func includes(f extraField, n int, extra uint16) bool {
	end := f.off + f.size
	return end <= n && end <= InodeSize+int(extra)
}

// DecodeInode decodes an on-disk inode; b is the whole inode (InodeSize
// bytes on a revision-0 filesystem, s_inode_size bytes otherwise). It
// fails only when b is shorter than InodeSize. The inode keeps a copy of
// b in Raw.
func DecodeInode(b []byte) (*Inode, error) {
	if len(b) < InodeSize {
		return nil, shortBuffer("ext2_inode", len(b), InodeSize)
	}
	in := &Inode{Raw: bytes.Clone(b)}
	d := decoder{b: b}
	in.Mode = d.u16()
	in.UIDLow = d.u16()
	in.SizeLo = d.u32()
	in.Atime = d.u32()
	in.Ctime = d.u32()
	in.Mtime = d.u32()
	in.Dtime = d.u32()
	in.GIDLow = d.u16()
	in.LinksCount = d.u16()
	in.BlocksLo = d.u32()
	in.Flags = d.u32()
	in.OSD1 = d.u32()
	for i := range in.Block {
		in.Block[i] = d.u32()
	}
	in.Generation = d.u32()
	in.FileACLLo = d.u32()
	in.SizeHigh = d.u32()
	in.Faddr = d.u32()
	in.BlocksHigh = d.u16()
	in.FileACLHigh = d.u16()
	in.UIDHigh = d.u16()
	in.GIDHigh = d.u16()
	in.ChecksumLo = d.u16()
	in.OSD2Reserved = d.u16()
	if len(b) < InodeSize+2 {
		return in, nil
	}
	in.ExtraIsize = d.u16()
	u16 := func(f extraField) uint16 {
		if !includes(f, len(b), in.ExtraIsize) {
			return 0
		}
		return binary.LittleEndian.Uint16(b[f.off:])
	}
	u32 := func(f extraField) uint32 {
		if !includes(f, len(b), in.ExtraIsize) {
			return 0
		}
		return binary.LittleEndian.Uint32(b[f.off:])
	}
	in.ChecksumHi = u16(xChecksumHi)
	in.CtimeExtra = u32(xCtimeExtra)
	in.MtimeExtra = u32(xMtimeExtra)
	in.AtimeExtra = u32(xAtimeExtra)
	in.Crtime = u32(xCrtime)
	in.CrtimeExtra = u32(xCrtimeExtra)
	in.VersionHi = u32(xVersionHi)
	in.Projid = u32(xProjid)
	return in, nil
}

// Encode writes the inode into b, which is the whole on-disk inode. It
// starts from Raw (zero where Raw is short or nil) and writes every field
// that fits: the 128 bytes of struct ext2_inode, then i_extra_isize if b
// has room, then each extra field within 128+ExtraIsize bytes. It panics
// if b is shorter than InodeSize.
func (in *Inode) Encode(b []byte) {
	_ = b[InodeSize-1]
	n := copy(b, in.Raw)
	clear(b[n:])
	e := encoder{b: b}
	e.u16(in.Mode)
	e.u16(in.UIDLow)
	e.u32(in.SizeLo)
	e.u32(in.Atime)
	e.u32(in.Ctime)
	e.u32(in.Mtime)
	e.u32(in.Dtime)
	e.u16(in.GIDLow)
	e.u16(in.LinksCount)
	e.u32(in.BlocksLo)
	e.u32(in.Flags)
	e.u32(in.OSD1)
	for _, v := range in.Block {
		e.u32(v)
	}
	e.u32(in.Generation)
	e.u32(in.FileACLLo)
	e.u32(in.SizeHigh)
	e.u32(in.Faddr)
	e.u16(in.BlocksHigh)
	e.u16(in.FileACLHigh)
	e.u16(in.UIDHigh)
	e.u16(in.GIDHigh)
	e.u16(in.ChecksumLo)
	e.u16(in.OSD2Reserved)
	if len(b) < InodeSize+2 {
		return
	}
	e.u16(in.ExtraIsize)
	u16 := func(f extraField, v uint16) {
		if includes(f, len(b), in.ExtraIsize) {
			binary.LittleEndian.PutUint16(b[f.off:], v)
		}
	}
	u32 := func(f extraField, v uint32) {
		if includes(f, len(b), in.ExtraIsize) {
			binary.LittleEndian.PutUint32(b[f.off:], v)
		}
	}
	u16(xChecksumHi, in.ChecksumHi)
	u32(xCtimeExtra, in.CtimeExtra)
	u32(xMtimeExtra, in.MtimeExtra)
	u32(xAtimeExtra, in.AtimeExtra)
	u32(xCrtime, in.Crtime)
	u32(xCrtimeExtra, in.CrtimeExtra)
	u32(xVersionHi, in.VersionHi)
	u32(xProjid, in.Projid)
}

// Type returns the file type bits of the mode, Mode & ModeFmt.
func (in *Inode) Type() uint16 { return in.Mode & ModeFmt }

// IsDir reports whether the inode is a directory.
func (in *Inode) IsDir() bool { return in.Type() == ModeDir }

// IsReg reports whether the inode is a regular file.
func (in *Inode) IsReg() bool { return in.Type() == ModeReg }

// IsLnk reports whether the inode is a symbolic link.
func (in *Inode) IsLnk() bool { return in.Type() == ModeLnk }

// IsChr reports whether the inode is a character device.
func (in *Inode) IsChr() bool { return in.Type() == ModeChr }

// IsBlk reports whether the inode is a block device.
func (in *Inode) IsBlk() bool { return in.Type() == ModeBlk }

// IsFifo reports whether the inode is a named pipe.
func (in *Inode) IsFifo() bool { return in.Type() == ModeFifo }

// IsSock reports whether the inode is a socket.
func (in *Inode) IsSock() bool { return in.Type() == ModeSock }

// Size returns the file size in bytes.
//
// The high word at offset 108 is i_size_high for regular files only. For
// every other type it is the old i_dir_acl, and Linux ext2
// (fs/ext2/inode.c: ext2_iget() and __ext2_write_inode()) neither reads
// it into the size nor writes the size into it. We follow Linux ext2:
// directories, symlinks and devices have 32-bit sizes. (e2fsprogs'
// EXT2_I_SIZE uses the high word for every type, which only matters for
// ext4 large_dir directories above 4 GiB.)
func (in *Inode) Size() uint64 {
	if in.IsReg() {
		return uint64(in.SizeHigh)<<32 | uint64(in.SizeLo)
	}
	return uint64(in.SizeLo)
}

// SetSize records a size of n bytes. For regular files the high 32 bits
// go to i_size_high; for other types i_size_high (i_dir_acl) is left as
// it is and the caller must keep n below 4 GiB. Set Mode first.
func (in *Inode) SetSize(n uint64) {
	in.SizeLo = uint32(n)
	if in.IsReg() {
		in.SizeHigh = uint32(n >> 32)
	}
}

// UID returns the 32-bit owner, i_uid with l_i_uid_high above it.
func (in *Inode) UID() uint32 { return uint32(in.UIDHigh)<<16 | uint32(in.UIDLow) }

// GID returns the 32-bit group, i_gid with l_i_gid_high above it.
func (in *Inode) GID() uint32 { return uint32(in.GIDHigh)<<16 | uint32(in.GIDLow) }

// SetUID records a 32-bit owner in i_uid and l_i_uid_high.
func (in *Inode) SetUID(uid uint32) {
	in.UIDLow, in.UIDHigh = uint16(uid), uint16(uid>>16)
}

// SetGID records a 32-bit group in i_gid and l_i_gid_high.
func (in *Inode) SetGID(gid uint32) {
	in.GIDLow, in.GIDHigh = uint16(gid), uint16(gid>>16)
}

// Blocks returns i_blocks with l_i_blocks_hi above it. The count is in
// 512-byte sectors unless FlHugeFile is set (then in filesystem blocks);
// Linux ext2 uses only the low 32 bits, and l_i_blocks_hi is 0 on a
// filesystem without huge_file.
func (in *Inode) Blocks() uint64 { return uint64(in.BlocksHigh)<<32 | uint64(in.BlocksLo) }

// SetBlocks records a count of 512-byte sectors in i_blocks and
// l_i_blocks_hi.
func (in *Inode) SetBlocks(n uint64) {
	in.BlocksLo, in.BlocksHigh = uint32(n), uint16(n>>32)
}

// FileACL returns the block number of the extended attribute block,
// i_file_acl with l_i_file_acl_high above it, or 0 if there is none.
func (in *Inode) FileACL() uint64 { return uint64(in.FileACLHigh)<<32 | uint64(in.FileACLLo) }

// SetFileACL records the extended attribute block number.
func (in *Inode) SetFileACL(blk uint64) {
	in.FileACLLo, in.FileACLHigh = uint32(blk), uint16(blk>>32)
}

// BlockBytes returns the 60 bytes of i_block as they lie on disk. A fast
// symlink keeps its target there.
func (in *Inode) BlockBytes() []byte {
	b := make([]byte, 4*NBlocks)
	for i, v := range in.Block {
		binary.LittleEndian.PutUint32(b[4*i:], v)
	}
	return b
}

// SetBlockBytes fills i_block from up to 60 bytes of b, zero-padding.
func (in *Inode) SetBlockBytes(b []byte) {
	var buf [4 * NBlocks]byte
	copy(buf[:], b)
	for i := range in.Block {
		in.Block[i] = binary.LittleEndian.Uint32(buf[4*i:])
	}
}

// Rdev returns the device number of a character or block device inode,
// as Linux fs/ext2/inode.c:ext2_iget() reads it.
func (in *Inode) Rdev() (major, minor uint32) {
	return DecodeDev(in.Block[0], in.Block[1])
}

// SetRdev records a device number the way
// fs/ext2/inode.c:__ext2_write_inode() does (see EncodeDev).
func (in *Inode) SetRdev(major, minor uint32) {
	b0, b1 := EncodeDev(major, minor)
	in.Block[0], in.Block[1] = b0, b1
	if b0 == 0 {
		in.Block[2] = 0
	}
}

// EncodeDev returns the values of i_block[0] and i_block[1] for a device
// number. A device whose major and minor both fit in 8 bits uses the old
// 16-bit format in i_block[0] (old_encode_dev) and clears i_block[1];
// others leave i_block[0] zero and use the new 32-bit format in
// i_block[1] (new_encode_dev: minor bits 0-7, major bits 8-19, minor bits
// 8-19 above). Majors above 12 bits and minors above 20 bits are
// truncated, as Linux's dev_t allows no more.
func EncodeDev(major, minor uint32) (block0, block1 uint32) {
	if major < 256 && minor < 256 {
		return major<<8 | minor, 0
	}
	major &= 0xfff
	minor &= 0xfffff
	return 0, minor&0xff | major<<8 | (minor&^0xff)<<12
}

// DecodeDev returns the device number stored in i_block[0] and
// i_block[1]: the old format in i_block[0] if it is non-zero
// (old_decode_dev), else the new format in i_block[1] (new_decode_dev).
func DecodeDev(block0, block1 uint32) (major, minor uint32) {
	if block0 != 0 {
		return block0 >> 8 & 0xff, block0 & 0xff
	}
	return block1 & 0xfff00 >> 8, block1&0xff | block1>>12&0xfff00
}

// XattrArea returns the bytes past 128+i_extra_isize of Raw, where ext4
// keeps in-inode extended attributes (see ParseInodeXattrs). It returns
// nil when the inode has no such area or i_extra_isize overruns it.
func (in *Inode) XattrArea() []byte {
	start := InodeSize + int(in.ExtraIsize)
	if len(in.Raw) <= InodeSize || start >= len(in.Raw) {
		return nil
	}
	return in.Raw[start:]
}
