package ext2

import (
	"fmt"
	"testing"

	"github.com/mpagefs/mpage/internal/oracle"
)

// TestSmallFilesPackAndSyncInFewRequests fills a tree as cp -a does: a
// directory, its small files, a subdirectory, its files, and so on. The
// data of the files, written one after the other, must lie in one run on
// disk, not cut by the directories' blocks nor spread by the inode number,
// and the sync that writes it must need few device requests: the flusher
// holds the queue plugged across the files and writes them in the order
// they were dirtied.
func TestSmallFilesPackAndSyncInFewRequests(t *testing.T) {
	img := makeImage(t, 4096, 256, 64<<20, "")
	// The flusher must not run during the test: the sync writes it all.
	fs := mountImage(t, img, Options{CacheLimit: 64 << 20})
	root, err := fs.Root()
	if err != nil {
		t.Fatal(err)
	}
	const dirs, files = 8, 12
	type placed struct {
		name string
		ino  *Inode
	}
	var all []placed
	parent := root
	for d := range dirs {
		dir, err := fs.Mkdir(parent, fmt.Sprintf("d%d", d), 0o755, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := range files {
			name := fmt.Sprintf("d%d/f%d", d, i)
			ino, err := fs.Create(dir, fmt.Sprintf("f%d", i), 0o644, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			f, err := fs.Open(ino, true)
			if err != nil {
				t.Fatal(err)
			}
			// 1 to 3 blocks, the last one partly.
			if _, err := f.WriteAt(pattern(uint64(d*files+i), 1000+(i%3)*4096), 0); err != nil {
				t.Fatalf("writing %s: %v", name, err)
			}
			f.Close()
			all = append(all, placed{name, ino})
		}
		if parent != root {
			fs.Iput(parent)
		}
		parent = dir
	}
	fs.Iput(parent)
	fs.Iput(root)

	// The files' blocks follow each other in the order they were written.
	next := int64(-1)
	for _, p := range all {
		blk, n, err := p.ino.MapBlocks(0, 8)
		if err != nil || n == 0 {
			t.Fatalf("MapBlocks(%s) = %d, %d, %v", p.name, blk, n, err)
		}
		if next >= 0 && blk != next {
			t.Errorf("%s starts at block %d, want %d (right after the file written before it)", p.name, blk, next)
		}
		next = blk + int64(n)
		fs.Iput(p.ino)
	}

	before := fs.Queue().Stats()
	if err := fs.Sync(); err != nil {
		t.Fatal(err)
	}
	st := fs.Queue().Stats()
	calls := st.WriteCalls - before.WriteCalls
	// One request for the data, a few for the directory blocks, inode
	// tables, bitmaps, descriptors and superblock; one per file
	// (96) is what an unplugged sync did.
	if calls > 12 {
		t.Errorf("device write requests of the sync: got %d, want at most 12 for %d small files in %d directories", calls, dirs*files, dirs)
	}
	if err := fs.Close(); err != nil {
		t.Fatal(err)
	}
	if res := oracle.FsckRun(t, img); res.Code != 0 {
		t.Errorf("e2fsck -fn: exit %d\n%s", res.Code, res.Output)
	}
}
