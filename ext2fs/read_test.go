package ext2fs

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"testing/fstest"

	"github.com/mpagefs/mpage/internal/oracle"
)

// conformanceTree is oracle.DefaultTree with smaller files:
// fstest.TestFS reads every file byte by byte (iotest.TestReader), which
// under -race takes seconds per megabyte. The sparse files are checked
// by content below, with DefaultTree.
var conformanceTree = oracle.TreeSpec{Seed: 1, Depth: 2, DirsPerDir: 2, FilesPerDir: 3,
	Sizes: []int64{0, 1, 1023, 1025, 4097, 12*1024 + 1, 20000}, Symlinks: true, HardLinks: true, Fifo: true}

func TestFSConformanceMke2fsImage(t *testing.T) {
	image, _, paths := treeImage(t, conformanceTree, 1024)
	fsys := mustOpen(t, image, Options{ReadOnly: true})
	if err := fstest.TestFS(fsys, paths...); err != nil {
		t.Fatal(err)
	}
}

func TestReadMke2fsImage(t *testing.T) {
	for _, bs := range []int{1024, 4096} {
		t.Run(map[int]string{1024: "1k", 4096: "4k"}[bs], func(t *testing.T) {
			image, src, paths := treeImage(t, oracle.DefaultTree, bs)
			fsys := mustOpen(t, image, Options{ReadOnly: true})
			// Every regular file reads back as the source has it.
			for _, p := range paths {
				want, err := os.Lstat(filepath.Join(src, p))
				if err != nil {
					t.Fatal(err)
				}
				got, err := fsys.Lstat(p)
				if err != nil {
					t.Fatalf("Lstat(%q): %v", p, err)
				}
				if got.Mode() != want.Mode() {
					t.Errorf("Lstat(%q).Mode() = %v, want %v", p, got.Mode(), want.Mode())
				}
				if !want.Mode().IsRegular() {
					continue
				}
				data, err := fsys.ReadFile(p)
				if err != nil {
					t.Fatalf("ReadFile(%q): %v", p, err)
				}
				wantData, _ := os.ReadFile(filepath.Join(src, p))
				if !bytes.Equal(data, wantData) {
					t.Errorf("ReadFile(%q): %d bytes differ from the source's %d", p, len(data), len(wantData))
				}
				if got.ModTime().Unix() != want.ModTime().Unix() {
					t.Errorf("Lstat(%q).ModTime() = %v, want %v", p, got.ModTime(), want.ModTime())
				}
			}
			closeAndCheck(t, fsys, image)
		})
	}
}

func TestSysInodeInfo(t *testing.T) {
	image, src, _ := treeImage(t, oracle.DefaultTree, 1024)
	fsys := mustOpen(t, image, Options{ReadOnly: true})
	for _, name := range []string{"hard-a", "fifo", "link-short", "d00"} {
		fi, err := fsys.Lstat(name)
		if err != nil {
			t.Fatal(err)
		}
		info, ok := fi.Sys().(*InodeInfo)
		if !ok {
			t.Fatalf("Lstat(%q).Sys() is %T, want *InodeInfo", name, fi.Sys())
		}
		var host syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(src, name), &host); err != nil {
			t.Fatal(err)
		}
		if info.Nlink != uint32(host.Nlink) || info.UID != host.Uid || info.GID != host.Gid {
			t.Errorf("%s: nlink/uid/gid = %d/%d/%d, want %d/%d/%d", name, info.Nlink, info.UID, info.GID, host.Nlink, host.Uid, host.Gid)
		}
		if info.Mtime.Unix() != host.Mtim.Sec {
			t.Errorf("%s: mtime %v, want %d", name, info.Mtime, host.Mtim.Sec)
		}
		if info.Ino == 0 || (fi.Mode().IsRegular() && info.Blocks == 0) {
			t.Errorf("%s: ino %d, blocks %d", name, info.Ino, info.Blocks)
		}
		st := oracle.DebugfsStat(t, image, "/"+name)
		if info.Ino != st.Ino || info.Generation != st.Generation || info.Blocks != st.Blockcount {
			t.Errorf("%s: ino/generation/blocks = %d/%d/%d, debugfs says %d/%d/%d", name,
				info.Ino, info.Generation, info.Blocks, st.Ino, st.Generation, st.Blockcount)
		}
	}
}

func TestLookupErrors(t *testing.T) {
	image, _, _ := treeImage(t, oracle.DefaultTree, 1024)
	fsys := mustOpen(t, image, Options{ReadOnly: true})
	long := string(bytes.Repeat([]byte("n"), 256))
	tests := []struct {
		name string
		op   func() error
		want []error
	}{
		{"missing", func() error { _, err := fsys.Open("nope"); return err }, []error{fs.ErrNotExist, syscall.ENOENT}},
		{"invalid io/fs name", func() error { _, err := fsys.Open("/hard-a"); return err }, []error{fs.ErrInvalid}},
		{"dot-dot io/fs name", func() error { _, err := fsys.ReadFile("d00/../hard-a"); return err }, []error{fs.ErrInvalid}},
		{"file as directory", func() error { _, err := fsys.Stat("hard-a/x"); return err }, []error{syscall.ENOTDIR}},
		{"read a directory", func() error { _, err := fsys.ReadFile("d00"); return err }, []error{syscall.EISDIR}},
		{"readdir a file", func() error { _, err := fsys.ReadDir("hard-a"); return err }, []error{syscall.ENOTDIR}},
		{"name too long", func() error { _, err := fsys.Stat(long); return err }, []error{syscall.ENAMETOOLONG}},
		{"readlink of a file", func() error { _, err := fsys.ReadLink("hard-a"); return err }, []error{fs.ErrInvalid}},
		{"link to a directory is followed", func() error { _, err := fsys.ReadDir("link-dir"); return err }, nil},
		{"os-style Stat", func() error { _, err := fsys.Stat("/d00/../hard-a"); return err }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.op()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
				return
			}
			var pe *fs.PathError
			if !errors.As(err, &pe) {
				t.Fatalf("got %T %v, want *fs.PathError", err, err)
			}
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("got %v, want errors.Is(err, %v)", err, w)
				}
			}
		})
	}
}

func TestFileSeekAndReadDir(t *testing.T) {
	image, _, _ := treeImage(t, oracle.DefaultTree, 1024)
	fsys := mustOpen(t, image, Options{ReadOnly: true})
	f, err := fsys.Open("sparse-hole-middle")
	if err != nil {
		t.Skipf("the tree has no sparse-hole-middle: %v", err)
	}
	defer f.Close()
	sk := f.(io.Seeker)
	data, err := sk.Seek(0, SeekData)
	if err != nil {
		t.Fatal(err)
	}
	hole, err := sk.Seek(data, SeekHole)
	if err != nil {
		t.Fatal(err)
	}
	if hole <= data {
		t.Errorf("SeekHole from %d = %d, want beyond the data", data, hole)
	}
	d, err := fsys.Open(".")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rd := d.(fs.ReadDirFile)
	var n int
	for {
		ents, err := rd.ReadDir(2)
		n += len(ents)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	all, err := fsys.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	if n != len(all) {
		t.Errorf("ReadDir(2) in a loop gave %d entries, ReadDir(\".\") %d", n, len(all))
	}
}
