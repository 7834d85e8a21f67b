package layout

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// validSuperblock returns a consistent superblock of a 16 MiB filesystem
// with 1 KiB blocks in two groups.
func validSuperblock() *Superblock {
	return &Superblock{
		InodesCount:      2048,
		BlocksCountLo:    16384,
		FirstDataBlock:   1,
		LogBlockSize:     0,
		LogClusterSize:   0,
		BlocksPerGroup:   8192,
		ClustersPerGroup: 8192,
		InodesPerGroup:   1024,
		Magic:            Magic,
		State:            ValidFS,
		Errors:           ErrorsContinue,
		RevLevel:         DynamicRev,
		FirstInoRaw:      GoodOldFirstIno,
		InodeSizeRaw:     256,
		FeatureIncompat:  IncompatFiletype,
		FeatureROCompat:  ROCompatSparseSuper | ROCompatLargeFile,
	}
}

// valid4K returns a consistent superblock with 4 KiB blocks.
func valid4K() *Superblock {
	s := validSuperblock()
	s.LogBlockSize, s.LogClusterSize = 2, 2
	s.FirstDataBlock = 0
	s.BlocksCountLo = 65536
	s.BlocksPerGroup, s.ClustersPerGroup = 32768, 32768
	s.InodesCount = 2 * 1024
	return s
}

func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		name string
		sb   func() *Superblock
	}{
		{"1k", validSuperblock},
		{"4k", valid4K},
		{"64k blocks", func() *Superblock {
			s := valid4K()
			s.LogBlockSize, s.LogClusterSize = 6, 6
			s.BlocksCountLo = 32768 + 100 // two groups
			return s
		}},
		{"rev0 ignores s_inode_size and s_first_ino", func() *Superblock {
			s := validSuperblock()
			s.RevLevel = GoodOldRev
			s.InodeSizeRaw, s.FirstInoRaw = 3, 0
			return s
		}},
		{"last group partial", func() *Superblock {
			s := validSuperblock()
			s.BlocksCountLo = 8194 // group 1 holds one block
			return s
		}},
		{"bigalloc", func() *Superblock {
			s := valid4K()
			s.FeatureROCompat |= ROCompatBigalloc
			s.LogClusterSize = 4 // 16 KiB clusters, ratio 4
			s.ClustersPerGroup = 8192
			s.BlocksPerGroup = 8192 << 2
			return s
		}},
		{"64bit", func() *Superblock {
			s := valid4K()
			s.FeatureIncompat |= Incompat64Bit
			s.DescSizeRaw = 64
			return s
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.sb().Validate(); err != nil {
				t.Errorf("Validate: got %v, want nil", err)
			}
		})
	}
}

func TestValidateRejects(t *testing.T) {
	tests := []struct {
		name   string
		base   func() *Superblock
		mutate func(s *Superblock)
		field  string
	}{
		{"bad magic", validSuperblock, func(s *Superblock) { s.Magic = 0xEF52 }, "s_magic"},
		{"zero magic", validSuperblock, func(s *Superblock) { s.Magic = 0 }, "s_magic"},
		{"log block size 7", validSuperblock, func(s *Superblock) { s.LogBlockSize = 7 }, "s_log_block_size"},
		{"log block size huge", validSuperblock, func(s *Superblock) { s.LogBlockSize = 0xffffffff }, "s_log_block_size"},
		{"fragment size differs", validSuperblock, func(s *Superblock) { s.LogClusterSize = 1 }, "s_log_cluster_size"},
		{"bigalloc cluster below block", valid4K, func(s *Superblock) {
			s.FeatureROCompat |= ROCompatBigalloc
			s.LogClusterSize = 1
		}, "s_log_cluster_size"},
		{"blocks per group zero", validSuperblock, func(s *Superblock) { s.BlocksPerGroup = 0 }, "s_blocks_per_group"},
		{"blocks per group above 8*blocksize", validSuperblock, func(s *Superblock) { s.BlocksPerGroup = 8193 }, "s_blocks_per_group"},
		{"blocks per group differs from clusters", validSuperblock, func(s *Superblock) { s.BlocksPerGroup = 4096 }, "s_blocks_per_group"},
		{"clusters per group zero", validSuperblock, func(s *Superblock) { s.ClustersPerGroup = 0 }, "s_clusters_per_group"},
		{"clusters per group too big", validSuperblock, func(s *Superblock) { s.ClustersPerGroup = 1 << 20 }, "s_clusters_per_group"},
		{"inodes per group zero", validSuperblock, func(s *Superblock) { s.InodesPerGroup = 0 }, "s_inodes_per_group"},
		{"inodes per group above 8*blocksize", validSuperblock, func(s *Superblock) { s.InodesPerGroup = 8193 }, "s_inodes_per_group"},
		{"inodes per group below inodes per block", validSuperblock, func(s *Superblock) { s.InodesPerGroup = 2 }, "s_inodes_per_group"},
		{"inode size zero", validSuperblock, func(s *Superblock) { s.InodeSizeRaw = 0 }, "s_inode_size"},
		{"inode size below 128", validSuperblock, func(s *Superblock) { s.InodeSizeRaw = 64 }, "s_inode_size"},
		{"inode size not power of two", validSuperblock, func(s *Superblock) { s.InodeSizeRaw = 384 }, "s_inode_size"},
		{"inode size above block size", validSuperblock, func(s *Superblock) { s.InodeSizeRaw = 2048 }, "s_inode_size"},
		{"first ino below 11", validSuperblock, func(s *Superblock) { s.FirstInoRaw = 5 }, "s_first_ino"},
		{"first ino beyond inodes", validSuperblock, func(s *Superblock) { s.FirstInoRaw = 4096 }, "s_first_ino"},
		{"first data block 0 with 1k blocks", validSuperblock, func(s *Superblock) { s.FirstDataBlock = 0 }, "s_first_data_block"},
		{"first data block 1 with 4k blocks", valid4K, func(s *Superblock) { s.FirstDataBlock = 1 }, "s_first_data_block"},
		{"blocks count at first data block", validSuperblock, func(s *Superblock) { s.BlocksCountLo = 1 }, "s_blocks_count"},
		{"blocks count zero", validSuperblock, func(s *Superblock) { s.BlocksCountLo = 0 }, "s_blocks_count"},
		{"inodes count not groups*ipg", validSuperblock, func(s *Superblock) { s.InodesCount = 2047 }, "s_inodes_count"},
		{"64bit desc size 32", valid4K, func(s *Superblock) {
			s.FeatureIncompat |= Incompat64Bit
			s.DescSizeRaw = 32
		}, "s_desc_size"},
		{"64bit desc size not power of two", valid4K, func(s *Superblock) {
			s.FeatureIncompat |= Incompat64Bit
			s.DescSizeRaw = 96
		}, "s_desc_size"},
		{"meta_bg first beyond descriptors", validSuperblock, func(s *Superblock) {
			s.FeatureIncompat |= IncompatMetaBG
			s.FirstMetaBG = 5
		}, "s_first_meta_bg"},
		{"reserved gdt blocks too many", validSuperblock, func(s *Superblock) { s.ReservedGDTBlocks = 257 }, "s_reserved_gdt_blocks"},
		{"flex_bg log groups too big", validSuperblock, func(s *Superblock) {
			s.FeatureIncompat |= IncompatFlexBG
			s.LogGroupsPerFlex = 32
		}, "s_log_groups_per_flex"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.base()
			tc.mutate(s)
			// Go through the bytes, as the ext2 package will.
			b := make([]byte, SuperblockSize)
			s.Encode(b)
			s, err := DecodeSuperblock(b)
			if err != nil {
				t.Fatal(err)
			}
			err = s.Validate()
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Validate: got %v, want an error wrapping ErrCorrupt", err)
			}
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("Validate: got %T, want *CorruptError", err)
			}
			if ce.Field != tc.field {
				t.Errorf("field: got %q, want %q (%v)", ce.Field, tc.field, err)
			}
			if want := int64(sbFieldOffset[tc.field]); ce.Offset != want {
				t.Errorf("offset: got %d, want %d", ce.Offset, want)
			}
			if ce.Struct != "ext2_super_block" || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("message %q should name ext2_super_block and %s", err, tc.field)
			}
		})
	}
}

func TestGroupCount(t *testing.T) {
	tests := []struct {
		name               string
		blocks, first, bpg uint32
		want               uint32
		wantErr            bool
	}{
		{"one full group 1k", 8193, 1, 8192, 1, false},
		{"one block over", 8194, 1, 8192, 2, false},
		{"4k exact", 65536, 0, 32768, 2, false},
		{"4k partial", 65537, 0, 32768, 3, false},
		{"max", 0xffffffff, 0, 8, 0x20000000, false},
		{"zero bpg", 100, 0, 0, 0, true},
		{"no blocks past first", 1, 1, 8192, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Superblock{BlocksCountLo: tc.blocks, FirstDataBlock: tc.first, BlocksPerGroup: tc.bpg}
			got, err := s.GroupCount()
			if (err != nil) != tc.wantErr {
				t.Fatalf("GroupCount: got error %v, want error %v", err, tc.wantErr)
			}
			if err != nil && !errors.Is(err, ErrCorrupt) {
				t.Errorf("error %v does not wrap ErrCorrupt", err)
			}
			if got != tc.want {
				t.Errorf("GroupCount: got %d, want %d", got, tc.want)
			}
		})
	}
}

func TestSuperblockHelpers(t *testing.T) {
	s := validSuperblock()
	s.FeatureIncompat |= Incompat64Bit
	s.DescSizeRaw = 64
	s.BlocksCountHi = 1
	s.SetFreeBlocks(1<<32 + 5)
	copy(s.VolumeName[:], "root\x00junk")
	tests := []struct {
		name      string
		got, want any
	}{
		{"BlockSize", s.BlockSize(), 1024},
		{"FragmentSize", s.FragmentSize(), 1024},
		{"InodeSize", s.InodeSize(), 256},
		{"FirstIno", s.FirstIno(), uint32(11)},
		{"DescSize", s.DescSize(), 64},
		{"DescPerBlock", s.DescPerBlock(), 16},
		{"InodesPerBlock", s.InodesPerBlock(), 4},
		{"InodeTableBlocks", s.InodeTableBlocks(), uint32(256)},
		{"BlocksCount with 64bit", s.BlocksCount(), uint64(1<<32 + 16384)},
		{"FreeBlocks", s.FreeBlocks(), uint64(1<<32 + 5)},
		{"Label", s.Label(), "root"},
		{"HasIncompat", s.HasIncompat(IncompatFiletype | Incompat64Bit), true},
		{"HasIncompat partial", s.HasIncompat(IncompatFiletype | IncompatExtents), false},
		{"HasROCompat", s.HasROCompat(ROCompatLargeFile), true},
		{"HasCompat", s.HasCompat(CompatHasJournal), false},
		{"BlockSize invalid", (&Superblock{LogBlockSize: 40}).BlockSize(), 0},
		{"rev0 InodeSize", (&Superblock{InodeSizeRaw: 512}).InodeSize(), 128},
		{"no 64bit ignores hi", (&Superblock{BlocksCountLo: 7, BlocksCountHi: 9}).BlocksCount(), uint64(7)},
		{"no 64bit DescSize", (&Superblock{DescSizeRaw: 64}).DescSize(), 32},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %v, want %v", tc.got, tc.want)
			}
		})
	}
}

func TestFeatureNames(t *testing.T) {
	tests := []struct {
		name string
		got  []string
		want []string
	}{
		{"mke2fs ext2 default", (&Superblock{
			FeatureCompat:   CompatExtAttr | CompatResizeInode | CompatDirIndex,
			FeatureIncompat: IncompatFiletype,
			FeatureROCompat: ROCompatSparseSuper | ROCompatLargeFile,
		}).FeatureNames(), []string{"ext_attr", "resize_inode", "dir_index", "filetype", "sparse_super", "large_file"}},
		{"compat all known", CompatFeature(0x1f7f | 0x0100).Names(), []string{
			"dir_prealloc", "imagic_inodes", "has_journal", "ext_attr", "resize_inode", "dir_index", "lazy_bg",
			"snapshot_bitmap", "sparse_super2", "fast_commit", "stable_inodes", "orphan_file"}},
		{"compat unknown bits", CompatFeature(CompatExcludeInode | 1<<13 | 1<<31).Names(), []string{"FEATURE_C7", "FEATURE_C13", "FEATURE_C31"}},
		{"incompat aliases print first name", (IncompatExtents | IncompatCasefold).Names(), []string{"extent", "casefold"}},
		{"incompat", (IncompatRecover | IncompatMetaBG | Incompat64Bit | IncompatCsumSeed | IncompatLargeDir).Names(),
			[]string{"needs_recovery", "meta_bg", "64bit", "metadata_csum_seed", "large_dir"}},
		{"incompat unknown", IncompatFeature(1 << 5).Names(), []string{"FEATURE_I5"}},
		{"ro_compat", (ROCompatGDTCsum | ROCompatReadOnly | ROCompatOrphanPresent).Names(), []string{"uninit_bg", "read-only", "orphan_present"}},
		{"ro_compat btree_dir has no name", ROCompatBtreeDir.Names(), []string{"FEATURE_R2"}},
		{"none", CompatFeature(0).Names(), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !slices.Equal(tc.got, tc.want) {
				t.Errorf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
	if got, want := (IncompatExtents | IncompatFlexBG).String(), "extent flex_bg"; got != want {
		t.Errorf("String: got %q, want %q", got, want)
	}
	if got, want := ROCompatFeature(0).String(), "(none)"; got != want {
		t.Errorf("String of none: got %q, want %q", got, want)
	}
}

func TestDecodeShortBuffers(t *testing.T) {
	tests := []struct {
		name string
		f    func() error
	}{
		{"superblock", func() error { _, err := DecodeSuperblock(make([]byte, 1023)); return err }},
		{"group desc", func() error { _, err := DecodeGroupDesc(make([]byte, 31)); return err }},
		{"inode", func() error { _, err := DecodeInode(make([]byte, 127)); return err }},
		{"xattr header", func() error { _, err := DecodeXattrHeader(make([]byte, 31)); return err }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.f(); !errors.Is(err, ErrCorrupt) {
				t.Errorf("got %v, want an error wrapping ErrCorrupt", err)
			}
		})
	}
}
