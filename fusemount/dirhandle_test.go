package fusemount

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/mpagefs/mpage/ext2"
	"github.com/mpagefs/mpage/ext2fs"
	"github.com/mpagefs/mpage/internal/oracle"
	"golang.org/x/sys/unix"
)

// TestReaddirSkipsBadBlock lists, through the mount, a directory of three
// blocks whose middle block is corrupt (its first record's rec_len is
// 0), as e2fsprogs' f_baddir, f_salvage_dir and f_lotsbad have: as with
// Linux's ext2 (ext2_readdir skips a bad page), getdents gives the
// entries of the first block, then EIO once, and a program that reads
// on gets the entries of the third block. Before, every getdents failed
// at the bad block and no entry was listed at all.
func TestReaddirSkipsBadBlock(t *testing.T) {
	requireFuse(t)
	var names []string
	for i := range 60 {
		names = append(names, fmt.Sprintf("a-rather-long-name-to-fill-blocks-%03d", i))
	}
	const bs = 1024
	image, ents, recAt := dirImage(t, names)
	bad := int64(-1) // where d's second block is in the image
	for i, e := range ents {
		if e.Off == bs {
			bad = recAt[i]
		}
	}
	if bad < 0 {
		t.Fatalf("no entry starts d's second block: %v", ents)
	}
	var want []string
	blocks := map[int64]int{}
	for _, e := range ents {
		blocks[e.Off/bs]++
		if e.Off/bs != 1 && e.Name != "." && e.Name != ".." {
			want = append(want, e.Name)
		}
	}
	if len(blocks) != 3 || blocks[0] < 2 || blocks[2] == 0 {
		t.Fatalf("d's entries by block: %v, want three blocks", blocks)
	}
	f, err := os.OpenFile(image, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteAt(binary.LittleEndian.AppendUint16(nil, 0), bad+4) // rec_len of the first record
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	m := mountImage(t, image, Options{ReadOnly: true})
	fd, err := unix.Open(m.path("d"), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var got []string
	var errs []error
	buf := make([]byte, 4096)
	for len(errs) < 5 {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if n == 0 {
			break
		}
		_, _, got = unix.ParseDirent(buf[:n], -1, got)
	}
	if len(errs) != 1 || errs[0] != syscall.EIO {
		t.Errorf("getdents errors: got %v, want one EIO", errs)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("listed %d names, want the %d of the good blocks:\ngot  %q\nwant %q", len(got), len(want), got, want)
	}
	unix.Close(fd)
	m.unmount(t)
}

// dirImage makes a 4 MiB image with 1 KiB blocks whose directory d holds
// a file for each name (its bytes are its name), and returns it with d's
// entries and, for each entry, the offset of its record in the image.
func dirImage(t *testing.T, names []string) (image string, ents []ext2.DirEntryAt, recAt []int64) {
	t.Helper()
	const bs = 1024
	src := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(filepath.Join(src, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(src, "d", n), []byte(n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	image = oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 4 << 20, BlockSize: bs, FromDir: src})
	fsys, err := ext2fs.Open(image, ext2fs.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	e2 := fsys.Ext2()
	dir, err := e2.Lookup("d")
	if err != nil {
		t.Fatal(err)
	}
	ents, _, err = e2.ReadDirFrom(dir, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		blk, _, err := dir.MapBlock(e.Off/bs, false)
		if err != nil || blk == 0 {
			t.Fatalf("block %d of d: %d, %v", e.Off/bs, blk, err)
		}
		recAt = append(recAt, blk*bs+e.Off%bs)
	}
	e2.Iput(dir)
	if err := fsys.Close(); err != nil {
		t.Fatal(err)
	}
	return image, ents, recAt
}
