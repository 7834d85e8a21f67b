package ext2

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/mpagefs/mpage/internal/oracle"
)

// walkBlocks maps like getBlocks with the remembered run forgotten first,
// so the answer comes from a walk down the block map.
func walkBlocks(t *testing.T, ino *Inode, iblock int64, maxBlocks int) mapResult {
	t.Helper()
	ino.tree.Lock()
	ino.forgetRunLocked()
	ino.tree.Unlock()
	res, err := ino.getBlocks(iblock, maxBlocks, false)
	if err != nil {
		t.Fatalf("getBlocks(%d, %d): %v", iblock, maxBlocks, err)
	}
	return res
}

// TestMappedRunMatchesWalk maps every block of a fragmented file with
// holes, after a lookup a few blocks earlier left a run remembered, and
// checks the answer (device block, run length, boundary flag) against a
// walk of the block map, at 1 KiB blocks (256 pointers an indirect
// block) and 4 KiB blocks.
func TestMappedRunMatchesWalk(t *testing.T) {
	for _, bs := range []int{1024, 4096} {
		t.Run(fmt.Sprintf("bs%d", bs), func(t *testing.T) {
			img := emptyFilesImage(t, bs, 256, 16<<20, "a", "b")
			fs := mountImage(t, img, Options{})
			a, b := openPath(t, fs, "a"), openPath(t, fs, "b")
			defer a.Close()
			defer b.Close()
			// Interleave the two files' allocations so that a's runs
			// break, and leave holes in a.
			chunk := 23 * bs
			for i := range 12 {
				off := int64(i * chunk)
				if i%4 == 3 {
					off += int64(5 * bs) // a hole before this chunk
				}
				if _, err := a.WriteAt(pattern(uint64(i), chunk), off+int64(i*7*bs)); err != nil {
					t.Fatal(err)
				}
				if err := a.Sync(); err != nil {
					t.Fatal(err)
				}
				if _, err := b.WriteAt(pattern(uint64(100+i), 3*bs), int64(i*3*bs)); err != nil {
					t.Fatal(err)
				}
				if err := b.Sync(); err != nil {
					t.Fatal(err)
				}
			}
			ino := a.Inode()
			blocks := (a.Size() + int64(bs) - 1) / int64(bs)
			hits := 0
			for ib := range blocks + 2 {
				for _, maxBlocks := range []int{1, 5, 300} {
					want := walkBlocks(t, ino, ib, maxBlocks)
					for _, back := range []int64{0, 1, 7, 63} {
						if ib-back < 0 {
							continue
						}
						walkBlocks(t, ino, ib-back, 1) // remember the run at ib-back
						if _, ok := ino.cachedRun(ib, maxBlocks); ok {
							hits++
						}
						got, err := ino.getBlocks(ib, maxBlocks, false)
						if err != nil {
							t.Fatal(err)
						}
						if got.blk != want.blk || got.count != want.count || got.boundary != want.boundary {
							t.Fatalf("block %d (up to %d) after a lookup at %d: got blk %d count %d boundary %v, the walk gives blk %d count %d boundary %v",
								ib, maxBlocks, ib-back, got.blk, got.count, got.boundary, want.blk, want.count, want.boundary)
						}
					}
				}
			}
			if hits == 0 {
				t.Fatalf("no lookup of %d blocks was answered from a remembered run", blocks)
			}
		})
	}
}

// TestMappedRunForgottenOnTruncate remembers a run of a file, truncates
// the file, lets another file take the freed blocks and writes the first
// file again: its new data must go to its new blocks, not through the
// remembered run into the other file's blocks.
func TestMappedRunForgottenOnTruncate(t *testing.T) {
	const bs = 4096
	img := emptyFilesImage(t, bs, 256, 16<<20, "a", "b")
	fs := mountImage(t, img, Options{})
	a, b := openPath(t, fs, "a"), openPath(t, fs, "b")
	old := pattern(1, 40*bs)
	if _, err := a.WriteAt(old, 0); err != nil {
		t.Fatal(err)
	}
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	// Remember a run of a's blocks (writeback, a read or a FUSE
	// READ would, mapping a page).
	if _, err := a.Inode().getBlocks(14, 1, false); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Inode().cachedRun(20, 1); !ok {
		t.Fatalf("no run remembered after mapping block 14 of a: %+v", a.Inode().run)
	}
	if err := a.Truncate(bs); err != nil {
		t.Fatal(err)
	}
	bData := pattern(2, 40*bs)
	if _, err := b.WriteAt(bData, 0); err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	// Write a again where the remembered run was, leaving a hole
	// before it, so that the first lookups are inside the old run.
	aData := append(bytes.Clone(old[:bs]), make([]byte, 13*bs)...)
	aData = append(aData, pattern(3, 26*bs)...)
	if _, err := a.WriteAt(aData[14*bs:], 14*bs); err != nil {
		t.Fatal(err)
	}
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	a.Close()
	b.Close()
	if err := fs.Close(); err != nil {
		t.Fatal(err)
	}
	oracle.RequireClean(t, img)
	for _, f := range []struct {
		name string
		want []byte
	}{{"/a", aData}, {"/b", bData}} {
		if got := oracle.DebugfsDump(t, img, f.name); !bytes.Equal(got, f.want) {
			t.Errorf("%s: %d bytes on the image, want %d; first difference at %d", f.name, len(got), len(f.want), firstDiff(got, f.want))
		}
	}
}
