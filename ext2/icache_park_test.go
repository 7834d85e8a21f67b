package ext2

import (
	"fmt"
	"testing"

	"github.com/mpagefs/mpage/internal/oracle"
)

// TestInodeCacheParksDirtyInodes creates many more files than the inode
// cache holds, each with data that waits in the page cache for
// writeback, so that no unused inode can be evicted. The shrink that
// runs at every Iput past the limit must park those inodes rather than
// look at all of them again each time: the number of inodes the shrinks
// looked at stays linear in the number of files (it was quadratic, about
// files²/2). After a sync has written the data, the parked inodes are
// evictable again and the next shrink brings the cache back to its limit.
func TestInodeCacheParksDirtyInodes(t *testing.T) {
	const limit, files = 64, 1500
	img := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 32 << 20, BlockSize: 1024, Inodes: 2048})
	fs := mountImage(t, img, Options{InodeCacheLimit: limit})
	root, err := fs.Root()
	if err != nil {
		t.Fatal(err)
	}
	for i := range files {
		ino, err := fs.Create(root, fmt.Sprintf("f%04d", i), 0o644, 0, 0)
		if err != nil {
			t.Fatalf("Create f%04d: %v", i, err)
		}
		f, err := fs.Open(ino, true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(pattern(uint64(i), 700), 0); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		fs.Iput(ino)
	}
	fs.Iput(root)
	fs.icache.Lock()
	scanned := fs.icache.scanned
	fs.icache.Unlock()
	if max := int64(3 * files); scanned > max {
		t.Errorf("shrinks looked at %d inodes for %d files (cache limit %d), want at most %d", scanned, files, limit, max)
	}

	if err := fs.Sync(); err != nil {
		t.Fatal(err)
	}
	// One more unused inode: its Iput shrinks the cache.
	ino, err := fs.Lookup("/f0000")
	if err != nil {
		t.Fatal(err)
	}
	fs.Iput(ino)
	if got := fs.CachedInodes(); got > limit {
		t.Errorf("after sync and an Iput, %d inodes cached, want at most the limit %d", got, limit)
	}
	for _, i := range []int{0, 1, files / 2, files - 1} {
		path := fmt.Sprintf("/f%04d", i)
		if got, want := readPath(t, fs, path, 4096), pattern(uint64(i), 700); string(got) != string(want) {
			t.Errorf("%s reads back %d bytes differing from the %d written", path, len(got), len(want))
		}
	}
	if err := fs.Close(); err != nil {
		t.Fatal(err)
	}
	oracle.RequireClean(t, img)
	if got, want := oracle.DebugfsDump(t, img, "/f0999"), pattern(999, 700); string(got) != string(want) {
		t.Errorf("debugfs dump /f0999: %d bytes differing from the %d written", len(got), len(want))
	}
}
