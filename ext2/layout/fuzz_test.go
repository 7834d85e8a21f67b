package layout

import (
	"bytes"
	"os"
	"os/exec"
	"testing"
)

// imageSeeds holds byte strings cut from a real mke2fs image.
type imageSeeds struct {
	super    []byte
	inodes   [][]byte
	dirs     [][]byte
	xattrs   [][]byte
	filetype bool
}

// seedsFromImage makes a small image with mke2fs and cuts seeds from it.
// It returns nil when mke2fs or debugfs is missing: the fuzz targets then
// run on their hand-made seeds only.
func seedsFromImage(f *testing.F, args ...string) *imageSeeds {
	f.Helper()
	for _, tool := range []string{"mke2fs", "debugfs"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil
		}
	}
	im := makeImage(f, "8M", args...)
	sb, err := DecodeSuperblock(im.b[SuperblockOffset:])
	if err != nil || sb.Validate() != nil {
		f.Fatalf("seed image superblock: %v", err)
	}
	im.sb = sb
	groups, _ := sb.GroupCount()
	gdt := (int(sb.FirstDataBlock) + 1) * sb.BlockSize()
	for g := range int(groups) {
		gd, _ := DecodeGroupDesc(im.b[gdt+g*GroupDescSize:])
		im.gds = append(im.gds, gd)
	}
	s := &imageSeeds{super: bytes.Clone(im.b[SuperblockOffset : SuperblockOffset+SuperblockSize]), filetype: sb.HasIncompat(IncompatFiletype)}
	for ino := uint32(1); ino <= 20; ino++ {
		raw := im.inodeBytes(f, ino)
		s.inodes = append(s.inodes, bytes.Clone(raw))
		in, _ := DecodeInode(raw)
		if in.IsDir() && in.Block[0] != 0 {
			s.dirs = append(s.dirs, bytes.Clone(im.block(uint64(in.Block[0]))))
		}
	}
	if sb.HasCompat(CompatExtAttr) {
		cmds := f.TempDir() + "/cmds"
		os.WriteFile(cmds, []byte("ea_set /a.txt user.seed value\nea_set /a.txt security.x "+longTarget+longTarget+"\n"), 0o644)
		run(f, "debugfs", "-w", "-f", cmds, im.path)
		b, _ := os.ReadFile(im.path)
		im.b = b
		ino := uint32(12) // a.txt, the first file mke2fs -d copies after lost+found
		in, _ := DecodeInode(im.inodeBytes(f, ino))
		if acl := in.FileACL(); acl != 0 {
			s.xattrs = append(s.xattrs, bytes.Clone(im.block(acl)))
		}
		s.inodes = append(s.inodes, bytes.Clone(im.inodeBytes(f, ino)))
	}
	return s
}

func FuzzDecodeSuperblock(f *testing.F) {
	valid := make([]byte, SuperblockSize)
	validSuperblock().Encode(valid)
	f.Add(valid)
	v4 := make([]byte, SuperblockSize)
	valid4K().Encode(v4)
	f.Add(v4)
	f.Add(make([]byte, SuperblockSize))
	f.Add([]byte{0x53, 0xef})
	if s := seedsFromImage(f, "-b", "1024", "-I", "128"); s != nil {
		f.Add(s.super)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sb, err := DecodeSuperblock(b)
		if len(b) < SuperblockSize {
			if err == nil {
				t.Fatalf("decoded %d bytes without error", len(b))
			}
			return
		}
		if err != nil {
			t.Fatalf("DecodeSuperblock: %v", err)
		}
		out := make([]byte, SuperblockSize)
		sb.Encode(out)
		if !bytes.Equal(out, b[:SuperblockSize]) {
			t.Fatalf("round trip differs at %v", diffIdx(out, b[:SuperblockSize]))
		}
		_ = sb.FeatureNames()
		_, _ = sb.GroupCount()
		if sb.Validate() != nil {
			return
		}
		// A valid superblock must give usable geometry.
		if sb.BlockSize() == 0 || sb.InodesPerBlock() == 0 || sb.DescPerBlock() == 0 || sb.InodeTableBlocks() == 0 {
			t.Fatalf("valid superblock with zero geometry: bs %d ipb %d dpb %d itb %d",
				sb.BlockSize(), sb.InodesPerBlock(), sb.DescPerBlock(), sb.InodeTableBlocks())
		}
		if g, err := sb.GroupCount(); err != nil || g == 0 {
			t.Fatalf("valid superblock: GroupCount %d, %v", g, err)
		}
	})
}

func FuzzParseDirBlock(f *testing.F) {
	f.Add(emptyDirBlock(1024, true), true, uint32(0))
	f.Add(emptyDirBlock(1024, false), false, uint32(100))
	f.Add(make([]byte, 64), true, uint32(0))
	b := make([]byte, 128)
	rawEnt(b, 0, 0, 128, 0, 0, "", true)
	f.Add(b, true, uint32(1))
	if s := seedsFromImage(f, "-b", "1024"); s != nil {
		for _, d := range s.dirs {
			f.Add(d, s.filetype, uint32(0))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte, filetype bool, maxIno uint32) {
		ents, err := ParseDirBlock(b, filetype, maxIno)
		if err != nil {
			return
		}
		off := 0
		out := bytes.Clone(b)
		for _, e := range ents {
			if e.Offset != off {
				t.Fatalf("entry at %d, want %d", e.Offset, off)
			}
			if maxIno != 0 && e.Inode > maxIno {
				t.Fatalf("inode %d above limit %d", e.Inode, maxIno)
			}
			if err := e.Encode(out[e.Offset:], filetype); err != nil {
				t.Fatalf("Encode of a parsed entry: %v", err)
			}
			off += e.RecLen
		}
		if off != len(b) {
			t.Fatalf("records cover %d of %d bytes", off, len(b))
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("re-encoding changed bytes %v", diffIdx(out, b))
		}
	})
}

func FuzzDecodeInode(f *testing.F) {
	f.Add(make([]byte, 128))
	f.Add(make([]byte, 256))
	big := make([]byte, 256)
	for i := range big {
		big[i] = byte(i)
	}
	f.Add(big)
	if s := seedsFromImage(f, "-b", "4096", "-I", "256"); s != nil {
		for _, in := range s.inodes {
			f.Add(in)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := DecodeInode(b)
		if len(b) < InodeSize {
			if err == nil {
				t.Fatalf("decoded %d bytes without error", len(b))
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		out := make([]byte, len(b))
		in.Encode(out)
		if !bytes.Equal(out, b) {
			t.Fatalf("round trip differs at %v", diffIdx(out, b))
		}
		_, _ = in.Rdev()
		_ = in.Size()
		if _, err := ParseInodeXattrs(in.XattrArea()); err != nil {
			return
		}
	})
}

func FuzzParseXattrBlock(f *testing.F) {
	f.Add(xattrBlock(1024, xent{XattrIndexUser, "comment", "hello", 0}))
	f.Add(xattrBlock(64))
	f.Add(xattrBlock(128, xent{XattrIndexPosixACLAccess, "", "\x02\x00\x00\x00", 0}, xent{7, "data", "", 0}))
	if s := seedsFromImage(f, "-b", "1024", "-I", "128"); s != nil {
		for _, x := range s.xattrs {
			f.Add(x)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		xs, err := ParseXattrBlock(b)
		if err == nil {
			for _, x := range xs {
				if len(x.Value) > len(b) {
					t.Fatalf("value of %d bytes from a %d-byte block", len(x.Value), len(b))
				}
				_ = x.FullName()
			}
		}
		_, _ = ParseInodeXattrs(b)
	})
}
