package ext2

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/ext2/layout"
	"github.com/mpagefs/mpage/internal/oracle"
)

// nsMount mounts the image at path and closes it at cleanup unless the
// test closed it.
func nsMount(t *testing.T, path string, readOnly bool) *FS {
	t.Helper()
	dev, err := block.OpenFile(path, readOnly)
	if err != nil {
		t.Fatalf("OpenFile(%s): %v", path, err)
	}
	fs, err := Mount(dev, Options{ReadOnly: readOnly, Name: path, Logf: t.Logf})
	if err != nil {
		t.Fatalf("Mount(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := fs.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return fs
}

// nsClose unmounts fs, failing the test on error.
func nsClose(t *testing.T, fs *FS) {
	t.Helper()
	if err := fs.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// lsEntry is one line of debugfs "ls -p".
type lsEntry struct {
	Ino  uint32
	Mode uint16
	Name string
}

// debugfsLs lists directory path of image with debugfs "ls -p", sorted by
// name.
func debugfsLs(t *testing.T, image, path string) []lsEntry {
	t.Helper()
	out, errs := oracle.DebugfsOutput(t, image, "ls -p "+path)
	if errs != "" {
		t.Fatalf("debugfs ls -p %s: %s", path, errs)
	}
	var ents []lsEntry
	for _, l := range strings.Split(out, "\n") {
		f := strings.Split(l, "/")
		if len(f) < 7 {
			continue
		}
		ino, err1 := strconv.ParseUint(f[1], 10, 32)
		mode, err2 := strconv.ParseUint(f[2], 8, 16)
		if err1 != nil || err2 != nil {
			t.Fatalf("debugfs ls -p line %q", l)
		}
		if ino == 0 {
			continue // debugfs prints unused records of empty blocks
		}
		ents = append(ents, lsEntry{uint32(ino), uint16(mode), f[5]})
	}
	slices.SortFunc(ents, func(a, b lsEntry) int { return strings.Compare(a.Name, b.Name) })
	return ents
}

// readDirAll lists a directory through ReadDirFrom, max entries per call,
// sorted by name.
func readDirAll(t *testing.T, fs *FS, dir *Inode, max int) []DirEntryAt {
	t.Helper()
	var all []DirEntryAt
	pos := int64(0)
	for calls := 0; ; calls++ {
		ents, next, err := fs.ReadDirFrom(dir, pos, max)
		if err != nil {
			t.Fatalf("ReadDirFrom(inode %d, %d, %d): %v", dir.Ino(), pos, max, err)
		}
		all = append(all, ents...)
		if len(ents) == 0 {
			break
		}
		if next <= pos {
			t.Fatalf("ReadDirFrom(inode %d, %d): next position %d does not advance", dir.Ino(), pos, next)
		}
		pos = next
	}
	slices.SortFunc(all, func(a, b DirEntryAt) int { return strings.Compare(a.Name, b.Name) })
	return all
}

// lookupT resolves path without following a final symlink.
func lookupT(t *testing.T, fs *FS, path string) *Inode {
	t.Helper()
	ino, err := fs.LookupPath(path, false)
	if err != nil {
		t.Fatalf("LookupPath(%q): %v", path, err)
	}
	t.Cleanup(func() { fs.Iput(ino) })
	return ino
}

// compareWithDebugfs checks that every directory under path lists, through
// ReadDirFrom, what debugfs lists: names, inode numbers and file types.
// It returns how many directories it compared.
func compareWithDebugfs(t *testing.T, fs *FS, image, path string, max int) int {
	t.Helper()
	dir, err := fs.LookupPath(path, false)
	if err != nil {
		t.Fatalf("LookupPath(%q): %v", path, err)
	}
	got := readDirAll(t, fs, dir, max)
	fs.Iput(dir)
	want := debugfsLs(t, image, path)
	if len(got) != len(want) {
		t.Fatalf("%s: got %d entries %v, want %d %v", path, len(got), got, len(want), want)
	}
	n := 1
	for i := range got {
		g, w := got[i], want[i]
		if g.Name != w.Name || g.Ino != w.Ino {
			t.Errorf("%s: entry %d: got %q inode %d, want %q inode %d", path, i, g.Name, g.Ino, w.Name, w.Ino)
			continue
		}
		if fs.filetype && g.Type != layout.FileTypeFromMode(w.Mode) {
			t.Errorf("%s/%s: got file type %d, want %d (mode %#o)", path, g.Name, g.Type, layout.FileTypeFromMode(w.Mode), w.Mode)
		}
		if g.Type == layout.FtDir && g.Name != "." && g.Name != ".." {
			n += compareWithDebugfs(t, fs, image, strings.TrimSuffix(path, "/")+"/"+g.Name, max)
		}
	}
	return n
}

func TestReadDirMatchesDebugfs(t *testing.T) {
	src := t.TempDir()
	oracle.GenerateTree(t, src, oracle.TreeSpec{Seed: 3, Depth: 2, DirsPerDir: 3, FilesPerDir: 30,
		Sizes: []int64{0, 1, 5000}, Symlinks: true, HardLinks: true, Fifo: true})
	for _, bs := range []int{1024, 4096} {
		for _, max := range []int{0, 1, 7} {
			t.Run(fmt.Sprintf("bs%d/max%d", bs, max), func(t *testing.T) {
				img := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 16 << 20, BlockSize: bs, FromDir: src})
				fs := nsMount(t, img, true)
				if n := compareWithDebugfs(t, fs, img, "/", max); n < 10 {
					t.Errorf("compared %d directories, want the 13 of the tree and lost+found", n)
				}
				// The root lists what the source directory holds.
				root := lookupT(t, fs, "/")
				var got []string
				for _, e := range readDirAll(t, fs, root, max) {
					if e.Name != "." && e.Name != ".." && e.Name != "lost+found" {
						got = append(got, e.Name)
					}
				}
				osEnts, err := os.ReadDir(src)
				if err != nil {
					t.Fatal(err)
				}
				var want []string
				for _, e := range osEnts {
					want = append(want, e.Name())
				}
				if !slices.Equal(got, want) {
					t.Errorf("root: got %v, want %v", got, want)
				}
			})
		}
	}
}

// blockOf returns the first device block of path in image (debugfs bmap).
func blockOf(t *testing.T, image, path string) int64 {
	t.Helper()
	out := strings.TrimSpace(oracle.Debugfs(t, image, "bmap "+path+" 0"))
	n, err := strconv.ParseInt(out, 10, 64)
	if err != nil || n == 0 {
		t.Fatalf("debugfs bmap %s 0: %q", path, out)
	}
	return n
}

func TestCorruptDirBlock(t *testing.T) {
	for _, bs := range []int{1024, 4096} {
		t.Run(fmt.Sprintf("bs%d", bs), func(t *testing.T) {
			src := t.TempDir()
			for i := 0; i < 5; i++ {
				writeFile(t, filepath.Join(src, "d", fmt.Sprintf("file%d", i)), []byte("x"))
			}
			img := oracle.MkfsImage(t, oracle.MkfsOptions{BlockSize: bs, FromDir: src})
			blk := blockOf(t, img, "/d")
			dirIno := debugfsLs(t, img, "/d")[0] // "." sorts first
			// The third record is "file0" or another name; give the
			// second record ("..", at byte 12) a rec_len of 6.
			f, err := os.OpenFile(img, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			bad := blk*int64(bs) + 12 + 4
			if _, err := f.WriteAt([]byte{6, 0}, bad); err != nil {
				t.Fatal(err)
			}
			f.Close()

			fs := nsMount(t, img, false)
			d := lookupT(t, fs, "/d")
			_, _, err = fs.ReadDirFrom(d, 0, 0)
			var ce *CorruptError
			if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("ReadDirFrom: got %v, want a *CorruptError", err)
			}
			if ce.Inode != dirIno.Ino || ce.Block != blk || ce.Offset != bad {
				t.Errorf("got inode %d block %d offset %d, want inode %d block %d offset %d (%v)",
					ce.Inode, ce.Block, ce.Offset, dirIno.Ino, blk, bad, err)
			}
			if !strings.Contains(err.Error(), "rec_len") {
				t.Errorf("error %q does not name rec_len", err)
			}
			// Changes to the directory fail the same way, leaving the
			// block alone.
			if _, err := fs.Create(d, "new", 0o644, 0, 0); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Create in the corrupt directory: got %v, want ErrCorrupt", err)
			}
			if err := fs.Unlink(d, "file1"); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Unlink in the corrupt directory: got %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestReadDirPositionsStable(t *testing.T) {
	img := oracle.MkfsImage(t, oracle.MkfsOptions{BlockSize: 1024})
	fs := nsMount(t, img, false)
	root := lookupT(t, fs, "/")
	d, err := fs.Mkdir(root, "d", 0o755, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Iput(d)
	const n = 200
	for i := 0; i < n; i++ {
		ino, err := fs.Create(d, fmt.Sprintf("name-%03d-%s", i, strings.Repeat("x", i%40)), 0o644, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		fs.Iput(ino)
	}
	// Read one entry at a time, removing the entry just read and the
	// one after the next: the rest must each be seen exactly once.
	seen := map[string]int{}
	removed := map[string]bool{}
	pos := int64(0)
	for {
		ents, next, err := fs.ReadDirFrom(d, pos, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) == 0 {
			break
		}
		name := ents[0].Name
		seen[name]++
		pos = next
		if !strings.HasPrefix(name, "name-") {
			continue
		}
		var i int
		fmt.Sscanf(name, "name-%d", &i)
		for _, j := range []int{i, i + 2} {
			victim := fmt.Sprintf("name-%03d-%s", j, strings.Repeat("x", j%40))
			if j < n && !removed[victim] {
				if err := fs.Unlink(d, victim); err != nil {
					t.Fatalf("Unlink(%s): %v", victim, err)
				}
				removed[victim] = true
			}
		}
	}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("name-%03d-%s", i, strings.Repeat("x", i%40))
		if got := seen[name]; got > 1 || (got == 0 && !removed[name]) {
			t.Errorf("%s: seen %d times (removed %v), want once unless removed before it was reached", name, got, removed[name])
		}
	}
	nsClose(t, fs)
	oracle.RequireClean(t, img)
}
