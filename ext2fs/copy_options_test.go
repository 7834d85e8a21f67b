package ext2fs

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/mpagefs/mpage/internal/oracle"
)

// hostFile writes data to name under dir with mode and times.
func hostFile(t *testing.T, dir, name string, data []byte, mode fs.FileMode, mtime time.Time) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeImageFile makes file name in the image holding data.
func writeImageFile(t *testing.T, fsys *FS, name, data string) {
	t.Helper()
	f, err := fsys.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// inodeOf returns the InodeInfo of name in the image, not following a
// final link.
func inodeOf(t *testing.T, fsys *FS, name string) *InodeInfo {
	t.Helper()
	fi, err := fsys.Lstat(name)
	if err != nil {
		t.Fatalf("Lstat(%s): %v", name, err)
	}
	return fi.Sys().(*InodeInfo)
}

// TestCopyInOptions checks what each CopyOptions choice keeps: the zero
// value keeps everything, each No* field leaves its part out.
func TestCopyInOptions(t *testing.T) {
	src := t.TempDir()
	mtime := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	hostFile(t, src, "suid", []byte("x"), 0o755|fs.ModeSetuid, mtime)
	a := hostFile(t, src, "a", []byte("linked"), 0o640, mtime)
	if err := os.Link(a, filepath.Join(src, "b")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name                           string
		opts                           CopyOptions
		wantSuid, wantTimes, wantLinks bool
	}{
		{name: "zero value keeps all", opts: CopyOptions{}, wantSuid: true, wantTimes: true, wantLinks: true},
		{name: "NoSpecialBits", opts: CopyOptions{NoSpecialBits: true}, wantTimes: true, wantLinks: true},
		{name: "NoTimes", opts: CopyOptions{NoTimes: true}, wantSuid: true, wantLinks: true},
		{name: "NoHardLinks", opts: CopyOptions{NoHardLinks: true}, wantSuid: true, wantTimes: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			image := emptyImage(t, 4<<20, 1024)
			fsys := mustOpen(t, image, Options{})
			if err := CopyIn(fsys, src, "/t", tt.opts); err != nil {
				t.Fatalf("CopyIn: %v", err)
			}
			s := inodeOf(t, fsys, "/t/suid")
			if got := s.Mode&0o7777 == 0o4755; got != tt.wantSuid {
				t.Errorf("suid mode %o, want setuid kept %v", s.Mode&0o7777, tt.wantSuid)
			}
			if s.Mode&0o777 != 0o755 {
				t.Errorf("suid permission bits %o, want 755", s.Mode&0o777)
			}
			if got := s.Mtime.Equal(mtime); got != tt.wantTimes {
				t.Errorf("mtime %v, want %v kept: %v", s.Mtime, mtime, tt.wantTimes)
			}
			ia, ib := inodeOf(t, fsys, "/t/a"), inodeOf(t, fsys, "/t/b")
			if got := ia.Ino == ib.Ino; got != tt.wantLinks {
				t.Errorf("a is inode %d, b %d: want one inode %v", ia.Ino, ib.Ino, tt.wantLinks)
			}
			if got, err := fsys.ReadFile("t/b"); err != nil || string(got) != "linked" {
				t.Errorf("t/b = %q, %v; want %q", got, err, "linked")
			}
			closeAndCheck(t, fsys, image)
		})
	}
}

// TestCopyReplace copies a tree over an earlier, different copy: without
// Replace the first taken name is an error wrapping fs.ErrExist, with it
// files are overwritten, links replaced and directories filled.
func TestCopyReplace(t *testing.T) {
	src := t.TempDir()
	hostFile(t, src, "dir/file", []byte("new contents"), 0o644, time.Now())
	if err := os.Symlink("new-target", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	image := emptyImage(t, 4<<20, 1024)
	fsys := mustOpen(t, image, Options{})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(fsys.MkdirAll("/t/dir", 0o755))
	f, err := fsys.Create("/t/dir/file")
	must(err)
	_, err = f.WriteString("old contents that are longer")
	must(err)
	must(f.Close())
	writeImageFile(t, fsys, "/t/dir/keep", "keep")
	must(fsys.Symlink("old-target", "/t/link"))

	if err := CopyIn(fsys, src, "/t", CopyOptions{}); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("CopyIn over a copy without Replace = %v, want an error wrapping fs.ErrExist", err)
	}
	if err := CopyIn(fsys, src, "/t", CopyOptions{Replace: true}); err != nil {
		t.Fatalf("CopyIn with Replace: %v", err)
	}
	if got, _ := fsys.ReadFile("t/dir/file"); string(got) != "new contents" {
		t.Errorf("t/dir/file = %q, want %q", got, "new contents")
	}
	if got, _ := fsys.ReadFile("t/dir/keep"); string(got) != "keep" {
		t.Errorf("t/dir/keep = %q, want it left as it was", got)
	}
	if got, err := fsys.ReadLink("t/link"); err != nil || got != "new-target" {
		t.Errorf("t/link -> %q, %v; want new-target", got, err)
	}
	closeAndCheck(t, fsys, image)
}

// TestCopyBetween copies a tree within one image and into another, and
// checks both with e2fsck and by copying them out again.
func TestCopyBetween(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	oracle.GenerateTree(t, src, oracle.DefaultTree)
	image := emptyImage(t, 24<<20, 1024)
	fsys := mustOpen(t, image, Options{})
	if err := CopyIn(fsys, src, "/a", CopyOptions{}); err != nil {
		t.Fatalf("CopyIn: %v", err)
	}
	if err := CopyBetween(fsys, "/a", fsys, "/b", CopyOptions{}); err != nil {
		t.Fatalf("CopyBetween within one image: %v", err)
	}
	image2 := emptyImage(t, 24<<20, 4096)
	fsys2 := mustOpen(t, image2, Options{})
	if err := CopyBetween(fsys, "/b", fsys2, "/", CopyOptions{}); err != nil {
		t.Fatalf("CopyBetween two images: %v", err)
	}
	// Refused within one image: a directory into itself, a file onto
	// itself (or another of its names).
	for _, c := range []struct{ from, to string }{
		{"/a", "/a/d00/inside"},
		{"/a", "/a"},
		{"/", "/x"},
		{"/a/hard-a", "/a/d00/hard-c"},
	} {
		if err := CopyBetween(fsys, c.from, fsys, c.to, CopyOptions{Replace: true}); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("CopyBetween(%s, %s) = %v, want an error wrapping EINVAL", c.from, c.to, err)
		}
	}
	if _, err := fsys.Lstat("/a/d00/inside"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Lstat(/a/d00/inside) = %v, want it not made", err)
	}
	closeAndCheck(t, fsys, image)
	closeAndCheck(t, fsys2, image2)

	for _, c := range []struct{ image, from string }{{image, "/b"}, {image2, "/"}} {
		fsys := mustOpen(t, c.image, Options{ReadOnly: true})
		dst := filepath.Join(t.TempDir(), "out")
		if err := CopyOut(fsys, c.from, dst, CopyOptions{}); err != nil {
			t.Fatalf("CopyOut(%s): %v", c.from, err)
		}
		oracle.CompareTrees(t, src, dst, oracle.CompareOptions{Owners: asRoot(), Times: true, Ignore: []string{"lost+found"}})
	}
}

// TestCopyProgressAndMeasure checks that Progress hears of every data
// byte (and of no hole) and that MeasureTree and MeasureImage count the
// same tree alike.
func TestCopyProgressAndMeasure(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	oracle.GenerateTree(t, src, oracle.DefaultTree)
	hostSize, err := MeasureTree(src)
	if err != nil {
		t.Fatalf("MeasureTree: %v", err)
	}
	image := emptyImage(t, 24<<20, 1024)
	fsys := mustOpen(t, image, Options{})
	var copied int64
	if err := CopyIn(fsys, src, "/t", CopyOptions{Progress: func(n int64) { copied += n }}); err != nil {
		t.Fatalf("CopyIn: %v", err)
	}
	// The data of every file (once for all its names), less the holes
	// of the sparse ones.
	var sizes, holes, linked int64
	seen := map[uint64]bool{}
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		ino := fi.Sys().(*syscall.Stat_t).Ino
		if seen[ino] {
			linked += fi.Size()
			return nil
		}
		seen[ino] = true
		sizes += fi.Size()
		for _, h := range hostHoles(t, p, fi.Size()) {
			holes += h
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := sizes - holes; copied != want {
		t.Errorf("Progress heard of %d bytes, want %d (%d of files less %d of holes)", copied, want, sizes, holes)
	}
	imgSize, err := MeasureImage(fsys, "/t")
	if err != nil {
		t.Fatalf("MeasureImage: %v", err)
	}
	if hostSize.Files < 10 || hostSize.Dirs < 3 || hostSize.Symlinks == 0 || hostSize.Others == 0 || hostSize.LongSymlinks == 0 {
		t.Errorf("MeasureTree = %+v, want the generated files, dirs, symlinks (a long one) and a fifo", hostSize)
	}
	type counts struct{ files, dirs, symlinks, others, long, entries, n int64 }
	of := func(s TreeSize) counts {
		return counts{s.Files, s.Dirs, s.Symlinks, s.Others, s.LongSymlinks, s.DirEntryBytes, int64(len(s.FileData))}
	}
	if got, want := of(imgSize), of(hostSize); got != want {
		t.Errorf("MeasureImage counts %+v, want MeasureTree's %+v", got, want)
	}
	// MeasureTree counts each name of a linked file, and whole blocks.
	if lo, hi := sizes-holes+linked, sizes+linked; hostSize.DataBytes < lo || hostSize.DataBytes > hi {
		t.Errorf("MeasureTree DataBytes %d, want between %d and %d", hostSize.DataBytes, lo, hi)
	}
	closeAndCheck(t, fsys, image)
}

// hostHoles returns the lengths of the holes of a host file.
func hostHoles(t *testing.T, p string, size int64) []int64 {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var holes []int64
	for off := int64(0); off < size; {
		h, err := f.Seek(off, SeekHole)
		if err != nil || h >= size {
			break
		}
		d, err := f.Seek(h, SeekData)
		if err != nil {
			d = size
		}
		holes = append(holes, d-h)
		off = d
	}
	return holes
}

// TestCopyInENOSPCRemovesFile checks that a file that did not fit is not
// left behind, and that the image stays clean.
func TestCopyInENOSPCRemovesFile(t *testing.T) {
	big := hostFile(t, t.TempDir(), "big", bytes.Repeat([]byte("0123456789abcdef"), 2<<20/16), 0o644, time.Now())
	image := emptyImage(t, 1<<20, 1024)
	fsys := mustOpen(t, image, Options{})
	if err := CopyIn(fsys, big, "/big", CopyOptions{}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("CopyIn of 2 MiB into 1 MiB = %v, want ENOSPC", err)
	}
	if _, err := fsys.Lstat("/big"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Lstat(/big) = %v, want the partial copy removed", err)
	}
	closeAndCheck(t, fsys, image)
}

// TestCopyOutRootStaysInside copies over a destination whose names are
// symbolic links leading outside: nothing is written through them.
func TestCopyOutRootStaysInside(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	dst := filepath.Join(base, "dst")
	for _, d := range []string{outside, dst} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(dst, "d")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "f"), filepath.Join(dst, "f")); err != nil {
		t.Fatal(err)
	}
	image := emptyImage(t, 4<<20, 1024)
	fsys := mustOpen(t, image, Options{})
	if err := fsys.MkdirAll("/d", 0o755); err != nil {
		t.Fatal(err)
	}
	writeImageFile(t, fsys, "/d/pwned", "pwned")
	writeImageFile(t, fsys, "/f", "pwned")
	root, err := os.OpenRoot(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	for _, from := range []string{"/d", "/f"} {
		to := filepath.Base(from)
		err := CopyOutRoot(fsys, from, root, to, CopyOptions{Replace: true})
		if from == "/d" && !errors.Is(err, fs.ErrExist) {
			t.Errorf("CopyOutRoot of a directory over a symlink = %v, want an error wrapping fs.ErrExist", err)
		}
		if from == "/f" && err != nil {
			t.Errorf("CopyOutRoot of a file over a symlink = %v, want the link replaced", err)
		}
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("%s holds %d entries, want none", outside, len(ents))
	}
	if fi, err := os.Lstat(filepath.Join(dst, "f")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("dst/f: %v, %v; want a regular file in place of the link", fi, err)
	}
}
