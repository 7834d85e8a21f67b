package layout

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// needTools skips the test unless the e2fsprogs programs it runs exist.
func needTools(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Skipf("skipping: %s not found in PATH (install e2fsprogs): %v", n, err)
		}
	}
}

// run runs a command and returns its standard output, failing the test
// with its standard error if it fails.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// srcTree describes the files makeSourceTree creates, by name in the root.
var srcTree = []string{"a.txt", "big", "link", "longlink", "fifo", "sub", "chr", "blk"}

const longTarget = "this/is/a/symlink/target/longer/than/sixty/bytes/so/it/needs/a/data/block/of/its/own"

// makeSourceTree fills a directory for mke2fs -d: a small and a large
// regular file (the large one needs indirect blocks at 1 KiB), a fast and
// a slow symlink, a FIFO, a subdirectory, and, when running as root, a
// character device with an old-style number and a block device that
// needs the new format.
func makeSourceTree(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "a.txt"), []byte("hello\n"), 0o644))
	big := make([]byte, 300_000)
	for i := range big {
		big[i] = byte(i * 7)
	}
	must(os.WriteFile(filepath.Join(dir, "big"), big, 0o600))
	must(os.Symlink("a.txt", filepath.Join(dir, "link")))
	must(os.Symlink(longTarget, filepath.Join(dir, "longlink")))
	must(syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
	must(os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "sub", "f"), []byte("x"), 0o644))
	if os.Geteuid() == 0 {
		must(syscall.Mknod(filepath.Join(dir, "chr"), syscall.S_IFCHR|0o644, int(mkdev(4, 5))))
		must(syscall.Mknod(filepath.Join(dir, "blk"), syscall.S_IFBLK|0o644, int(mkdev(300, 70000))))
	}
	return dir
}

// mkdev builds a Linux dev_t (glibc gnu_dev_makedev).
func mkdev(major, minor uint64) uint64 {
	return (major&0xfff)<<8 | (major&^0xfff)<<32 | minor&0xff | (minor&^0xff)<<12
}

// testImage is an image made by mke2fs, read back into memory.
type testImage struct {
	path string
	b    []byte
	sb   *Superblock
	gds  []*GroupDesc
}

// makeImage runs mke2fs -d over a fresh source tree and reads the image.
func makeImage(t testing.TB, size string, args ...string) *testImage {
	t.Helper()
	needTools(t, "mke2fs")
	src := makeSourceTree(t)
	path := filepath.Join(t.TempDir(), "fs.img")
	full := append([]string{"-q", "-F", "-t", "ext2"}, args...)
	full = append(full, "-d", src, path, size)
	run(t, "mke2fs", full...)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return &testImage{path: path, b: b}
}

func (im *testImage) block(n uint64) []byte {
	bs := uint64(im.sb.BlockSize())
	return im.b[n*bs : (n+1)*bs]
}

func (im *testImage) inodeBytes(t testing.TB, ino uint32) []byte {
	t.Helper()
	g := (ino - 1) / im.sb.InodesPerGroup
	idx := (ino - 1) % im.sb.InodesPerGroup
	is := uint64(im.sb.InodeSize())
	off := uint64(im.gds[g].InodeTable)*uint64(im.sb.BlockSize()) + uint64(idx)*is
	return im.b[off : off+is]
}

// field returns the first submatch of re in s as an integer.
func field(t testing.TB, s, re string) uint64 {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no match for %q in:\n%s", re, s)
	}
	v, err := strconv.ParseUint(m[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestImages(t *testing.T) {
	needTools(t, "mke2fs", "dumpe2fs", "debugfs")
	tests := []struct {
		name string
		size string
		args []string
	}{
		{"b1024-i128", "20M", []string{"-b", "1024", "-I", "128"}},
		{"b1024-i256-no-resize-inode", "20M", []string{"-b", "1024", "-I", "256", "-O", "^resize_inode"}},
		{"b2048-i256", "16M", []string{"-b", "2048", "-I", "256", "-g", "4096"}},
		{"b4096-i128", "16M", []string{"-b", "4096", "-I", "128", "-g", "2048"}},
		{"b4096-i256", "16M", []string{"-b", "4096", "-I", "256", "-g", "2048"}},
		{"b4096-no-filetype", "16M", []string{"-b", "4096", "-O", "^filetype", "-g", "2048"}},
		{"rev0-b1024", "20M", []string{"-r", "0", "-b", "1024"}},
		{"rev0-b4096", "16M", []string{"-r", "0", "-b", "4096", "-g", "2048"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			im := makeImage(t, tc.size, tc.args...)
			checkSuperblock(t, im)
			checkGroupDescs(t, im)
			names := checkRootDir(t, im)
			checkInodes(t, im, names)
			checkXattrs(t, im, names["a.txt"])
		})
	}
}

func checkSuperblock(t *testing.T, im *testImage) {
	t.Helper()
	raw := im.b[SuperblockOffset : SuperblockOffset+SuperblockSize]
	sb, err := DecodeSuperblock(raw)
	if err != nil {
		t.Fatalf("DecodeSuperblock: %v", err)
	}
	if err := sb.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	im.sb = sb
	out := make([]byte, SuperblockSize)
	sb.Encode(out)
	if !bytes.Equal(out, raw) {
		t.Errorf("superblock round trip differs at bytes %v", diffIdx(out, raw))
	}

	h := run(t, "dumpe2fs", "-h", im.path)
	groups, err := sb.GroupCount()
	if err != nil {
		t.Fatalf("GroupCount: %v", err)
	}
	checks := []struct {
		name string
		got  uint64
		re   string
	}{
		{"inode count", uint64(sb.InodesCount), `Inode count:\s+(\d+)`},
		{"block count", sb.BlocksCount(), `Block count:\s+(\d+)`},
		{"reserved blocks", sb.RBlocksCount(), `Reserved block count:\s+(\d+)`},
		{"free blocks", sb.FreeBlocks(), `Free blocks:\s+(\d+)`},
		{"free inodes", uint64(sb.FreeInodes()), `Free inodes:\s+(\d+)`},
		{"first block", uint64(sb.FirstDataBlock), `First block:\s+(\d+)`},
		{"block size", uint64(sb.BlockSize()), `Block size:\s+(\d+)`},
		{"fragment size", uint64(sb.FragmentSize()), `Fragment size:\s+(\d+)`},
		{"blocks per group", uint64(sb.BlocksPerGroup), `Blocks per group:\s+(\d+)`},
		{"inodes per group", uint64(sb.InodesPerGroup), `Inodes per group:\s+(\d+)`},
		{"inode blocks per group", uint64(sb.InodeTableBlocks()), `Inode blocks per group:\s+(\d+)`},
		{"revision", uint64(sb.RevLevel), `Filesystem revision #:\s+(\d+)`},
		{"max mount count", uint64(uint16(sb.MaxMntCount)) + 1, `Maximum mount count:\s+(-?\d+)`},
	}
	for _, c := range checks {
		if c.name == "max mount count" {
			continue // printed signed; checked below
		}
		if want := field(t, h, c.re); c.got != want {
			t.Errorf("%s: got %d, want %d (dumpe2fs)", c.name, c.got, want)
		}
	}
	if m := regexp.MustCompile(`Maximum mount count:\s+(-?\d+)`).FindStringSubmatch(h); m != nil {
		if got, want := strconv.Itoa(int(sb.MaxMntCount)), m[1]; got != want {
			t.Errorf("max mount count: got %s, want %s", got, want)
		}
	}
	if sb.RevLevel != GoodOldRev {
		if got, want := uint64(sb.InodeSize()), field(t, h, `Inode size:\s+(\d+)`); got != want {
			t.Errorf("inode size: got %d, want %d", got, want)
		}
		if got, want := uint64(sb.FirstIno()), field(t, h, `First inode:\s+(\d+)`); got != want {
			t.Errorf("first inode: got %d, want %d", got, want)
		}
	} else if sb.InodeSize() != GoodOldInodeSize || sb.FirstIno() != GoodOldFirstIno {
		t.Errorf("rev 0: got inode size %d, first ino %d, want 128, 11", sb.InodeSize(), sb.FirstIno())
	}
	if got, want := uint64(groups), (sb.BlocksCount()-uint64(sb.FirstDataBlock)+uint64(sb.BlocksPerGroup)-1)/uint64(sb.BlocksPerGroup); got != want {
		t.Errorf("GroupCount: got %d, want %d", got, want)
	}
	m := regexp.MustCompile(`Filesystem features:\s+(.*)\n`).FindStringSubmatch(h)
	if m == nil {
		t.Fatalf("no features line in dumpe2fs -h output")
	}
	want := strings.Fields(m[1])
	if len(want) == 1 && want[0] == "(none)" {
		want = nil
	}
	if got := sb.FeatureNames(); !slices.Equal(got, want) {
		t.Errorf("features: got %q, want %q", got, want)
	}
}

func checkGroupDescs(t *testing.T, im *testImage) {
	t.Helper()
	groups, _ := im.sb.GroupCount()
	bs := im.sb.BlockSize()
	gdtOff := (int(im.sb.FirstDataBlock) + 1) * bs
	full := run(t, "dumpe2fs", im.path)
	sections := regexp.MustCompile(`(?m)^Group (\d+):`).Split(full, -1)[1:]
	if len(sections) != int(groups) {
		t.Fatalf("dumpe2fs lists %d groups, GroupCount says %d", len(sections), groups)
	}
	for g := 0; g < int(groups); g++ {
		raw := im.b[gdtOff+g*GroupDescSize : gdtOff+(g+1)*GroupDescSize]
		gd, err := DecodeGroupDesc(raw)
		if err != nil {
			t.Fatal(err)
		}
		im.gds = append(im.gds, gd)
		out := make([]byte, GroupDescSize)
		gd.Encode(out)
		if !bytes.Equal(out, raw) {
			t.Errorf("group %d: round trip differs at %v", g, diffIdx(out, raw))
		}
		s := sections[g]
		checks := []struct {
			name string
			got  uint64
			re   string
		}{
			{"block bitmap", uint64(gd.BlockBitmap), `Block bitmap at (\d+)`},
			{"inode bitmap", uint64(gd.InodeBitmap), `Inode bitmap at (\d+)`},
			{"inode table", uint64(gd.InodeTable), `Inode table at (\d+)`},
			{"free blocks", uint64(gd.FreeBlocksCount), `(\d+) free blocks`},
			{"free inodes", uint64(gd.FreeInodesCount), `(\d+) free inodes`},
			{"directories", uint64(gd.UsedDirsCount), `(\d+) directories`},
		}
		for _, c := range checks {
			if want := field(t, s, c.re); c.got != want {
				t.Errorf("group %d %s: got %d, want %d (dumpe2fs)", g, c.name, c.got, want)
			}
		}
	}
}

// checkRootDir parses the root directory's blocks, compares them with
// debugfs ls, checks re-encoding and returns the inode of each name.
func checkRootDir(t *testing.T, im *testImage) map[string]uint32 {
	t.Helper()
	root, err := DecodeInode(im.inodeBytes(t, RootIno))
	if err != nil {
		t.Fatal(err)
	}
	if !root.IsDir() {
		t.Fatalf("root inode mode %#o is not a directory", root.Mode)
	}
	filetype := im.sb.HasIncompat(IncompatFiletype)
	bs := im.sb.BlockSize()
	nblocks := int(root.Size()) / bs
	if nblocks > NDirBlocks {
		t.Fatalf("root directory of %d blocks; test reads direct blocks only", nblocks)
	}
	var ents []DirEntry
	for i := 0; i < nblocks; i++ {
		blk := im.block(uint64(root.Block[i]))
		es, err := ParseDirBlock(blk, filetype, im.sb.InodesCount)
		if err != nil {
			t.Fatalf("root block %d: %v", i, err)
		}
		// Re-encode the records over a zero block: mke2fs leaves the
		// rest zero, so the bytes must match exactly.
		out := make([]byte, bs)
		for _, e := range es {
			if err := e.Encode(out[e.Offset:], filetype); err != nil {
				t.Fatalf("Encode %q: %v", e.Name, err)
			}
		}
		if !bytes.Equal(out, blk) {
			t.Errorf("root block %d: re-encoded bytes differ at %v", i, diffIdx(out, blk))
		}
		ents = append(ents, es...)
	}
	type lsEnt struct {
		ino    uint32
		recLen int
		name   string
	}
	var got, want []lsEnt
	names := map[string]uint32{}
	for _, e := range ents {
		if e.Inode == 0 {
			continue
		}
		got = append(got, lsEnt{e.Inode, e.RecLen, e.Name})
		names[e.Name] = e.Inode
		if filetype {
			in, err := DecodeInode(im.inodeBytes(t, e.Inode))
			if err != nil {
				t.Fatal(err)
			}
			if ft := FileTypeFromMode(in.Mode); e.FileType != ft {
				t.Errorf("%s: file type %d, want %d from mode %#o", e.Name, e.FileType, ft, in.Mode)
			}
		} else if e.FileType != FtUnknown {
			t.Errorf("%s: file type %d without the filetype feature", e.Name, e.FileType)
		}
	}
	ls := run(t, "debugfs", "-R", "ls /", im.path)
	for _, m := range regexp.MustCompile(`(\d+)\s+\((\d+)\)\s+(\S+)`).FindAllStringSubmatch(ls, -1) {
		ino, _ := strconv.Atoi(m[1])
		rl, _ := strconv.Atoi(m[2])
		want = append(want, lsEnt{uint32(ino), rl, m[3]})
	}
	if !slices.Equal(got, want) {
		t.Errorf("root entries:\n got  %v\n want %v (debugfs ls)", got, want)
	}
	for _, n := range srcTree {
		if (n == "chr" || n == "blk") && os.Geteuid() != 0 {
			continue
		}
		if names[n] == 0 {
			t.Errorf("root has no entry %q", n)
		}
	}
	return names
}

func checkInodes(t *testing.T, im *testImage, names map[string]uint32) {
	t.Helper()
	paths := []string{"<2>", "a.txt", "big", "link", "longlink", "fifo", "sub", "lost+found", "chr", "blk"}
	for _, p := range paths {
		ino := uint32(RootIno)
		spec := "<2>"
		if p != "<2>" {
			ino = names[p]
			if ino == 0 {
				continue // device nodes when not root
			}
			spec = "/" + p
		}
		raw := im.inodeBytes(t, ino)
		in, err := DecodeInode(raw)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out := make([]byte, len(raw))
		in.Encode(out)
		if !bytes.Equal(out, raw) {
			t.Errorf("%s: inode round trip differs at %v", p, diffIdx(out, raw))
		}
		st := run(t, "debugfs", "-R", "stat "+spec, im.path)
		if got, want := in.Size(), field(t, st, `\bSize: (\d+)`); got != want {
			t.Errorf("%s: size got %d, want %d (debugfs)", p, got, want)
		}
		if got, want := uint64(in.LinksCount), field(t, st, `Links: (\d+)`); got != want {
			t.Errorf("%s: links got %d, want %d", p, got, want)
		}
		if got, want := in.Blocks(), field(t, st, `Blockcount: (\d+)`); got != want {
			t.Errorf("%s: blockcount got %d, want %d", p, got, want)
		}
		if got, want := uint64(in.UID()), field(t, st, `User:\s+(\d+)`); got != want {
			t.Errorf("%s: uid got %d, want %d", p, got, want)
		}
		if got, want := in.FileACL(), field(t, st, `File ACL: (\d+)`); got != want {
			t.Errorf("%s: file acl got %d, want %d", p, got, want)
		}
		typ := regexp.MustCompile(`Type: (\S+)`).FindStringSubmatch(st)[1]
		wantType := map[string]func() bool{
			"directory": in.IsDir, "regular": in.IsReg, "symlink": in.IsLnk, "FIFO": in.IsFifo,
			"character": in.IsChr, "block": in.IsBlk, "socket": in.IsSock,
		}[typ]
		if wantType == nil || !wantType() {
			t.Errorf("%s: mode %#o does not match debugfs type %q", p, in.Mode, typ)
		}
		switch p {
		case "link":
			if got := string(in.BlockBytes()[:in.Size()]); got != "a.txt" {
				t.Errorf("fast symlink target: got %q, want %q", got, "a.txt")
			}
		case "longlink":
			blk := im.block(uint64(in.Block[0]))
			if got := string(blk[:in.Size()]); got != longTarget {
				t.Errorf("slow symlink target: got %q, want %q", got, longTarget)
			}
		case "big":
			if in.Size() != 300_000 {
				t.Errorf("big: size %d, want 300000", in.Size())
			}
		case "chr", "blk":
			maj, min := in.Rdev()
			wantMaj, wantMin := field(t, st, `major/minor number: (\d+):`), field(t, st, `major/minor number: \d+:(\d+)`)
			if uint64(maj) != wantMaj || uint64(min) != wantMin {
				t.Errorf("%s: device %d:%d, want %d:%d (debugfs)", p, maj, min, wantMaj, wantMin)
			}
			// Re-encoding the number must give the same i_block words.
			var again Inode
			again.SetRdev(maj, min)
			if again.Block[0] != in.Block[0] || again.Block[1] != in.Block[1] {
				t.Errorf("%s: SetRdev(%d, %d) gives i_block %#x %#x, on disk %#x %#x", p, maj, min,
					again.Block[0], again.Block[1], in.Block[0], in.Block[1])
			}
		}
		if im.sb.InodeSize() > InodeSize {
			if got, want := uint64(in.ExtraIsize), field(t, st, `Size of extra inode fields: (\d+)`); got != want {
				t.Errorf("%s: extra isize got %d, want %d", p, got, want)
			}
		}
	}
}

// checkXattrs sets two attributes on a.txt with debugfs and reads them
// back from the inode body and the xattr block.
func checkXattrs(t *testing.T, im *testImage, ino uint32) {
	t.Helper()
	if !im.sb.HasCompat(CompatExtAttr) {
		return
	}
	big := strings.Repeat("v", 200)
	cmds := filepath.Join(t.TempDir(), "cmds")
	if err := os.WriteFile(cmds, []byte("ea_set /a.txt user.greeting hello\nea_set /a.txt trusted.big "+big+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "debugfs", "-w", "-f", cmds, im.path)
	b, err := os.ReadFile(im.path)
	if err != nil {
		t.Fatal(err)
	}
	im.b = b
	in, err := DecodeInode(im.inodeBytes(t, ino))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	ibody, err := ParseInodeXattrs(in.XattrArea())
	if err != nil {
		t.Fatalf("in-inode xattrs: %v", err)
	}
	var blockXs []Xattr
	if acl := in.FileACL(); acl != 0 {
		blk := im.block(acl)
		h, err := DecodeXattrHeader(blk)
		if err != nil {
			t.Fatal(err)
		}
		if h.Magic != XattrMagic || h.Refcount != 1 || h.Blocks != 1 {
			t.Errorf("xattr header: got magic %#x refcount %d blocks %d, want %#x 1 1", h.Magic, h.Refcount, h.Blocks, XattrMagic)
		}
		if blockXs, err = ParseXattrBlock(blk); err != nil {
			t.Fatalf("xattr block %d: %v", acl, err)
		}
	}
	for _, x := range append(ibody, blockXs...) {
		got[x.FullName()] = string(x.Value)
	}
	want := map[string]string{"user.greeting": "hello", "trusted.big": big}
	if len(got) != len(want) || got["user.greeting"] != "hello" || got["trusted.big"] != big {
		t.Errorf("xattrs: got %q, want %q", got, want)
	}
	if in.FileACL() == 0 {
		t.Errorf("a 200-byte value should need an xattr block; i_file_acl is 0")
	}
}

func diffIdx(a, b []byte) []int {
	var d []int
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			d = append(d, i)
			if len(d) == 16 {
				break
			}
		}
	}
	if len(a) != len(b) {
		d = append(d, -1)
	}
	return d
}
