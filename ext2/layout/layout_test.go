package layout

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// fieldCase sets one field to a recognisable value; the test encodes the
// structure into a zero buffer and expects exactly that value at off.
type fieldCase struct {
	name string
	off  int
	size int
	set  func(v uint64)
}

// checkFieldOffsets encodes a zero structure with one field set and
// checks the bytes land at the field's offset and nowhere else.
func checkFieldOffsets(t *testing.T, size int, cases []fieldCase, reset func(), encode func([]byte)) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reset()
			// A value whose every byte is non-zero and distinct.
			v := uint64(0x8877665544332211) & (1<<(8*tc.size) - 1)
			if tc.size == 8 {
				v = 0x8877665544332211
			}
			tc.set(v)
			b := make([]byte, size)
			encode(b)
			want := make([]byte, size)
			var le [8]byte
			binary.LittleEndian.PutUint64(le[:], v)
			copy(want[tc.off:], le[:tc.size])
			if !bytes.Equal(b, want) {
				t.Errorf("encoded %s: got non-zero bytes at %v, want %x at offset %d", tc.name, nonZero(b), le[:tc.size], tc.off)
			}
		})
	}
}

func nonZero(b []byte) []int {
	var idx []int
	for i, c := range b {
		if c != 0 {
			idx = append(idx, i)
		}
	}
	return idx
}

func TestSuperblockFieldOffsets(t *testing.T) {
	var s Superblock
	cases := []fieldCase{
		{"s_inodes_count", 0, 4, func(v uint64) { s.InodesCount = uint32(v) }},
		{"s_blocks_count", 4, 4, func(v uint64) { s.BlocksCountLo = uint32(v) }},
		{"s_first_data_block", 20, 4, func(v uint64) { s.FirstDataBlock = uint32(v) }},
		{"s_log_block_size", 24, 4, func(v uint64) { s.LogBlockSize = uint32(v) }},
		{"s_inodes_per_group", 40, 4, func(v uint64) { s.InodesPerGroup = uint32(v) }},
		{"s_max_mnt_count", 54, 2, func(v uint64) { s.MaxMntCount = int16(v) }},
		{"s_magic", 56, 2, func(v uint64) { s.Magic = uint16(v) }},
		{"s_state", 58, 2, func(v uint64) { s.State = uint16(v) }},
		{"s_rev_level", 76, 4, func(v uint64) { s.RevLevel = uint32(v) }},
		{"s_first_ino", 84, 4, func(v uint64) { s.FirstInoRaw = uint32(v) }},
		{"s_inode_size", 88, 2, func(v uint64) { s.InodeSizeRaw = uint16(v) }},
		{"s_feature_compat", 92, 4, func(v uint64) { s.FeatureCompat = CompatFeature(v) }},
		{"s_feature_incompat", 96, 4, func(v uint64) { s.FeatureIncompat = IncompatFeature(v) }},
		{"s_feature_ro_compat", 100, 4, func(v uint64) { s.FeatureROCompat = ROCompatFeature(v) }},
		{"s_uuid", 104, 1, func(v uint64) { s.UUID[0] = uint8(v) }},
		{"s_volume_name", 120, 1, func(v uint64) { s.VolumeName[0] = uint8(v) }},
		{"s_last_mounted", 136, 1, func(v uint64) { s.LastMounted[0] = uint8(v) }},
		{"s_reserved_gdt_blocks", 206, 2, func(v uint64) { s.ReservedGDTBlocks = uint16(v) }},
		{"s_journal_inum", 224, 4, func(v uint64) { s.JournalInum = uint32(v) }},
		{"s_hash_seed", 236, 4, func(v uint64) { s.HashSeed[0] = uint32(v) }},
		{"s_def_hash_version", 252, 1, func(v uint64) { s.DefHashVersion = uint8(v) }},
		{"s_desc_size", 254, 2, func(v uint64) { s.DescSizeRaw = uint16(v) }},
		{"s_jnl_blocks[16]", 332, 4, func(v uint64) { s.JnlBlocks[16] = uint32(v) }},
		{"s_blocks_count_hi", 336, 4, func(v uint64) { s.BlocksCountHi = uint32(v) }},
		{"s_mmp_block", 360, 8, func(v uint64) { s.MMPBlock = v }},
		{"s_log_groups_per_flex", 372, 1, func(v uint64) { s.LogGroupsPerFlex = uint8(v) }},
		{"s_kbytes_written", 376, 8, func(v uint64) { s.KbytesWritten = v }},
		{"s_first_error_func", 424, 1, func(v uint64) { s.FirstErrorFunc[0] = uint8(v) }},
		{"s_last_error_block", 472, 8, func(v uint64) { s.LastErrorBlock = v }},
		{"s_mount_opts", 512, 1, func(v uint64) { s.MountOpts[0] = uint8(v) }},
		{"s_overhead_clusters", 584, 4, func(v uint64) { s.OverheadClusters = uint32(v) }},
		{"s_backup_bgs[1]", 592, 4, func(v uint64) { s.BackupBGs[1] = uint32(v) }},
		{"s_lpf_ino", 616, 4, func(v uint64) { s.LpfIno = uint32(v) }},
		{"s_checksum_seed", 624, 4, func(v uint64) { s.ChecksumSeed = uint32(v) }},
		{"s_last_error_errcode", 635, 1, func(v uint64) { s.LastErrorErrcode = uint8(v) }},
		{"s_encoding", 636, 2, func(v uint64) { s.Encoding = uint16(v) }},
		{"s_orphan_file_inum", 640, 4, func(v uint64) { s.OrphanFileInum = uint32(v) }},
		{"s_reserved[0]", 644, 1, func(v uint64) { s.Reserved[0] = uint8(v) }},
		{"s_reserved[93]", 1019, 1, func(v uint64) { s.Reserved[375] = uint8(v) }},
		{"s_checksum", 1020, 4, func(v uint64) { s.Checksum = uint32(v) }},
	}
	checkFieldOffsets(t, SuperblockSize, cases, func() { s = Superblock{} }, s.encodeTo)
}

// encodeTo is a method value helper so the offset table can re-encode
// after each reset of the same variable.
func (s *Superblock) encodeTo(b []byte) { s.Encode(b) }

func TestGroupDescFieldOffsets(t *testing.T) {
	var g GroupDesc
	cases := []fieldCase{
		{"bg_block_bitmap", 0, 4, func(v uint64) { g.BlockBitmap = uint32(v) }},
		{"bg_inode_bitmap", 4, 4, func(v uint64) { g.InodeBitmap = uint32(v) }},
		{"bg_inode_table", 8, 4, func(v uint64) { g.InodeTable = uint32(v) }},
		{"bg_free_blocks_count", 12, 2, func(v uint64) { g.FreeBlocksCount = uint16(v) }},
		{"bg_used_dirs_count", 16, 2, func(v uint64) { g.UsedDirsCount = uint16(v) }},
		{"bg_flags", 18, 2, func(v uint64) { g.Flags = uint16(v) }},
		{"bg_exclude_bitmap_lo", 20, 4, func(v uint64) { g.ExcludeBitmapLo = uint32(v) }},
		{"bg_itable_unused", 28, 2, func(v uint64) { g.ItableUnused = uint16(v) }},
		{"bg_checksum", 30, 2, func(v uint64) { g.Checksum = uint16(v) }},
	}
	checkFieldOffsets(t, GroupDescSize, cases, func() { g = GroupDesc{} }, func(b []byte) { g.Encode(b) })
}

func TestInodeFieldOffsets(t *testing.T) {
	var in Inode
	cases := []fieldCase{
		{"i_mode", 0, 2, func(v uint64) { in.Mode = uint16(v) }},
		{"i_size", 4, 4, func(v uint64) { in.SizeLo = uint32(v) }},
		{"i_dtime", 20, 4, func(v uint64) { in.Dtime = uint32(v) }},
		{"i_links_count", 26, 2, func(v uint64) { in.LinksCount = uint16(v) }},
		{"i_blocks", 28, 4, func(v uint64) { in.BlocksLo = uint32(v) }},
		{"i_flags", 32, 4, func(v uint64) { in.Flags = uint32(v) }},
		{"i_block[0]", 40, 4, func(v uint64) { in.Block[0] = uint32(v) }},
		{"i_block[14]", 96, 4, func(v uint64) { in.Block[TIndBlock] = uint32(v) }},
		{"i_generation", 100, 4, func(v uint64) { in.Generation = uint32(v) }},
		{"i_file_acl", 104, 4, func(v uint64) { in.FileACLLo = uint32(v) }},
		{"i_size_high", 108, 4, func(v uint64) { in.SizeHigh = uint32(v) }},
		{"i_faddr", 112, 4, func(v uint64) { in.Faddr = uint32(v) }},
		{"l_i_blocks_hi", 116, 2, func(v uint64) { in.BlocksHigh = uint16(v) }},
		{"l_i_uid_high", 120, 2, func(v uint64) { in.UIDHigh = uint16(v) }},
		{"l_i_gid_high", 122, 2, func(v uint64) { in.GIDHigh = uint16(v) }},
		{"l_i_reserved", 126, 2, func(v uint64) { in.OSD2Reserved = uint16(v) }},
	}
	checkFieldOffsets(t, InodeSize, cases, func() { in = Inode{} }, func(b []byte) { in.Encode(b) })

	// Extra fields need i_extra_isize to cover them; encode with 32.
	extra := []struct {
		name string
		off  int
		set  func()
	}{
		{"i_checksum_hi", 130, func() { in.ChecksumHi = 0x2211 }},
		{"i_ctime_extra", 132, func() { in.CtimeExtra = 0x44332211 }},
		{"i_crtime", 144, func() { in.Crtime = 0x44332211 }},
		{"i_version_hi", 152, func() { in.VersionHi = 0x44332211 }},
		{"i_projid", 156, func() { in.Projid = 0x44332211 }},
	}
	for _, tc := range extra {
		t.Run(tc.name, func(t *testing.T) {
			in = Inode{ExtraIsize: 32}
			tc.set()
			b := make([]byte, 256)
			in.Encode(b)
			if got := binary.LittleEndian.Uint16(b[128:]); got != 32 {
				t.Errorf("i_extra_isize at 128: got %d, want 32", got)
			}
			if got := b[tc.off]; got != 0x11 {
				t.Errorf("%s: got byte %#x at %d, want 0x11 (non-zero bytes at %v)", tc.name, got, tc.off, nonZero(b))
			}
		})
	}
}

func TestStructSizes(t *testing.T) {
	tests := []struct {
		name string
		got  func() int
		want int
	}{
		{"Superblock", func() int { var s Superblock; return encodedLen(SuperblockSize, s.Encode) }, 1024},
		{"GroupDesc", func() int { var g GroupDesc; return encodedLen(GroupDescSize, g.Encode) }, 32},
		{"Inode", func() int { var in Inode; return encodedLen(InodeSize, in.Encode) }, 128},
		{"DirEntryLen(1)", func() int { return DirEntryLen(1) }, 12},
		{"DirEntryLen(4)", func() int { return DirEntryLen(4) }, 12},
		{"DirEntryLen(5)", func() int { return DirEntryLen(5) }, 16},
		{"DirEntryLen(255)", func() int { return DirEntryLen(255) }, 264},
		{"XattrEntryLen(1)", func() int { return XattrEntryLen(1) }, 20},
		{"XattrHeaderSize", func() int { return XattrHeaderSize }, 32},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.got(); got != tc.want {
				t.Errorf("got %d, want %d", got, tc.want)
			}
		})
	}
	// Each encoder panics when handed one byte too few.
	short := []struct {
		name string
		f    func()
	}{
		{"Superblock", func() { var s Superblock; s.Encode(make([]byte, SuperblockSize-1)) }},
		{"GroupDesc", func() { var g GroupDesc; g.Encode(make([]byte, GroupDescSize-1)) }},
		{"Inode", func() { var in Inode; in.Encode(make([]byte, InodeSize-1)) }},
	}
	for _, tc := range short {
		t.Run(tc.name+"/short", func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("Encode into a short buffer did not panic")
				}
			}()
			tc.f()
		})
	}
}

// encodedLen returns how many bytes of a size-byte buffer of 0xff an
// encoder of zero values overwrites. Together with the panic on a buffer
// one byte short, size == encodedLen shows the encoding is exactly size
// bytes and leaves no gaps.
func encodedLen(size int, enc func([]byte)) int {
	b := bytes.Repeat([]byte{0xff}, size)
	enc(b)
	n := 0
	for _, c := range b {
		if c != 0xff {
			n++
		}
	}
	return n
}
