package ext2fs

import (
	"bytes"
	"testing"
)

// runs returns the lengths of the runs of contiguous device blocks of the
// file at path (1 KiB blocks), read from the block map.
func runs(t *testing.T, fsys *FS, path string, blocks int64) []int {
	t.Helper()
	ino, err := fsys.Ext2().Lookup(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Ext2().Iput(ino)
	var out []int
	for ib := int64(0); ib < blocks; {
		blk, n, err := ino.MapBlocks(ib, int(blocks-ib))
		if err != nil {
			t.Fatal(err)
		}
		if blk == 0 {
			t.Fatalf("%s: block %d is a hole", path, ib)
		}
		out = append(out, n)
		ib += int64(n)
	}
	return out
}

// TestFollowupFallbackPages checks Stats.FallbackReadPages and
// FallbackWritePages: a file whose pages have their four 1 KiB blocks in
// several runs on disk is written back and read block by block, a
// contiguous file never.
func TestFollowupFallbackPages(t *testing.T) {
	image := emptyImage(t, 8<<20, 1024)
	fsys := mustOpen(t, image, Options{})
	stats := func() (r, w int64) {
		s := fsys.Stats()
		return s.FallbackReadPages, s.FallbackWritePages
	}

	// Contiguous: 64 KiB in one write.
	contig := bytes.Repeat([]byte("contiguous file."), 4096)
	if err := writeWhole(fsys, "contig", contig); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := runs(t, fsys, "/contig", 64); len(got) > 2 { // the indirect block may split it
		t.Fatalf("contig has runs %v, want one or two", got)
	}
	if r, w := stats(); r != 0 || w != 0 {
		t.Errorf("after writing a contiguous file: FallbackReadPages %d, FallbackWritePages %d; want 0, 0", r, w)
	}

	// Fragmented: the even blocks of a first, then the odd ones, each
	// pass allocating a run of its own, so that the four 1 KiB blocks of
	// every page alternate between two runs.
	a := make([]byte, 32*1024)
	for i := range a {
		a[i] = byte('a' + i/1024%26)
	}
	f, err := fsys.Create("a")
	if err != nil {
		t.Fatal(err)
	}
	for _, first := range []int{0, 1} {
		for blk := first; blk < 32; blk += 2 {
			off := blk * 1024
			if _, err := f.WriteAt(a[off:off+1024], int64(off)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := runs(t, fsys, "/a", 32); len(got) < 32 {
		t.Fatalf("a has runs %v, want 32 runs of one block", got)
	}
	if err := fsys.Sync(); err != nil {
		t.Fatal(err)
	}
	if r, w := stats(); r != 0 || w == 0 {
		t.Errorf("after writing a fragmented file: FallbackReadPages %d, FallbackWritePages %d; want 0, > 0", r, w)
	}
	if err := fsys.Close(); err != nil {
		t.Fatal(err)
	}

	// Cold reads, on a new mount.
	fsys = mustOpen(t, image, Options{})
	got, err := fsys.ReadFile("contig")
	if err != nil || !bytes.Equal(got, contig) {
		t.Fatalf("ReadFile(contig): %d bytes, %v; want the %d written", len(got), err, len(contig))
	}
	if r, w := stats(); r != 0 || w != 0 {
		t.Errorf("after reading a contiguous file: FallbackReadPages %d, FallbackWritePages %d; want 0, 0", r, w)
	}
	if got, err := fsys.ReadFile("a"); err != nil || !bytes.Equal(got, a) {
		t.Fatalf("ReadFile(a): %d bytes, %v; want the %d written", len(got), err, len(a))
	}
	// Each of the 8 pages of a has its blocks in four runs.
	if r, w := stats(); r != 8 || w != 0 {
		t.Errorf("after reading a fragmented file: FallbackReadPages %d, FallbackWritePages %d; want 8, 0", r, w)
	}
	closeAndCheck(t, fsys, image)
}

// writeWhole creates name holding data, written in one call.
func writeWhole(fsys *FS, name string, data []byte) error {
	f, err := fsys.Create(name)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
