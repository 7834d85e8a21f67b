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
// package: a directory, files of 0, 100, 5000 and 13000 bytes (the last
// needs an indirect block at 1 KiB blocks), a hard link, fast and slow
// symlinks and a fifo. It returns the image and the inode numbers of
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

// FuzzMount mounts any bytes as an image, read-only, and walks the whole
// tree (walkTree): no panic, no hang, and every error of a known class
// saying where.
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
	return b
}

// changeTree mounts img read-write and changes it with every namespace
// and file operation, tolerating their errors: it must only not panic or
// hang. Then it unmounts, mounts again read-only and walks the result.
// It returns the errors of the walks (the changes may fail for any
// reason a corrupt filesystem gives).
func changeTree(img []byte, cancel *atomic.Bool) (walkErrs []walkError) {
	dev := memDevice(img)
	fsys, err := Mount(dev, Options{Name: fuzzName, Errors: ErrorsContinue})
	if err != nil {
		return []walkError{{"Mount", "", err}}
	}
	walkErrs = append(walkErrs, walkTree(fsys, fuzzLimits, cancel).errs...)
	root, err := fsys.Root()
	if err == nil {
		data := pattern(7, 3000)
		if ino, err := fsys.Create(root, "new", 0o644, 0, 0); err == nil {
			if f, err := fsys.Open(ino, true); err == nil {
				f.WriteAt(data, 0)
				f.WriteAt(data, 20000)
				f.Sync()
				f.Truncate(100)
				f.Close()
			}
			fsys.Iput(ino)
		}
		for _, name := range []string{"f0", "f13000", "hardlink", "fifo", "fast", "slow"} {
			if ino, err := fsys.Lookup("/" + name); err == nil {
				if ino.IsRegular() {
					if f, err := fsys.Open(ino, true); err == nil {
						f.WriteAt(data, 12*1024) // the first indirect block at 1 KiB blocks
						f.Truncate(50)
						f.Close()
					}
				}
				fsys.Iput(ino)
			}
		}
		if dir, err := fsys.Lookup("/dir"); err == nil {
			if dir.IsDir() {
				fsys.Rename(root, "f0", dir, "moved", 0)
				fsys.Rename(dir, "f100", root, "back", 0)
				if sub, err := fsys.Mkdir(dir, "sub", 0o755, 0, 0); err == nil {
					fsys.Iput(sub)
				}
				fsys.Rmdir(dir, "sub")
				fsys.Unlink(dir, "f5000")
				fsys.ReadDirFrom(dir, 0, 100)
			}
			fsys.Iput(dir)
		}
		if ino, err := fsys.Symlink(root, "link", strings.Repeat("z", 300), 0, 0); err == nil {
			fsys.Iput(ino)
		}
		for _, name := range []string{"hardlink", "fast", "slow", "fifo", "new", "link"} {
			fsys.Unlink(root, name)
		}
		fsys.Rmdir(root, "dir")
		fsys.Iput(root)
	}
	fsys.Close()
	fsys, err = Mount(memDevice(dev.Bytes()), Options{ReadOnly: true, Name: fuzzName})
	if err != nil {
		return append(walkErrs, walkError{"Mount again", "", err})
	}
	walkErrs = append(walkErrs, walkTree(fsys, fuzzLimits, cancel).errs...)
	fsys.Close()
	return walkErrs
}

// FuzzInode splices its input over an inode of a populated image (the
// first byte picks which: the root, the directory, a file with an
// indirect block, a symlink, ...) and runs changeTree: Iget's checks,
// the block map, truncate and eviction must cope with any inode.
func FuzzInode(f *testing.F) {
	base := newFuzzBase(f)
	names := []string{".", "dir", "f0", "f13000", "fast", "slow", "fifo"}
	for i, name := range names {
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
		fuzzRun(t, func(cancel *atomic.Bool) { errs = changeTree(img, cancel) })
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
		fuzzRun(t, func(cancel *atomic.Bool) { errs = changeTree(img, cancel) })
		checkErrs(t, "directory block of "+d, errs)
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
