package layout

import (
	"fmt"
	"math/bits"
	"strings"
)

// CompatFeature is a set of s_feature_compat bits. An implementation may
// mount a filesystem with compat features it does not know.
type CompatFeature uint32

// IncompatFeature is a set of s_feature_incompat bits. An implementation
// must refuse to mount a filesystem with incompat features it does not
// know.
type IncompatFeature uint32

// ROCompatFeature is a set of s_feature_ro_compat bits. An implementation
// may mount a filesystem with unknown ro_compat features read-only.
type ROCompatFeature uint32

// Compatible features (EXT2_FEATURE_COMPAT_* and friends).
const (
	CompatDirPrealloc   CompatFeature = 0x0001
	CompatImagicInodes  CompatFeature = 0x0002
	CompatHasJournal    CompatFeature = 0x0004
	CompatExtAttr       CompatFeature = 0x0008
	CompatResizeInode   CompatFeature = 0x0010
	CompatDirIndex      CompatFeature = 0x0020
	CompatLazyBG        CompatFeature = 0x0040
	CompatExcludeInode  CompatFeature = 0x0080 // legacy, unused
	CompatExcludeBitmap CompatFeature = 0x0100
	CompatSparseSuper2  CompatFeature = 0x0200
	CompatFastCommit    CompatFeature = 0x0400
	CompatStableInodes  CompatFeature = 0x0800
	CompatOrphanFile    CompatFeature = 0x1000
)

// Incompatible features (EXT2_FEATURE_INCOMPAT_* and friends).
const (
	IncompatCompression IncompatFeature = 0x0001
	IncompatFiletype    IncompatFeature = 0x0002
	IncompatRecover     IncompatFeature = 0x0004 // needs journal recovery
	IncompatJournalDev  IncompatFeature = 0x0008
	IncompatMetaBG      IncompatFeature = 0x0010
	IncompatExtents     IncompatFeature = 0x0040
	Incompat64Bit       IncompatFeature = 0x0080
	IncompatMMP         IncompatFeature = 0x0100
	IncompatFlexBG      IncompatFeature = 0x0200
	IncompatEAInode     IncompatFeature = 0x0400
	IncompatDirData     IncompatFeature = 0x1000
	IncompatCsumSeed    IncompatFeature = 0x2000
	IncompatLargeDir    IncompatFeature = 0x4000
	IncompatInlineData  IncompatFeature = 0x8000
	IncompatEncrypt     IncompatFeature = 0x10000
	IncompatCasefold    IncompatFeature = 0x20000
)

// Read-only compatible features (EXT2_FEATURE_RO_COMPAT_* and friends).
const (
	ROCompatSparseSuper   ROCompatFeature = 0x0001
	ROCompatLargeFile     ROCompatFeature = 0x0002
	ROCompatBtreeDir      ROCompatFeature = 0x0004 // never used
	ROCompatHugeFile      ROCompatFeature = 0x0008
	ROCompatGDTCsum       ROCompatFeature = 0x0010
	ROCompatDirNlink      ROCompatFeature = 0x0020
	ROCompatExtraIsize    ROCompatFeature = 0x0040
	ROCompatHasSnapshot   ROCompatFeature = 0x0080
	ROCompatQuota         ROCompatFeature = 0x0100
	ROCompatBigalloc      ROCompatFeature = 0x0200
	ROCompatMetadataCsum  ROCompatFeature = 0x0400
	ROCompatReplica       ROCompatFeature = 0x0800
	ROCompatReadOnly      ROCompatFeature = 0x1000
	ROCompatProject       ROCompatFeature = 0x2000
	ROCompatSharedBlocks  ROCompatFeature = 0x4000
	ROCompatVerity        ROCompatFeature = 0x8000
	ROCompatOrphanPresent ROCompatFeature = 0x10000
)

// Feature names as e2fsprogs lib/e2p/feature.c prints them; where that
// table has two names for a bit, the first one (the one e2fsprogs
// prints) is used. Bits without a name print as FEATURE_<C|I|R><bit>.
var (
	compatNames = map[CompatFeature]string{
		CompatDirPrealloc:   "dir_prealloc",
		CompatImagicInodes:  "imagic_inodes",
		CompatHasJournal:    "has_journal",
		CompatExtAttr:       "ext_attr",
		CompatResizeInode:   "resize_inode",
		CompatDirIndex:      "dir_index",
		CompatLazyBG:        "lazy_bg",
		CompatExcludeBitmap: "snapshot_bitmap",
		CompatSparseSuper2:  "sparse_super2",
		CompatFastCommit:    "fast_commit",
		CompatStableInodes:  "stable_inodes",
		CompatOrphanFile:    "orphan_file",
	}
	incompatNames = map[IncompatFeature]string{
		IncompatCompression: "compression",
		IncompatFiletype:    "filetype",
		IncompatRecover:     "needs_recovery",
		IncompatJournalDev:  "journal_dev",
		IncompatMetaBG:      "meta_bg",
		IncompatExtents:     "extent",
		Incompat64Bit:       "64bit",
		IncompatMMP:         "mmp",
		IncompatFlexBG:      "flex_bg",
		IncompatEAInode:     "ea_inode",
		IncompatDirData:     "dirdata",
		IncompatCsumSeed:    "metadata_csum_seed",
		IncompatLargeDir:    "large_dir",
		IncompatInlineData:  "inline_data",
		IncompatEncrypt:     "encrypt",
		IncompatCasefold:    "casefold",
	}
	roCompatNames = map[ROCompatFeature]string{
		ROCompatSparseSuper:   "sparse_super",
		ROCompatLargeFile:     "large_file",
		ROCompatHugeFile:      "huge_file",
		ROCompatGDTCsum:       "uninit_bg",
		ROCompatDirNlink:      "dir_nlink",
		ROCompatExtraIsize:    "extra_isize",
		ROCompatQuota:         "quota",
		ROCompatBigalloc:      "bigalloc",
		ROCompatMetadataCsum:  "metadata_csum",
		ROCompatReplica:       "replica",
		ROCompatReadOnly:      "read-only",
		ROCompatProject:       "project",
		ROCompatSharedBlocks:  "shared_blocks",
		ROCompatVerity:        "verity",
		ROCompatOrphanPresent: "orphan_present",
	}
)

// featureNames lists the names of the bits of mask in ascending order,
// mirroring lib/e2p/feature.c:e2p_feature2string().
func featureNames(mask uint32, class byte, name func(uint32) (string, bool)) []string {
	var out []string
	for mask != 0 {
		bit := bits.TrailingZeros32(mask)
		mask &^= 1 << bit
		if s, ok := name(1 << bit); ok {
			out = append(out, s)
		} else {
			out = append(out, fmt.Sprintf("FEATURE_%c%d", class, bit))
		}
	}
	return out
}

// Names returns the e2fsprogs names of the features in f, by ascending bit.
func (f CompatFeature) Names() []string {
	return featureNames(uint32(f), 'C', func(m uint32) (string, bool) {
		s, ok := compatNames[CompatFeature(m)]
		return s, ok
	})
}

// Names returns the e2fsprogs names of the features in f, by ascending bit.
func (f IncompatFeature) Names() []string {
	return featureNames(uint32(f), 'I', func(m uint32) (string, bool) {
		s, ok := incompatNames[IncompatFeature(m)]
		return s, ok
	})
}

// Names returns the e2fsprogs names of the features in f, by ascending bit.
func (f ROCompatFeature) Names() []string {
	return featureNames(uint32(f), 'R', func(m uint32) (string, bool) {
		s, ok := roCompatNames[ROCompatFeature(m)]
		return s, ok
	})
}

// String joins Names with spaces, e.g. "extent flex_bg"; "(none)" if f is 0.
func (f CompatFeature) String() string { return joinNames(f.Names()) }

// String joins Names with spaces, e.g. "extent flex_bg"; "(none)" if f is 0.
func (f IncompatFeature) String() string { return joinNames(f.Names()) }

// String joins Names with spaces, e.g. "extent flex_bg"; "(none)" if f is 0.
func (f ROCompatFeature) String() string { return joinNames(f.Names()) }

func joinNames(n []string) string {
	if len(n) == 0 {
		return "(none)"
	}
	return strings.Join(n, " ")
}
