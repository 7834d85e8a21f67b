package ext2

import (
	"fmt"
	"testing"

	"github.com/mpagefs/mpage/internal/oracle"
)

// tableReads counts the reads of reads that touch an inode table block.
func tableReads(fs *FS, reads []traceIO) int {
	n := 0
	bs := int64(fs.blockSize)
	for _, r := range reads {
		for _, g := range fs.groups {
			start, end := g.inodeTable*bs, (g.inodeTable+int64(fs.itbPerGroup))*bs
			if r.off < end && r.off+r.n > start {
				n++
				break
			}
		}
	}
	return n
}

// createFiles makes regular files name0, name1, ... in the root, each
// with size bytes of data.
func createFiles(t *testing.T, fs *FS, prefix string, n int, size int) {
	t.Helper()
	root, err := fs.Root()
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Iput(root)
	for i := range n {
		ino, err := fs.Create(root, fmt.Sprintf("%s%d", prefix, i), 0o644, 0, 0)
		if err != nil {
			t.Fatalf("Create %s%d: %v", prefix, i, err)
		}
		if size > 0 {
			f, err := fs.Open(ino, true)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(pattern(uint64(i), size), 0); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		}
		fs.Iput(ino)
	}
}

// TestFreshInodeTablesSkipsReads creates files on a new filesystem with
// and without FreshInodeTables: without it, writing the new inodes back
// reads their inode table blocks; with it, none is read, and the result
// is the same clean filesystem.
func TestFreshInodeTablesSkipsReads(t *testing.T) {
	for _, fresh := range []bool{false, true} {
		t.Run(fmt.Sprintf("fresh=%v", fresh), func(t *testing.T) {
			img := formatImage(t, 16<<20, FormatOptions{BlockSize: 1024, InodeSize: 256})
			fs, dev := mountImageTraced(t, img, Options{FreshInodeTables: fresh})
			// lost+found's table block (which the first new inodes
			// share) is read before counting.
			lf, err := fs.Iget(fs.firstIno)
			if err != nil {
				t.Fatal(err)
			}
			fs.Iput(lf)
			dev.record(true)
			createFiles(t, fs, "f", 200, 100)
			if err := fs.Sync(); err != nil {
				t.Fatal(err)
			}
			dev.record(false)
			got := tableReads(fs, dev.taken())
			if fresh && got != 0 {
				t.Errorf("inode table reads: got %d, want 0 with FreshInodeTables", got)
			}
			if !fresh && got == 0 {
				t.Errorf("inode table reads: got 0, want some without FreshInodeTables (200 new inodes in 50 table blocks)")
			}
			if err := fs.Close(); err != nil {
				t.Fatal(err)
			}
			oracle.RequireClean(t, img)
			for _, name := range []string{"f0", "f77", "f199"} {
				st := oracle.DebugfsStat(t, img, "/"+name)
				if st.Size != 100 || st.Links != 1 {
					t.Errorf("%s: got size %d, links %d, want 100 and 1", name, st.Size, st.Links)
				}
			}
		})
	}
}

// TestFreshInodeTablesKeepsNeighbours frees inodes on a used filesystem
// (one in a table block whose other inodes stay in use, and every inode
// of another block), then mounts it again with FreshInodeTables and
// makes new files that take the freed numbers: the block with inodes in
// use is read and they keep their contents; the block with none is
// taken as zeros, which loses only the old contents of dead inodes.
func TestFreshInodeTablesKeepsNeighbours(t *testing.T) {
	img := formatImage(t, 16<<20, FormatOptions{BlockSize: 1024, InodeSize: 256})
	fs := mountImage(t, img, Options{})
	createFiles(t, fs, "old", 20, 3000)
	root, err := fs.Root()
	if err != nil {
		t.Fatal(err)
	}
	// With 4 inodes per 1 KiB block, old0 is inode 12 (block 2 with
	// lost+found), old1-old4 share block 3, old5-old8 block 4.
	per := fs.blockSize / fs.inodeSize
	freed := []string{"old2", "old5", "old6", "old7", "old8"}
	for _, name := range freed {
		n, err := fs.LookupIn(root, name)
		if err != nil {
			t.Fatal(err)
		}
		if name == "old5" && int(n-1)%per != 0 {
			t.Fatalf("old5 is inode %d, want the first of a table block (%d per block)", n, per)
		}
		if err := fs.Unlink(root, name); err != nil {
			t.Fatal(err)
		}
	}
	fs.Iput(root)
	if err := fs.Close(); err != nil {
		t.Fatal(err)
	}

	fs = mountImage(t, img, Options{FreshInodeTables: true})
	createFiles(t, fs, "new", len(freed), 500)
	if err := fs.Close(); err != nil {
		t.Fatal(err)
	}
	oracle.RequireClean(t, img)
	for i := range 20 {
		name := fmt.Sprintf("/old%d", i)
		gone := false
		for _, f := range freed {
			gone = gone || "/"+f == name
		}
		if gone {
			continue
		}
		st := oracle.DebugfsStat(t, img, name)
		if st.Size != 3000 || st.Links != 1 {
			t.Errorf("%s: got size %d, links %d, want 3000 and 1", name, st.Size, st.Links)
		}
		if got, want := oracle.DebugfsDump(t, img, name), pattern(uint64(i), 3000); string(got) != string(want) {
			t.Errorf("%s: contents differ after new inodes took its table block's free slots", name)
		}
	}
	for i := range freed {
		if st := oracle.DebugfsStat(t, img, fmt.Sprintf("/new%d", i)); st.Size != 500 {
			t.Errorf("/new%d: got size %d, want 500", i, st.Size)
		}
	}
}
