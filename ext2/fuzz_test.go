package ext2

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/ext2/layout"
	"github.com/mpagefs/mpage/internal/oracle"
)

// Fuzz targets of the filesystem as a whole, on images of a few dozen
// KiB. Package layout fuzzes its decoders on their own; these check that
// what ext2 builds on them (mount checks, the block map, directory
// lookups and changes, file reads and writes) never panics or hangs on
// any bytes, and that every error found on the way is of a known class
// and says where (checkWalkError of corpus_test.go).

// fuzzDeadline bounds one fuzz input. A walk of a 256 KiB image takes a
// few milliseconds; the bound is generous for a busy machine and -race.
const fuzzDeadline = 10 * time.Second

// fuzzName names the fuzzed device in error messages.
const fuzzName = "fuzz.img"

// fuzzLimits is the walk budget of one fuzz input.
var fuzzLimits = walkLimits{entries: 2000, bytes: 4 << 20, fileByte: 1 << 20, errs: 100, lookups: 100, dirLookups: 64, chunk: 64 << 10}

// fuzzMinImage and fuzzMaxImage bound the images FuzzMount mounts.
const (
	fuzzMinImage = 2048
	fuzzMaxImage = 1 << 20
)

// memDevice returns an in-memory device holding b, its size rounded up
// to whole sectors.
func memDevice(b []byte) *block.Memory {
	size := (int64(len(b)) + block.SectorSize - 1) &^ (block.SectorSize - 1)
	dev := block.NewMemory(size)
	copy(dev.Bytes(), b)
	return dev
}

// fuzzRun runs fn under fuzzDeadline and fails t on a panic or a hang.
func fuzzRun(t *testing.T, fn func(cancel *atomic.Bool)) {
	t.Helper()
	if failure := withDeadline(fuzzDeadline, fn); failure != "" {
		t.Fatal(failure)
	}
}

// checkErrs fails t for each error that is not of a known class or does
// not say where.
func checkErrs(t *testing.T, what string, errs []walkError) {
	t.Helper()
	for _, e := range errs {
		if bad := checkWalkError(e.err, fuzzName); bad != "" {
			t.Errorf("%s: %s: %s", what, e, bad)
		}
	}
}

// seedImage is a small image made by Format, populated through this
// package: files f0 and f5000 in the root, f100 and f13000 (which needs
// an indirect block at 1 KiB blocks) in /dir, /hardlink to f13000, fast
// and slow symlinks /fast and /slow, and a fifo /fifo. It returns the image and the inode numbers of
// the root's entries by name.
func seedImage(tb testing.TB, size int64, opts FormatOptions) ([]byte, map[string]uint32) {
	tb.Helper()
	dev := block.NewMemory(size)
	opts.UUID = [16]byte{1, 2, 3}
	opts.HashSeed = [16]byte{4, 5, 6}
	opts.Time = time.Unix(1700000000, 0)
	if opts.Inodes == 0 {
		opts.Inodes = 32
	}
	if err := Format(dev, opts); err != nil {
		tb.Fatalf("Format(%d bytes, %+v): %v", size, opts, err)
	}
	fsys, err := Mount(dev, Options{Name: "seed"})
	if err != nil {
		tb.Fatalf("Mount of a new image: %v", err)
	}
	must := func(err error) {
		tb.Helper()
		if err != nil {
			tb.Fatalf("populating the seed image: %v", err)
		}
	}
	root, err := fsys.Root()
	must(err)
	dir, err := fsys.Mkdir(root, "dir", 0o755, 0, 0)
	must(err)
	for i, n := range []int{0, 100, 5000, 13000} {
		parent := root
		if i%2 == 1 {
			parent = dir
		}
		ino, err := fsys.Create(parent, fmt.Sprintf("f%d", n), 0o644, 0, 0)
		must(err)
		f, err := fsys.Open(ino, true)
		must(err)
		_, err = f.WriteAt(pattern(uint64(n), n), 0)
		must(err)
		must(f.Close())
		if n == 13000 {
			must(fsys.Link(ino, root, "hardlink"))
		}
		fsys.Iput(ino)
	}
	for name, target := range map[string]string{"fast": "f100", "slow": strings.Repeat("x/", 40) + "f5000"} {
		ino, err := fsys.Symlink(root, name, target, 0, 0)
		must(err)
		fsys.Iput(ino)
	}
	fifo, err := fsys.Mknod(root, "fifo", layout.ModeFifo|0o644, 0, 0, 0, 0)
	must(err)
	fsys.Iput(fifo)
	fsys.Iput(dir)
	ents, err := fsys.ReadDir(root)
	must(err)
	fsys.Iput(root)
	must(fsys.Close())
	inos := map[string]uint32{}
	for _, e := range ents {
		inos[e.Name] = e.Ino
	}
	return bytes.Clone(dev.Bytes()), inos
}

// mke2fsSeed makes a small image with mke2fs -d from a tiny tree, or
// returns nil when mke2fs is missing.
func mke2fsSeed(f *testing.F, size int64, extra ...string) []byte {
	f.Helper()
	if oracle.LookTool("mke2fs") == "" {
		return nil
	}
	src := filepath.Join(f.TempDir(), "src")
	for name, n := range map[string]int{"a": 100, "d/b": 13000, "d/e/c": 0, "big": 3000} {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			f.Fatal(err)
		}
		if err := os.WriteFile(p, pattern(uint64(n), n), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	for name, target := range map[string]string{"d/fast": "../a", "slow": strings.Repeat("y/", 50) + "a"} {
		if err := os.Symlink(target, filepath.Join(src, name)); err != nil {
			f.Fatal(err)
		}
	}
	img := filepath.Join(f.TempDir(), "seed.img")
	args := append([]string{"-q", "-F", "-t", "ext2", "-b", "1024", "-N", "32", "-d", src}, extra...)
	args = append(args, img, fmt.Sprint(size/1024))
	if out, err := exec.Command("mke2fs", args...).CombinedOutput(); err != nil {
		f.Fatalf("mke2fs %v: %v\n%s", args, err, out)
	}
	b, err := os.ReadFile(img)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// corpusSeeds returns the images of the e2fsprogs corpus (read in place,
// never copied into the repository) of at most max bytes, or nothing
// when the corpus is not there: mostly corrupt ext2 images of 100 KiB,
// each broken in its own way.
func corpusSeeds(f *testing.F, max int64) [][]byte {
	f.Helper()
	dir := os.Getenv(oracle.CorpusEnv)
	if dir == "" {
		dir = filepath.Join(oracle.RepoRoot(), "..", "shared", "corpus", "e2fsprogs-tests")
	}
	if _, err := os.Stat(filepath.Join(dir, "INDEX.tsv")); err != nil {
		return nil // oracle.Corpus would skip the whole target
	}
	var out [][]byte
	for _, im := range oracle.Corpus(f) {
		if im.RawBytes > max {
			continue
		}
		b, err := os.ReadFile(im.Image(f))
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// FuzzMount mounts any bytes as an image, read-only, and walks the whole
// tree (walkTree): no panic, no hang, and every error of a known class
// saying where. Seeds: images made by Format and mke2fs -d, and the
// corpus images of up to 256 KiB.
func FuzzMount(f *testing.F) {
	for _, s := range []struct {
		size int64
		opts FormatOptions
	}{
		{64 << 10, FormatOptions{BlockSize: 1024}},
		{128 << 10, FormatOptions{BlockSize: 1024, InodeSize: 128, BlocksPerGroup: 512}},
		{96 << 10, FormatOptions{BlockSize: 1024, Rev0: true}},
		{256 << 10, FormatOptions{BlockSize: 2048}},
	} {
		img, _ := seedImage(f, s.size, s.opts)
		f.Add(img)
	}
	if b := mke2fsSeed(f, 128<<10); b != nil {
		f.Add(b)
	}
	if b := mke2fsSeed(f, 256<<10, "-I", "128", "-O", "^resize_inode,^dir_index"); b != nil {
		f.Add(b)
	}
	for _, b := range corpusSeeds(f, 256<<10) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < fuzzMinImage || len(b) > fuzzMaxImage {
			return
		}
		var (
			mountErr error
			res      *walkResult
			closeErr error
		)
		fuzzRun(t, func(cancel *atomic.Bool) {
			fsys, err := Mount(memDevice(b), Options{ReadOnly: true, Name: fuzzName})
			if err != nil {
				mountErr = err
				return
			}
			res = walkTree(fsys, fuzzLimits, cancel)
			closeErr = fsys.Close()
		})
		if mountErr != nil {
			if errClass(mountErr) != classUnsupported {
				checkErrs(t, "Mount", []walkError{{"Mount", "", mountErr}})
			}
			return
		}
		if closeErr != nil {
			t.Errorf("Close of a read-only mount: %v", closeErr)
		}
		checkErrs(t, "walk", res.errs)
	})
}

// fuzzBase is one populated image that FuzzInode and FuzzDirBlock splice
// their input into, with where its structures are.
type fuzzBase struct {
	img       []byte
	blockSize int
	inodeSize int
	inodeOff  map[uint32]int64 // byte offset of each inode of the root's entries
	dirBlock  map[string]int64 // byte offset of the first block of "/" and "/dir"
	inos      map[string]uint32
	// meta lists the other metadata FuzzMetadata splices into.
	meta []fuzzRegion
}

// fuzzRegion is a byte range of the base image holding one structure.
type fuzzRegion struct {
	name     string
	off, len int64
}

func newFuzzBase(tb testing.TB) *fuzzBase {
	tb.Helper()
	img, inos := seedImage(tb, 64<<10, FormatOptions{BlockSize: 1024, InodeSize: 128})
	fsys, err := Mount(memDevice(img), Options{ReadOnly: true, Name: "base"})
	if err != nil {
		tb.Fatal(err)
	}
	defer fsys.Close()
	b := &fuzzBase{img: img, blockSize: fsys.blockSize, inodeSize: fsys.inodeSize,
		inodeOff: map[uint32]int64{}, dirBlock: map[string]int64{}, inos: inos}
	for _, n := range inos {
		loc := fsys.inodeLoc(n)
		b.inodeOff[n] = loc.block*int64(fsys.blockSize) + int64(loc.offset)
	}
	for _, p := range []string{"/", "/dir"} {
		ino, err := fsys.Lookup(p)
		if err != nil {
			tb.Fatal(err)
		}
		blk, _, err := ino.MapBlock(0, false)
		fsys.Iput(ino)
		if err != nil || blk == 0 {
			tb.Fatalf("first block of %s: %d, %v", p, blk, err)
		}
		b.dirBlock[p] = blk * int64(fsys.blockSize)
	}
	bs := int64(fsys.blockSize)
	g := fsys.groups[0]
	b.meta = []fuzzRegion{
		{"superblock", layout.SuperblockOffset, layout.SuperblockSize},
		{"group descriptors", (int64(fsys.firstDataBlock) + 1) * bs, bs},
		{"block bitmap", g.blockBitmap * bs, bs},
		{"inode bitmap", g.inodeBitmap * bs, bs},
	}
	for _, p := range []string{"/hardlink", "/slow"} {
		ino, err := fsys.Lookup(p)
		if err != nil {
			tb.Fatal(err)
		}
		var blk int64
		if p == "/hardlink" {
			blk = int64(ino.Disk().Block[layout.IndBlock]) // the indirect block
		} else {
			blk, _, err = ino.MapBlock(0, false)
		}
		fsys.Iput(ino)
		if err != nil || blk == 0 {
			tb.Fatalf("block of %s: %d, %v", p, blk, err)
		}
		b.meta = append(b.meta, fuzzRegion{"block of " + p, blk * bs, bs})
	}
	return b
}

// changeTree mounts img read-write and changes it with every namespace
// and file operation: it must not panic or hang, whatever the image.
// Then it unmounts, mounts again read-only and walks the result. It
// returns the errors of the walks, the errors of the changes (which may
// fail for any reason a corrupt filesystem gives) and the image as
// changed.
func changeTree(img []byte, cancel *atomic.Bool) (walkErrs, opErrs []walkError, out []byte) {
	dev := memDevice(img)
	fsys, err := Mount(dev, Options{Name: fuzzName, Errors: ErrorsContinue})
	if err != nil {
		return []walkError{{"Mount", "", err}}, nil, nil
	}
	walkErrs = append(walkErrs, walkTree(fsys, fuzzLimits, cancel).errs...)
	op := func(name, path string, err error) bool {
		if err != nil {
			opErrs = append(opErrs, walkError{name, path, err})
		}
		return err == nil
	}
	write := func(ino *Inode, path string, data []byte, offs ...int64) {
		f, err := fsys.Open(ino, true)
		if !op("Open", path, err) {
			return
		}
		for _, off := range offs {
			_, err := f.WriteAt(data, off)
			op("WriteAt", path, err)
		}
		op("Sync", path, f.Sync())
		op("Truncate", path, f.Truncate(100))
		op("Close", path, f.Close())
	}
	root, err := fsys.Root()
	if op("Root", "/", err) {
		data := pattern(7, 3000)
		if ino, err := fsys.Create(root, "new", 0o644, 0, 0); op("Create", "/new", err) {
			write(ino, "/new", data, 0, 20000)
			fsys.Iput(ino)
		}
		for _, p := range []string{"/f0", "/f5000", "/hardlink", "/dir/f100"} {
			if ino, err := fsys.Lookup(p); op("Lookup", p, err) {
				if ino.IsRegular() {
					write(ino, p, data, 12*1024) // the first indirect block at 1 KiB blocks
				}
				fsys.Iput(ino)
			}
		}
		if dir, err := fsys.Lookup("/dir"); op("Lookup", "/dir", err) {
			if dir.IsDir() {
				op("Rename", "/f0", fsys.Rename(root, "f0", dir, "moved", 0))
				op("Rename", "/dir/f100", fsys.Rename(dir, "f100", root, "back", 0))
				if sub, err := fsys.Mkdir(dir, "sub", 0o755, 0, 0); op("Mkdir", "/dir/sub", err) {
					fsys.Iput(sub)
				}
				_, _, err := fsys.ReadDirFrom(dir, 0, 100)
				op("ReadDirFrom", "/dir", err)
				op("Rmdir", "/dir/sub", fsys.Rmdir(dir, "sub"))
				op("Unlink", "/dir/f13000", fsys.Unlink(dir, "f13000"))
				op("Unlink", "/dir/moved", fsys.Unlink(dir, "moved"))
			}
			fsys.Iput(dir)
		}
		if ino, err := fsys.Symlink(root, "link", strings.Repeat("z", 300), 0, 0); op("Symlink", "/link", err) {
			fsys.Iput(ino)
		}
		for _, name := range []string{"hardlink", "fast", "slow", "fifo", "new", "link", "back", "f5000"} {
			op("Unlink", "/"+name, fsys.Unlink(root, name))
		}
		op("Rmdir", "/dir", fsys.Rmdir(root, "dir"))
		fsys.Iput(root)
	}
	op("Close", "", fsys.Close())
	out = dev.Bytes()
	fsys, err = Mount(memDevice(out), Options{ReadOnly: true, Name: fuzzName})
	if err != nil {
		return append(walkErrs, walkError{"Mount again", "", err}), opErrs, out
	}
	walkErrs = append(walkErrs, walkTree(fsys, fuzzLimits, cancel).errs...)
	fsys.Close()
	return walkErrs, opErrs, out
}

// FuzzInode splices its input over an inode of a populated image (the
// first byte picks which: the root, the directory, a file with an
// indirect block, a symlink, ...) and runs changeTree: Iget's checks,
// the block map, truncate and eviction must cope with any inode.
func FuzzInode(f *testing.F) {
	base := newFuzzBase(f)
	names := []string{".", "dir", "f0", "hardlink", "fast", "slow", "fifo"}
	for i, name := range names {
		if base.inos[name] == 0 {
			f.Fatalf("no %q in the base image's root", name)
		}
		off := base.inodeOff[base.inos[name]]
		raw := base.img[off : off+int64(base.inodeSize)]
		f.Add(append([]byte{byte(i)}, raw...))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 1 {
			return
		}
		name := names[int(b[0])%len(names)]
		img := bytes.Clone(base.img)
		off := base.inodeOff[base.inos[name]]
		copy(img[off:off+int64(base.inodeSize)], b[1:])
		var errs []walkError
		fuzzRun(t, func(cancel *atomic.Bool) { errs, _, _ = changeTree(img, cancel) })
		checkErrs(t, "inode of "+name, errs)
	})
}

// FuzzDirBlock splices its input over the first block of the root
// directory or of /dir (picked by the first byte) and runs changeTree:
// directory parsing, lookups, adding and deleting entries, rename and
// rmdir must cope with any directory block.
func FuzzDirBlock(f *testing.F) {
	base := newFuzzBase(f)
	dirs := []string{"/", "/dir"}
	for i, d := range dirs {
		off := base.dirBlock[d]
		f.Add(append([]byte{byte(i)}, base.img[off:off+int64(base.blockSize)]...))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 1 {
			return
		}
		d := dirs[int(b[0])%len(dirs)]
		img := bytes.Clone(base.img)
		off := base.dirBlock[d]
		copy(img[off:off+int64(base.blockSize)], b[1:])
		var errs []walkError
		fuzzRun(t, func(cancel *atomic.Bool) { errs, _, _ = changeTree(img, cancel) })
		checkErrs(t, "directory block of "+d, errs)
	})
}

// FuzzMetadata splices its input over one of the other structures of a
// populated image (the first byte picks which: the superblock, the group
// descriptors, the bitmaps, the indirect block of a file, the block of a
// slow symlink) and runs changeTree: mount checks, allocation from bad
// bitmaps, the block map through a bad indirect block and slow symlinks
// must cope with any bytes.
func FuzzMetadata(f *testing.F) {
	base := newFuzzBase(f)
	for i, r := range base.meta {
		f.Add(append([]byte{byte(i)}, base.img[r.off:r.off+r.len]...))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 1 {
			return
		}
		r := base.meta[int(b[0])%len(base.meta)]
		img := bytes.Clone(base.img)
		copy(img[r.off:r.off+r.len], b[1:])
		var errs []walkError
		fuzzRun(t, func(cancel *atomic.Bool) { errs, _, _ = changeTree(img, cancel) })
		for _, e := range errs {
			if errClass(e.err) == classUnsupported {
				continue // a superblock with features we lack is refused
			}
			if bad := checkWalkError(e.err, fuzzName); bad != "" {
				t.Errorf("%s: %s: %s", r.name, e, bad)
			}
		}
	})
}

// TestFuzzSeeds checks that the seed images of the fuzz targets are what
// they should be: e2fsck finds them clean, and they mount and walk with
// every file, directory and symlink seen and no error. A fuzz target
// whose seeds did not mount would only ever fuzz Mount's first checks.
func TestFuzzSeeds(t *testing.T) {
	tests := []struct {
		name string
		size int64
		opts FormatOptions
	}{
		{"1k", 64 << 10, FormatOptions{BlockSize: 1024}},
		{"1k-128-inodes-8-groups", 128 << 10, FormatOptions{BlockSize: 1024, InodeSize: 128, BlocksPerGroup: 512}},
		{"rev0", 96 << 10, FormatOptions{BlockSize: 1024, Rev0: true}},
		{"2k", 256 << 10, FormatOptions{BlockSize: 2048}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img, _ := seedImage(t, tc.size, tc.opts)
			if oracle.LookTool("e2fsck") != "" {
				path := filepath.Join(t.TempDir(), "seed.img")
				if err := os.WriteFile(path, img, 0o644); err != nil {
					t.Fatal(err)
				}
				oracle.RequireClean(t, path)
			}
			fsys, err := Mount(memDevice(img), Options{ReadOnly: true, Name: fuzzName})
			if err != nil {
				t.Fatalf("Mount: %v", err)
			}
			defer fsys.Close()
			r := walkTree(fsys, fuzzLimits, new(atomic.Bool))
			for _, e := range r.errs {
				t.Errorf("walk: %s", e)
			}
			// root, lost+found, dir; f0, f13000, hardlink (the same
			// inode, read twice), f100, f5000; fast, slow; fifo.
			got := [5]int64{int64(r.dirs), int64(r.files), int64(r.symlinks), int64(r.special), r.bytes}
			want := [5]int64{3, 5, 2, 1, 0 + 13000 + 13000 + 100 + 5000}
			if got != want {
				t.Errorf("walk saw dirs, files, symlinks, special, bytes = %v, want %v", got, want)
			}
		})
	}
}

// TestChangeTree runs the change sequence of FuzzInode, FuzzDirBlock and
// FuzzMetadata on their unspliced base image: every change must work
// there, so that the fuzz targets reach the code they mean to, and leave
// a filesystem e2fsck finds clean.
func TestChangeTree(t *testing.T) {
	base := newFuzzBase(t)
	var (
		walkErrs, opErrs []walkError
		out              []byte
	)
	if failure := withDeadline(fuzzDeadline, func(cancel *atomic.Bool) { walkErrs, opErrs, out = changeTree(base.img, cancel) }); failure != "" {
		t.Fatal(failure)
	}
	for _, e := range append(walkErrs, opErrs...) {
		t.Errorf("changeTree on the base image: %s", e)
	}
	// What is left: the root with lost+found only.
	fsys, err := Mount(memDevice(out), Options{ReadOnly: true, Name: fuzzName})
	if err != nil {
		t.Fatal(err)
	}
	root, err := fsys.Root()
	if err != nil {
		t.Fatal(err)
	}
	ents, err := fsys.ReadDir(root)
	fsys.Iput(root)
	fsys.Close()
	var names []string
	for _, e := range ents {
		names = append(names, e.Name)
	}
	if got, want := strings.Join(names, " "), ". .. lost+found"; err != nil || got != want {
		t.Errorf("root after changeTree: got %q, %v; want %q", got, err, want)
	}
	if oracle.LookTool("e2fsck") == "" {
		t.Skip("e2fsck not installed")
	}
	path := filepath.Join(t.TempDir(), "changed.img")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	oracle.RequireClean(t, path)
}
