package ext2

import (
	"testing"

	"github.com/mpagefs/mpage/internal/oracle"
)

// TestCloseDeletesOpenOrphans closes the filesystem while it still holds
// a file unlinked while open (with data past the direct blocks), a
// tmpfile never linked and a directory removed while open: Close deletes
// them as their last close would have, so e2fsck finds the image clean
// and the free block and inode counts are what they were before they were
// made. Before, they stayed allocated with no name and link count 0
// ("Deleted inode has zero dtime").
func TestCloseDeletesOpenOrphans(t *testing.T) {
	f := newFixture(t, oracle.MkfsOptions{BlockSize: 1024, SizeBytes: 16 << 20})
	fs := f.fs
	if err := fs.Sync(); err != nil {
		t.Fatal(err)
	}
	freeB, freeI := freeCounts(fs)

	f.create("/gone")
	f.writeTo("/gone", pattern(3, 300<<10))
	gone, err := fs.LookupPath("/gone", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Open(gone, true); err != nil {
		t.Fatal(err)
	}
	if err := fs.Unlink(f.root, "gone"); err != nil {
		t.Fatalf("Unlink: %v", err)
	}
	_, tf := tmpfileT(t, fs, f.root, 0o600, 0, 0)
	if _, err := tf.WriteAt(pattern(4, 20<<10), 0); err != nil {
		t.Fatal(err)
	}
	f.mkdir("/dir")
	dir, err := fs.LookupPath("/dir", true)
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.Rmdir(f.root, "dir"); err != nil {
		t.Fatalf("Rmdir: %v", err)
	}
	_ = dir // still referenced at Close, as the files are still open

	fs.Iput(f.root)
	nsClose(t, fs)
	oracle.RequireClean(t, f.img)

	again := nsMount(t, f.img, true)
	b, i := freeCounts(again)
	if b != freeB || i != freeI {
		t.Errorf("free blocks and inodes after Close: got %d and %d, want %d and %d as before", b, i, freeB, freeI)
	}
}
