package ext2

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"syscall"
	"testing"

	"github.com/mpagefs/mpage/ext2/layout"
	"github.com/mpagefs/mpage/internal/oracle"
)

// freeCounts returns the free block and inode counts of fs.
func freeCounts(fs *FS) (blocks uint64, inodes uint32) {
	sb := fs.Superblock()
	return sb.FreeBlocks(), sb.FreeInodes()
}

// tmpfileT makes a tmpfile in dir and opens it for writing; the file is
// closed and the reference given back by the caller.
func tmpfileT(t *testing.T, fs *FS, dir *Inode, mode uint16, uid, gid uint32) (*Inode, *File) {
	t.Helper()
	ino, err := fs.Tmpfile(dir, mode, uid, gid)
	if err != nil {
		t.Fatalf("Tmpfile: %v", err)
	}
	f, err := fs.Open(ino, true)
	if err != nil {
		t.Fatalf("Open(tmpfile inode %d): %v", ino.Ino(), err)
	}
	return ino, f
}

// TestTmpfileUnlinkedIsFreed writes and reads back a tmpfile, checks that
// it is in no directory while open, and that closing it without a link
// gives back its inode and every block it took: the free counts return
// to what they were and e2fsck finds the image clean.
func TestTmpfileUnlinkedIsFreed(t *testing.T) {
	for _, bs := range []int{1024, 4096} {
		t.Run(fmt.Sprintf("bs%d", bs), func(t *testing.T) {
			f := newFixture(t, oracle.MkfsOptions{BlockSize: bs, SizeBytes: 16 << 20})
			fs := f.fs
			f.mkdir("/d")
			d := f.dir("/d")
			freeB, freeI := freeCounts(fs)

			ino, fl := tmpfileT(t, fs, d, 0o640, 1000, 2000)
			// Past the direct blocks, so indirect blocks are taken too.
			data := pattern(7, 300<<10)
			if n, err := fl.WriteAt(data, 0); n != len(data) || err != nil {
				t.Fatalf("WriteAt: got %d, %v; want %d, nil", n, err, len(data))
			}
			got := make([]byte, len(data))
			if n, err := fl.ReadAt(got, 0); n != len(data) {
				t.Fatalf("ReadAt: got %d, %v", n, err)
			}
			if !bytes.Equal(got, data) {
				t.Errorf("read back differs from what was written")
			}
			st := ino.Stat()
			if st.Nlink != 0 {
				t.Errorf("Nlink: got %d, want 0", st.Nlink)
			}
			if want := uint16(layout.ModeReg | 0o640); st.Mode != want {
				t.Errorf("Mode: got %#o, want %#o", st.Mode, want)
			}
			if st.UID != 1000 || st.GID != 2000 {
				t.Errorf("owner: got %d:%d, want 1000:2000", st.UID, st.GID)
			}
			if err := fs.Sync(); err != nil {
				t.Fatalf("Sync: %v", err)
			}
			b, i := freeCounts(fs)
			if i != freeI-1 {
				t.Errorf("free inodes while open: got %d, want %d", i, freeI-1)
			}
			if b >= freeB-uint64(len(data)/bs) {
				t.Errorf("free blocks while open: got %d, want below %d", b, freeB-uint64(len(data)/bs))
			}
			if names := dirNames(t, fs, d); len(names) != 0 {
				t.Errorf("/d while the tmpfile is open: got %v, want no entries", names)
			}
			if err := fl.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			fs.Iput(ino)
			if b, i := freeCounts(fs); b != freeB || i != freeI {
				t.Errorf("free blocks, inodes after the last close: got %d, %d; want %d, %d", b, i, freeB, freeI)
			}
			f.closeClean()
			if got := lsNames(t, f.img, "/d"); len(got) != 0 {
				t.Errorf("debugfs ls /d: got %v, want no entries", got)
			}
		})
	}
}

// dirNames lists dir's entries other than "." and "..".
func dirNames(t *testing.T, fs *FS, dir *Inode) []string {
	t.Helper()
	ents, err := fs.ReadDir(dir)
	if err != nil {
		t.Fatalf("ReadDir: %v", err)
	}
	var names []string
	for _, e := range ents {
		if e.Name != "." && e.Name != ".." {
			names = append(names, e.Name)
		}
	}
	return names
}

// TestTmpfileLink links a tmpfile into place and closes it: the named
// file keeps the data, size, mode and owner, with one link, as debugfs
// sees them after unmount; a second name makes two links.
func TestTmpfileLink(t *testing.T) {
	f := newFixture(t, oracle.MkfsOptions{BlockSize: 1024})
	fs := f.fs
	f.mkdir("/d")
	f.mkdir("/e")
	d, e := f.dir("/d"), f.dir("/e")
	data := pattern(11, 20000)

	ino, fl := tmpfileT(t, fs, d, 0o604, 1234, 4321)
	if _, err := fl.WriteAt(data, 0); err != nil {
		t.Fatalf("WriteAt: %v", err)
	}
	if err := fs.Link(ino, d, "named"); err != nil {
		t.Fatalf("Link(tmpfile, /d/named): %v", err)
	}
	if got := ino.Stat().Nlink; got != 1 {
		t.Errorf("Nlink after Link: got %d, want 1", got)
	}
	fl.Close()
	fs.Iput(ino)

	// A second one gets two names, in two directories.
	ino2, fl2 := tmpfileT(t, fs, e, 0o600, 0, 0)
	if _, err := fl2.WriteAt([]byte("second"), 0); err != nil {
		t.Fatalf("WriteAt: %v", err)
	}
	fl2.Close()
	for _, to := range []struct {
		dir  *Inode
		name string
	}{{e, "one"}, {d, "two"}} {
		if err := fs.Link(ino2, to.dir, to.name); err != nil {
			t.Fatalf("Link(tmpfile, %s): %v", to.name, err)
		}
	}
	fs.Iput(ino2)
	f.closeClean()

	st := debugfsStat(t, f.img, "/d/named")
	if st.Type != "regular" || st.Mode != 0o604 || st.Links != 1 || st.Size != uint64(len(data)) || st.UID != 1234 || st.GID != 4321 {
		t.Errorf("debugfs stat /d/named: got %s %#o links %d size %d owner %d:%d; want regular 0604 links 1 size %d owner 1234:4321",
			st.Type, st.Mode, st.Links, st.Size, st.UID, st.GID, len(data))
	}
	if got := oracle.DebugfsDump(t, f.img, "/d/named"); !bytes.Equal(got, data) {
		t.Errorf("debugfs dump /d/named: got %d bytes, want the %d written", len(got), len(data))
	}
	if st := debugfsStat(t, f.img, "/e/one"); st.Links != 2 {
		t.Errorf("debugfs stat /e/one: got %d links, want 2", st.Links)
	}
	if got := string(oracle.DebugfsDump(t, f.img, "/d/two")); got != "second" {
		t.Errorf("debugfs dump /d/two: got %q, want %q", got, "second")
	}
}

// TestTmpfileLinkRefused checks that Link refuses, with ENOENT as
// vfs_link does, an inode whose link count fell to 0 by unlink: an
// ordinary file unlinked while open, and a tmpfile linked and then
// unlinked (it is linkable only until its first link).
func TestTmpfileLinkRefused(t *testing.T) {
	f := newFixture(t, oracle.MkfsOptions{BlockSize: 1024})
	fs := f.fs
	root := f.root
	f.create("/plain")
	plain := lookupT(t, fs, "/plain")

	tmp, err := fs.Tmpfile(root, 0o644, 0, 0)
	if err != nil {
		t.Fatalf("Tmpfile: %v", err)
	}
	defer fs.Iput(tmp)
	if err := fs.Link(tmp, root, "tmp"); err != nil {
		t.Fatalf("Link(tmpfile): %v", err)
	}
	for _, name := range []string{"plain", "tmp"} {
		if err := fs.Unlink(root, name); err != nil {
			t.Fatalf("Unlink(%s): %v", name, err)
		}
	}
	for _, c := range []struct {
		name string
		ino  *Inode
	}{{"unlinked file", plain}, {"tmpfile linked then unlinked", tmp}} {
		t.Run(c.name, func(t *testing.T) {
			err := fs.Link(c.ino, root, "again")
			if !errors.Is(err, syscall.ENOENT) {
				t.Errorf("Link: got %v, want ENOENT", err)
			}
		})
	}
	if names := dirNames(t, fs, root); !slices.Equal(names, []string{"lost+found"}) {
		t.Errorf("/: got %v, want [lost+found]", names)
	}
}

// TestTmpfileReadOnly checks that a read-only filesystem refuses a
// tmpfile with its read-only error (EROFS).
func TestTmpfileReadOnly(t *testing.T) {
	img := oracle.MkfsImage(t, oracle.MkfsOptions{BlockSize: 1024})
	fs := nsMount(t, img, true)
	root, err := fs.Root()
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Iput(root)
	ino, err := fs.Tmpfile(root, 0o600, 0, 0)
	if err == nil {
		fs.Iput(ino)
	}
	if !errors.Is(err, ErrReadOnly) || !errors.Is(err, syscall.EROFS) {
		t.Errorf("Tmpfile on a read-only filesystem: got %v, want ErrReadOnly (EROFS)", err)
	}
}

// TestTmpfileNoSpace takes every free inode with tmpfiles: the next one
// fails with ENOSPC, as Create does then; writing a tmpfile until the
// blocks run out fails with ENOSPC too. Giving them all back restores the
// free counts, and e2fsck finds the image clean.
func TestTmpfileNoSpace(t *testing.T) {
	f := newFixture(t, oracle.MkfsOptions{BlockSize: 1024, SizeBytes: 2 << 20, Inodes: 64})
	fs := f.fs
	root := f.root
	freeB, freeI := freeCounts(fs)

	var held []*Inode
	var err error
	for range freeI + 1 {
		var ino *Inode
		if ino, err = fs.Tmpfile(root, 0o600, 0, 0); err != nil {
			break
		}
		held = append(held, ino)
	}
	if !errors.Is(err, syscall.ENOSPC) || len(held) != int(freeI) {
		t.Fatalf("tmpfiles until no inode is free: got %d and %v, want %d and ENOSPC", len(held), err, freeI)
	}
	if _, cerr := fs.Create(root, "x", 0o644, 0, 0); !errors.Is(cerr, syscall.ENOSPC) {
		t.Errorf("Create with no free inode: got %v, want ENOSPC", cerr)
	}

	// One tmpfile takes every free block.
	fl, err := fs.Open(held[0], true)
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte{0x5a}, 64<<10)
	var werr error
	for off := int64(0); werr == nil && off < 4<<20; off += int64(len(chunk)) {
		_, werr = fl.WriteAt(chunk, off)
	}
	if !errors.Is(werr, syscall.ENOSPC) {
		t.Errorf("writing a tmpfile past the free space: got %v, want ENOSPC", werr)
	}
	// A block or two may stay free: a data block that would need an
	// indirect block as well.
	if b, _ := freeCounts(fs); b > 2 {
		t.Errorf("free blocks after ENOSPC: got %d, want at most 2", b)
	}
	fl.Close()
	for _, ino := range held {
		fs.Iput(ino)
	}
	if b, i := freeCounts(fs); b != freeB || i != freeI {
		t.Errorf("free blocks, inodes after the tmpfiles closed: got %d, %d; want %d, %d", b, i, freeB, freeI)
	}
	f.closeClean()
}

// TestTmpfileOwnerAndPlace checks what a tmpfile takes from its
// directory as a created file does: the group of a set-group-ID
// directory (without the set-group-ID bit, for a regular file), and an
// inode in the directory's block group.
func TestTmpfileOwnerAndPlace(t *testing.T) {
	f := newFixture(t, oracle.MkfsOptions{BlockSize: 1024, SizeBytes: 32 << 20})
	fs := f.fs
	sg, err := fs.Mkdir(f.root, "sg", 0o2775, 0, 77)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Iput(sg)
	tmp, err := fs.Tmpfile(sg, 0o2755, 5, 6)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Iput(tmp)
	made, err := fs.Create(sg, "made", 0o2755, 5, 6)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Iput(made)
	ts, ms := tmp.Stat(), made.Stat()
	if ts.UID != 5 || ts.GID != 77 {
		t.Errorf("tmpfile owner in a set-group-ID directory: got %d:%d, want 5:77", ts.UID, ts.GID)
	}
	if ts.Mode != ms.Mode {
		t.Errorf("tmpfile mode: got %#o, want %#o as Create gives", ts.Mode, ms.Mode)
	}
	ipg := fs.Superblock().InodesPerGroup
	if tg, dg, mg := (ts.Ino-1)/ipg, (sg.Ino()-1)/ipg, (ms.Ino-1)/ipg; tg != dg || mg != dg {
		t.Errorf("block groups: tmpfile %d, created file %d, directory %d; want all the directory's", tg, mg, dg)
	}
}
