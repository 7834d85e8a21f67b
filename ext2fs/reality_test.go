package ext2fs_test

// The proof against reality: what we write, the Linux kernel's ext2
// driver reads back; what the kernel (or mke2fs) writes, we read back.
// Every comparison is made by something we did not write: the kernel, a
// loop mount, e2fsck, debugfs, and trees compared on the host.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mpagefs/mpage/ext2"
	"github.com/mpagefs/mpage/ext2fs"
	"github.com/mpagefs/mpage/internal/oracle"
)

// realityEpoch is the time given to the entries the tests add beside
// oracle.GenerateTree's, so that a copy that fails to keep times shows.
var realityEpoch = time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)

// requireRoot skips t unless it runs as root (loop mounts, mknod,
// chown and dropping caches need it).
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: loop mounts, device nodes and owners")
	}
}

// realityRun runs a program under oracle.Timeout and fails t if it fails.
func realityRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	prog := oracle.Tool(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), oracle.Timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, prog, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// span is a byte range of a file.
type span struct {
	off int64
	n   int64
}

// spanData returns the contents the tests write at s in the file named
// name: pseudo-random, depending only on name and s.off.
func spanData(name string, s span) []byte {
	h := fnv.New64a()
	h.Write([]byte(name))
	return pseudoRandom(h.Sum64()^uint64(s.off), int(s.n))
}

// pseudoRandom returns n deterministic pseudo-random bytes of seed.
func pseudoRandom(seed uint64, n int) []byte {
	var key [32]byte
	for i := range 8 {
		key[i] = byte(seed >> (8 * i))
	}
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

// writeHostSparse makes the host file path of size bytes holding
// spanData at each span, holes elsewhere, with mode and realityEpoch.
func writeHostSparse(t *testing.T, path, name string, spans []span, size int64, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range spans {
		if _, err := f.WriteAt(spanData(name, s), s.off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, realityEpoch, realityEpoch); err != nil {
		t.Fatal(err)
	}
}

// hostExtents returns the data ranges of a host file (SEEK_DATA and
// SEEK_HOLE); a file system without hole support reports one range.
func hostExtents(t *testing.T, path string) []span {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	var out []span
	fd := int(f.Fd())
	for off := int64(0); off < st.Size(); {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break
		}
		if err != nil {
			t.Fatalf("SEEK_DATA %s at %d: %v", path, off, err)
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			t.Fatalf("SEEK_HOLE %s at %d: %v", path, data, err)
		}
		out = append(out, span{data, hole - data})
		off = hole
	}
	return out
}

// sparseEqual reports through t whether the host files want and got
// have the same size and contents, reading only the data ranges either
// of them reports (a range that is a hole on one side reads as zeros).
func sparseEqual(t *testing.T, want, got string) {
	t.Helper()
	a, err := os.Open(want)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := os.Open(got)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sa, _ := a.Stat()
	sb, _ := b.Stat()
	if sa.Size() != sb.Size() {
		t.Errorf("%s: size %d, want %d", got, sb.Size(), sa.Size())
		return
	}
	const chunk = 4 << 20
	ba, bb := make([]byte, chunk), make([]byte, chunk)
	for _, s := range append(hostExtents(t, want), hostExtents(t, got)...) {
		for off := s.off; off < s.off+s.n; off += chunk {
			n := min(chunk, s.off+s.n-off)
			if _, err := a.ReadAt(ba[:n], off); err != nil && err != io.EOF {
				t.Fatal(err)
			}
			if _, err := b.ReadAt(bb[:n], off); err != nil && err != io.EOF {
				t.Fatal(err)
			}
			if !bytes.Equal(ba[:n], bb[:n]) {
				i := 0
				for ba[i] == bb[i] {
					i++
				}
				t.Errorf("%s: byte %d is %#x, want %#x", got, off+int64(i), bb[i], ba[i])
				return
			}
		}
	}
}

// mapKey names one indirect block of an ext2 block map: its level (1
// single, 2 double, 3 triple) and which one of that level.
type mapKey struct {
	level int
	index int64
}

// wantIBlocks returns the i_blocks (512-byte units) that ext2 needs for
// a file of size bytes with data in spans and holes elsewhere: every
// block a span touches, plus the indirect blocks mapping them.
func wantIBlocks(spans []span, size int64, bs int64) uint64 {
	data := map[int64]bool{}
	for _, s := range spans {
		end := min(s.off+s.n, size)
		for b := s.off / bs; b*bs < end; b++ {
			data[b] = true
		}
	}
	p := bs / 4
	meta := map[mapKey]bool{}
	for b := range data {
		switch {
		case b < 12:
		case b < 12+p:
			meta[mapKey{1, 0}] = true
		case b < 12+p+p*p:
			r := b - 12 - p
			meta[mapKey{2, 0}] = true
			meta[mapKey{1, 1 + r/p}] = true
		default:
			r := b - 12 - p - p*p
			meta[mapKey{3, 0}] = true
			meta[mapKey{2, 1 + r/(p*p)}] = true
			meta[mapKey{1, 1 + p + r/p}] = true
		}
	}
	return uint64(len(data)+len(meta)) * uint64(bs/512)
}

// thresholdSpans returns the spans of a file of n blocks of bs bytes
// whose contents sit next to every block-map threshold below n (the
// last direct block, the last block of the single, double indirect
// range) and in its last two blocks; a small file is written whole.
func thresholdSpans(n, bs int64) []span {
	size := n * bs
	if n <= 12+bs/4+1 {
		return []span{{0, size}}
	}
	p := bs / 4
	var out []span
	for _, th := range []int64{12, 12 + p, 12 + p + p*p} {
		if th <= n {
			first := max(0, (th-2)*bs)
			out = append(out, span{first, min(4*bs, size-first)})
		}
	}
	return append(out, span{(n - 2) * bs, 2 * bs})
}

// deepPath returns levels nested directory names under root.
func deepPath(root string, levels int) string {
	parts := []string{root}
	for i := 1; i <= levels; i++ {
		parts = append(parts, fmt.Sprintf("l%02d", i))
	}
	return filepath.Join(parts...)
}

// setTreeTimes gives every entry under dir (dir included) realityEpoch,
// deepest first, without following symbolic links.
func setTreeTimes(t *testing.T, dir string) {
	t.Helper()
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		paths = append(paths, p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := unix.NsecToTimespec(realityEpoch.UnixNano())
	for i := len(paths) - 1; i >= 0; i-- {
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, paths[i], []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatal(err)
		}
	}
}

// sparseFile is a file the tests make with holes, and what they expect
// of it.
type sparseFile struct {
	name  string // slash-separated, relative to the tree root
	spans []span
	size  int64
}

// TestRealityKernelReadsOurWrites builds a tree through our API (CopyIn
// of oracle.DefaultTree, files at every block-map threshold of the block
// size, a sparse file larger than 4 GiB, holes of one block and of one
// page written with WriteAt, 50 nested directories), closes the image,
// has e2fsck check it, mounts it read-only with the Linux kernel's ext2
// driver and compares the mount with the source: contents, modes, owners,
// times, links, and the kernel's st_blocks of every sparse file. It runs
// at each block size; 1 KiB blocks reach the triple-indirect range at
// 64 MiB, 4 KiB blocks just past 4 GiB.
func TestRealityKernelReadsOurWrites(t *testing.T) {
	requireRoot(t)
	for _, bs := range []int64{1024, 2048, 4096} {
		t.Run(fmt.Sprintf("b%d", bs), func(t *testing.T) { kernelReadsOurWrites(t, bs) })
	}
}

func kernelReadsOurWrites(t *testing.T, bs int64) {
	src := filepath.Join(t.TempDir(), "src")
	oracle.GenerateTree(t, src, oracle.DefaultTree)

	p := bs / 4 // block numbers per indirect block
	var sparse []sparseFile
	for _, n := range []int64{12, 13, 12 + p, 12 + p + 1, 12 + p + p*p, 12 + p + p*p + 1} {
		f := sparseFile{name: fmt.Sprintf("map/b%d", n), spans: thresholdSpans(n, bs), size: n * bs}
		sparse = append(sparse, f)
	}
	hugeSize := int64(4<<30 + 3<<20 + 123)
	sparse = append(sparse, sparseFile{name: "sparse/huge", size: hugeSize, spans: []span{
		{0, 5000}, {1<<30 + 1000, 3000}, {4<<30 - 2000, 4000}, {4<<30 + 2<<20, 8192}, {hugeSize - 100, 100},
	}})
	// Files this large are compared apart, reading only their data
	// ranges on the host side: CompareTrees would hash every hole.
	ignore := []string{"lost+found"}
	var apart []string
	for _, f := range sparse {
		writeHostSparse(t, filepath.Join(src, f.name), f.name, f.spans, f.size, 0o644)
		if f.size > 128<<20 {
			apart = append(apart, f.name)
		}
	}
	ignore = append(ignore, apart...)
	deep := deepPath(filepath.Join(src, "deep"), 50)
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(deep, "leaf"), []byte("fifty levels down\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"map", "sparse", "deep"} {
		setTreeTimes(t, filepath.Join(src, d))
	}
	if err := os.Mkdir(filepath.Join(src, "holes"), 0o755); err != nil {
		t.Fatal(err)
	}

	image := filepath.Join(t.TempDir(), "fs.img")
	if err := ext2fs.Format(image, 64<<20, ext2.FormatOptions{BlockSize: int(bs)}); err != nil {
		t.Fatalf("Format: %v", err)
	}
	fsys, err := ext2fs.Open(image, ext2fs.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { fsys.Close() })
	if err := ext2fs.CopyIn(fsys, src, "/", ext2fs.CopyOptions{}); err != nil {
		t.Fatalf("CopyIn: %v", err)
	}

	// Holes of one block inside a page, and of whole pages, made by
	// WriteAt through our API and by the host's os.File alike.
	apiFiles := []sparseFile{
		{name: "holes/block-grain", size: 16<<10 + 500, spans: []span{
			{0, 1024}, {2048, 1024}, {5120, 2048}, {9216 + 100, 300}, {16 << 10, 500},
		}},
		{name: "holes/page-grain", size: 36 << 10, spans: []span{{0, 4096}, {8192, 4096}, {20480, 4096}}},
		{name: "holes/all-hole", size: 40 << 10},
	}
	for _, af := range apiFiles {
		writeHostSparse(t, filepath.Join(src, af.name), af.name, af.spans, af.size, 0o640)
		f, err := fsys.OpenFile(af.name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
		if err != nil {
			t.Fatalf("OpenFile(%s): %v", af.name, err)
		}
		for _, s := range af.spans {
			if _, err := f.WriteAt(spanData(af.name, s), s.off); err != nil {
				t.Fatalf("WriteAt(%s, %d): %v", af.name, s.off, err)
			}
		}
		if err := f.Truncate(af.size); err != nil {
			t.Fatalf("Truncate(%s): %v", af.name, err)
		}
		if err := f.Close(); err != nil {
			t.Fatalf("Close(%s): %v", af.name, err)
		}
		if err := fsys.Chmod(af.name, 0o640); err != nil {
			t.Fatal(err)
		}
		if err := fsys.Chtimes(af.name, realityEpoch, realityEpoch); err != nil {
			t.Fatal(err)
		}
	}
	setTreeTimes(t, filepath.Join(src, "holes"))
	if err := fsys.Chtimes("holes", realityEpoch, realityEpoch); err != nil {
		t.Fatal(err)
	}

	// What we believe we allocated, before the kernel says.
	ours := map[string]uint64{}
	for _, f := range append(sparse, apiFiles...) {
		fi, err := fsys.Stat(f.name)
		if err != nil {
			t.Fatalf("Stat(%s): %v", f.name, err)
		}
		ours[f.name] = fi.Sys().(*ext2fs.InodeInfo).Blocks
	}
	if err := fsys.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	oracle.RequireClean(t, image)

	mnt := oracle.LoopMount(t, image, true)
	oracle.CompareTrees(t, src, mnt, oracle.CompareOptions{Owners: true, Times: true, Ignore: ignore})
	for _, name := range apart {
		sparseEqual(t, filepath.Join(src, name), filepath.Join(mnt, name))
		fi, err := os.Stat(filepath.Join(mnt, name))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.ModTime().Equal(realityEpoch) || fi.Mode() != 0o644 {
			t.Errorf("%s: kernel sees mode %v, mtime %v; want %v, %v", name, fi.Mode(), fi.ModTime(), fs.FileMode(0o644), realityEpoch)
		}
	}

	for _, f := range sparse {
		f.spans = hostExtents(t, filepath.Join(src, f.name)) // CopyIn copies the host's data ranges
		checkBlocks(t, mnt, f, ours[f.name], bs)
	}
	for _, f := range apiFiles {
		checkBlocks(t, mnt, f, ours[f.name], bs)
	}
}

// checkBlocks compares the kernel's st_blocks of f on the mount with
// ours and with what f's data ranges need.
func checkBlocks(t *testing.T, mnt string, f sparseFile, ours uint64, bs int64) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(mnt, f.name), &st); err != nil {
		t.Fatal(err)
	}
	want := wantIBlocks(f.spans, f.size, bs)
	if st.Size != f.size {
		t.Errorf("%s: kernel st_size %d, want %d", f.name, st.Size, f.size)
	}
	if uint64(st.Blocks) != want || ours != want {
		t.Errorf("%s: kernel st_blocks %d, our InodeInfo.Blocks %d, want %d (data ranges %v)", f.name, st.Blocks, ours, want, f.spans)
	}
}

// kernelSparse are the files with holes kernelExtras writes.
var kernelSparse = []sparseFile{
	{name: "kernel/sparse-data", size: 70 << 20, spans: []span{
		{0, 3000}, {12<<10 - 10, 20}, {268<<10 - 5, 10}, {65804<<10 - 3, 6}, {70<<20 - 1, 1},
	}},
	{name: "kernel/huge", size: 4<<30 + 4<<20, spans: []span{{4<<30 + 5, 4096}}},
}

// kernelExtras makes, under dir, files of every kind with the host's
// tools and system calls: truncate -s, ln, ln -s, mkfifo, mknod, writes
// past 4 GiB, chmod and chown. On a loop mount the kernel's ext2 driver
// makes them; the same calls on the host tree make the expected tree.
func kernelExtras(t *testing.T, dir string) {
	t.Helper()
	k := filepath.Join(dir, "kernel")
	if err := os.Mkdir(k, 0o755); err != nil {
		t.Fatal(err)
	}
	realityRun(t, "truncate", "-s", "300M", filepath.Join(k, "truncated"))
	for _, f := range kernelSparse {
		writeHostSparse(t, filepath.Join(dir, f.name), f.name, f.spans, f.size, 0o600)
	}
	realityRun(t, "ln", filepath.Join(dir, "hard-a"), filepath.Join(k, "hard-d"))
	realityRun(t, "ln", "-s", "../f00-0", filepath.Join(k, "sym-short"))
	realityRun(t, "ln", "-s", strings.Repeat("a-long-target/", 15)+"end", filepath.Join(k, "sym-long"))
	realityRun(t, "mkfifo", "-m", "0640", filepath.Join(k, "pipe"))
	realityRun(t, "mknod", "-m", "0666", filepath.Join(k, "null"), "c", "1", "3")
	realityRun(t, "mknod", "-m", "0660", filepath.Join(k, "loop200"), "b", "7", "200")
	realityRun(t, "mknod", "-m", "0600", filepath.Join(k, "bigdev"), "c", "300", "70000") // a device number in the new encoding
	owned := filepath.Join(k, "owned-setuid")
	if err := os.WriteFile(owned, []byte("#!/bin/sh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(owned, 1234, 5678); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(owned, 0o4755|fs.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	sticky := filepath.Join(k, "sticky")
	if err := os.Mkdir(sticky, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sticky, 0o1777|fs.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(deepPath(filepath.Join(k, "deep"), 20), 0o755); err != nil {
		t.Fatal(err)
	}
	setTreeTimes(t, k)
}

// TestRealityWeReadKernelWrites has the kernel's ext2 driver write a tree
// (cp -a of oracle.DefaultTree into a loop mount of a fresh mke2fs image,
// and kernelExtras), then reads the image with our API: CopyOut compared
// with the source tree, and each entry's attributes compared with the
// source's directly through Lstat, ReadLink and InodeInfo.
func TestRealityWeReadKernelWrites(t *testing.T) {
	requireRoot(t)
	src := filepath.Join(t.TempDir(), "src")
	oracle.GenerateTree(t, src, oracle.DefaultTree)
	// 256-byte inodes keep nanoseconds, which compareEntry compares.
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 64 << 20, BlockSize: 1024, InodeSize: 256})
	mnt := oracle.LoopMount(t, image, false)
	realityRun(t, "cp", "-a", src+"/.", mnt)
	kernelExtras(t, src)
	kernelExtras(t, mnt)
	oracle.Umount(t, mnt)
	oracle.RequireClean(t, image)

	fsys, err := ext2fs.Open(image, ext2fs.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { fsys.Close() })
	dst := filepath.Join(t.TempDir(), "out")
	if err := ext2fs.CopyOut(fsys, "/", dst, ext2fs.CopyOptions{}); err != nil {
		t.Fatalf("CopyOut: %v", err)
	}
	oracle.CompareTrees(t, src, dst, oracle.CompareOptions{
		Owners: true, Times: true, Ignore: []string{"lost+found", "kernel/huge"},
	})
	sparseEqual(t, filepath.Join(src, "kernel/huge"), filepath.Join(dst, "kernel/huge"))

	// The same, without CopyOut: our Lstat against the host's.
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		compareEntry(t, fsys, p, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// The kernel's allocation of the sparse files, as we read it, and
	// their data through ReadAt.
	for _, f := range kernelSparse {
		fi, err := fsys.Stat(f.name)
		if err != nil {
			t.Fatalf("Stat(%s): %v", f.name, err)
		}
		if got, want := fi.Sys().(*ext2fs.InodeInfo).Blocks, wantIBlocks(f.spans, f.size, 1024); got != want {
			t.Errorf("%s: InodeInfo.Blocks %d, want %d", f.name, got, want)
		}
		file, err := fsys.OpenFile(f.name, os.O_RDONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range f.spans {
			got := make([]byte, s.n)
			if _, err := file.ReadAt(got, s.off); err != nil && err != io.EOF {
				t.Fatalf("ReadAt(%s, %d): %v", f.name, s.off, err)
			}
			if !bytes.Equal(got, spanData(f.name, s)) {
				t.Errorf("%s: bytes at %d differ from what the kernel wrote", f.name, s.off)
			}
		}
		if off, err := file.Seek(0, ext2fs.SeekData); err != nil || off != f.spans[0].off/1024*1024 {
			t.Errorf("%s: Seek(0, SeekData) = %d, %v; want %d", f.name, off, err, f.spans[0].off/1024*1024)
		}
		file.Close()
	}
}

// compareEntry compares the attributes of the host entry p with those of
// the entry rel of fsys.
func compareEntry(t *testing.T, fsys *ext2fs.FS, p, rel string) {
	t.Helper()
	want, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	name := rel
	if name == "." {
		name = "/"
	}
	got, err := fsys.Lstat(name)
	if err != nil {
		t.Errorf("Lstat(%s): %v", name, err)
		return
	}
	ws := want.Sys().(*syscall.Stat_t)
	gi := got.Sys().(*ext2fs.InodeInfo)
	if got.Mode() != want.Mode() && rel != "." {
		t.Errorf("%s: mode %v, want %v", rel, got.Mode(), want.Mode())
	}
	if gi.UID != ws.Uid || gi.GID != ws.Gid {
		t.Errorf("%s: owner %d:%d, want %d:%d", rel, gi.UID, gi.GID, ws.Uid, ws.Gid)
	}
	if want.Mode().IsDir() {
		return // sizes and link counts of directories are the file system's own
	}
	if got.Size() != want.Size() {
		t.Errorf("%s: size %d, want %d", rel, got.Size(), want.Size())
	}
	if want.Mode()&fs.ModeSymlink == 0 && !got.ModTime().Equal(want.ModTime()) {
		t.Errorf("%s: mtime %v, want %v (nanoseconds included: the inodes are 256 bytes)", rel, got.ModTime(), want.ModTime())
	}
	if uint64(gi.Nlink) != uint64(ws.Nlink) {
		t.Errorf("%s: %d links, want %d", rel, gi.Nlink, ws.Nlink)
	}
	if gi.Rdev() != uint64(ws.Rdev) {
		t.Errorf("%s: rdev %#x, want %#x", rel, gi.Rdev(), ws.Rdev)
	}
	if want.Mode()&fs.ModeSymlink != 0 {
		wt, _ := os.Readlink(p)
		if gt, err := fsys.Readlink(name); err != nil || gt != wt {
			t.Errorf("%s: Readlink = %q, %v; want %q", rel, gt, err, wt)
		}
	}
}

// TestRealityMke2fsImages reads back, through CopyOut, images that mke2fs
// -d built from one source tree, at every block size and both inode
// sizes. The tree has oracle.DefaultTree, a sparse file with data beside
// each block-map threshold of 1, 2 and 4 KiB blocks, one with data past
// 4 GiB (in the triple-indirect range even of 4 KiB blocks), device nodes
// and 20 nested directories.
func TestRealityMke2fsImages(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	oracle.GenerateTree(t, src, oracle.DefaultTree)
	var multi []span
	for _, bs := range []int64{1024, 2048, 4096} {
		p := bs / 4
		for _, th := range []int64{12, 12 + p, 12 + p + p*p} {
			if off := th*bs - 100; off < 65<<20 {
				multi = append(multi, span{off, 200})
			}
		}
	}
	sparse := []sparseFile{
		{name: "map/multi", size: 65 << 20, spans: multi},
		{name: "map/huge", size: 4<<30 + 16<<20, spans: []span{{0, 100}, {4<<30 + 8<<20, 5000}}},
	}
	for _, f := range sparse {
		writeHostSparse(t, filepath.Join(src, f.name), f.name, f.spans, f.size, 0o644)
	}
	if err := os.MkdirAll(deepPath(filepath.Join(src, "deep"), 20), 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := unix.Mknod(filepath.Join(src, "deep", "tty"), unix.S_IFCHR|0o620, int(unix.Mkdev(4, 1))); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mknod(filepath.Join(src, "deep", "sda"), unix.S_IFBLK|0o660, int(unix.Mkdev(8, 0))); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"map", "deep"} {
		setTreeTimes(t, filepath.Join(src, d))
	}

	for _, bs := range []int{1024, 2048, 4096} {
		for _, isz := range []int{128, 256} {
			t.Run(fmt.Sprintf("b%d-i%d", bs, isz), func(t *testing.T) {
				image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 48 << 20, BlockSize: bs, InodeSize: isz, FromDir: src})
				fsys, err := ext2fs.Open(image, ext2fs.Options{ReadOnly: true})
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				defer fsys.Close()
				dst := filepath.Join(t.TempDir(), "out")
				if err := ext2fs.CopyOut(fsys, "/", dst, ext2fs.CopyOptions{}); err != nil {
					t.Fatalf("CopyOut: %v", err)
				}
				oracle.CompareTrees(t, src, dst, oracle.CompareOptions{
					Owners: os.Geteuid() == 0, Times: true, Ignore: []string{"lost+found", "map/huge"},
				})
				sparseEqual(t, filepath.Join(src, "map/huge"), filepath.Join(dst, "map/huge"))
				for _, f := range sparse {
					fi, err := fsys.Stat(f.name)
					if err != nil {
						t.Fatalf("Stat(%s): %v", f.name, err)
					}
					got := fi.Sys().(*ext2fs.InodeInfo).Blocks
					if want := oracle.DebugfsStat(t, image, "/"+f.name).Blockcount; got != want {
						t.Errorf("%s: InodeInfo.Blocks %d, debugfs says %d", f.name, got, want)
					}
					// mke2fs -d leaves blocks of zeros as holes: only the
					// blocks the spans touch are allocated.
					if want := wantIBlocks(f.spans, f.size, int64(bs)); got != want {
						t.Errorf("%s: InodeInfo.Blocks %d, want %d for the data written", f.name, got, want)
					}
				}
			})
		}
	}
}

// TestRealityKernelIndexedDirectory has the kernel make a directory large
// enough for an htree index (dir_index is in mke2fs's default features,
// and this kernel's driver builds indexes), then adds and removes entries
// through our API, and has e2fsck and the kernel check the result: every
// name must still be found by the kernel's lookup, which trusts an index
// unless the directory's index flag was cleared as Linux's ext2 does.
func TestRealityKernelIndexedDirectory(t *testing.T) {
	requireRoot(t)
	const n = 2000
	name := func(i int) string { return fmt.Sprintf("entry-%04d-%s", i, strings.Repeat("x", 40)) }
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 32 << 20, BlockSize: 1024})
	mnt := oracle.LoopMount(t, image, false)
	if err := os.Mkdir(filepath.Join(mnt, "big"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := os.WriteFile(filepath.Join(mnt, "big", name(i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	oracle.Umount(t, mnt)
	oracle.RequireClean(t, image)
	st := oracle.DebugfsStat(t, image, "/big")
	const indexFl = 0x1000 // EXT2_INDEX_FL
	t.Logf("the kernel's directory: %d bytes, flags %#x (indexed: %v)", st.Size, st.Flags, st.Flags&indexFl != 0)

	want := map[string]bool{}
	for i := range n {
		want[name(i)] = true
	}
	fsys, err := ext2fs.Open(image, ext2fs.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { fsys.Close() })
	ents, err := fsys.ReadDir("big")
	if err != nil {
		t.Fatalf("ReadDir: %v", err)
	}
	if len(ents) != n {
		t.Errorf("ReadDir: %d entries, want %d", len(ents), n)
	}
	for _, e := range ents {
		if !want[e.Name()] {
			t.Errorf("ReadDir: unexpected entry %q", e.Name())
		}
	}
	for i := 0; i < n; i += 7 {
		if err := fsys.Remove("big/" + name(i)); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		delete(want, name(i))
	}
	for i := range 300 {
		nm := fmt.Sprintf("added-%03d-%s", i, strings.Repeat("y", 30))
		f, err := fsys.Create("big/" + nm)
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		f.Close()
		want[nm] = true
	}
	if err := fsys.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	oracle.RequireClean(t, image)
	if f := oracle.DebugfsStat(t, image, "/big").Flags; f&indexFl != 0 {
		t.Errorf("after our changes the directory's flags are %#x: the stale index is still flagged (Linux's ext2_add_link clears EXT2_INDEX_FL)", f)
	}

	mnt = oracle.LoopMount(t, image, true)
	for nm := range want {
		if _, err := os.Lstat(filepath.Join(mnt, "big", nm)); err != nil {
			t.Errorf("the kernel cannot look up %s: %v", nm, err)
		}
	}
	for i := 0; i < n; i += 7 {
		if _, err := os.Lstat(filepath.Join(mnt, "big", name(i))); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the kernel looks up removed %s: %v, want not exist", name(i), err)
		}
	}
	got, err := os.ReadDir(filepath.Join(mnt, "big"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("the kernel lists %d entries, want %d", len(got), len(want))
	}
}
