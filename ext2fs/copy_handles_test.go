package ext2fs

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCopyInByHandles copies a host tree to a destination reached
// through a symbolic link in the image: the entries land in the link's
// target, directories made read-only get their modes and times once
// their entries are in, setuid survives the owner change, a sparse file
// keeps its hole and a dense one its bytes, and the image is clean.
func TestCopyInByHandles(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	mtime := time.Date(2020, 5, 6, 7, 8, 9, 123456789, time.UTC)
	dense := bytes.Repeat([]byte("dense file "), 30000)
	hostFile(t, src, "ro/f", dense, 0o755|fs.ModeSetuid, mtime)
	hostFile(t, src, "ro/sub/g", []byte("g"), 0o644, mtime)
	sparse := filepath.Join(src, "ro", "sparse")
	f, err := os.Create(sparse)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("head"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("tail"), 4<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, d := range []struct {
		name string
		mode fs.FileMode
	}{{"ro/sub", 0o500}, {"ro", 0o555}} {
		p := filepath.Join(src, d.name)
		if err := os.Chmod(p, d.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { // let TempDir remove it as any user
		os.Chmod(filepath.Join(src, "ro"), 0o755)
		os.Chmod(filepath.Join(src, "ro", "sub"), 0o755)
	})

	image := emptyImage(t, 32<<20, 1024)
	fsys := mustOpen(t, image, Options{})
	if err := fsys.Mkdir("/real", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Symlink("real", "/link"); err != nil {
		t.Fatal(err)
	}
	if err := CopyIn(fsys, src, "/link/dst", CopyOptions{}); err != nil {
		t.Fatalf("CopyIn to /link/dst: %v", err)
	}
	for _, c := range []struct {
		name string
		mode fs.FileMode
	}{
		{"/real/dst/ro", fs.ModeDir | 0o555},
		{"/real/dst/ro/sub", fs.ModeDir | 0o500},
		{"/real/dst/ro/f", 0o755 | fs.ModeSetuid},
		{"/real/dst/ro/sub/g", 0o644},
	} {
		fi, err := fsys.Lstat(c.name)
		if err != nil {
			t.Errorf("Lstat(%s): %v", c.name, err)
			continue
		}
		if fi.Mode() != c.mode {
			t.Errorf("%s: got mode %v, want %v", c.name, fi.Mode(), c.mode)
		}
		if !fi.ModTime().Equal(mtime) {
			t.Errorf("%s: got mtime %v, want %v", c.name, fi.ModTime(), mtime)
		}
	}
	if got, err := fs.ReadFile(fsys, "real/dst/ro/f"); err != nil || !bytes.Equal(got, dense) {
		t.Errorf("real/dst/ro/f: %d bytes, error %v; want the %d bytes of the source", len(got), err, len(dense))
	}
	want, err := os.ReadFile(sparse)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := fs.ReadFile(fsys, "real/dst/ro/sparse"); err != nil || !bytes.Equal(got, want) {
		t.Errorf("real/dst/ro/sparse: %d bytes, error %v; want the source's %d", len(got), err, len(want))
	}
	if info := inodeOf(t, fsys, "/real/dst/ro/sparse"); info.Blocks > 64 {
		t.Errorf("real/dst/ro/sparse: %d blocks of 512 bytes for 4 MiB with a hole; want the hole kept", info.Blocks)
	}
	closeAndCheck(t, fsys, image)
}
