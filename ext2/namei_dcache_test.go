package ext2

import (
	"fmt"
	"slices"
	"testing"

	"github.com/mpagefs/mpage/internal/oracle"
)

// TestRemoveRenameUseNameCache unlinks, renames (to new names, over
// existing names, between two large directories, and a missing name)
// and removes directories in two directories of some 130 blocks each,
// whose names are cached: each operation looks at a handful of blocks
// (the buffer cache counts every block looked up), not at every block
// of the directory as a walk does. The listings must then equal a
// model, and e2fsck must find the image clean.
func TestRemoveRenameUseNameCache(t *testing.T) {
	f := newFixture(t, oracle.MkfsOptions{SizeBytes: 32 << 20, BlockSize: 1024, Inodes: 8192})
	fs := f.fs
	const n = 3000
	name := func(i int) string { return fmt.Sprintf("a-file-with-a-longer-name-%05d", i) }
	model := map[string]map[string]bool{"/a": {}, "/b": {}}
	f.mkdir("/a")
	f.mkdir("/b")
	for _, d := range []string{"/a", "/b"} {
		for i := range n {
			f.create(d + "/" + name(i))
			model[d][name(i)] = true
		}
		f.mkdir(d + "/sub")
		model[d]["sub"] = true
	}
	a, b := f.dir("/a"), f.dir("/b")
	if blocks := fs.dirBlockCount(a); blocks < 100 {
		t.Fatalf("/a has %d blocks, want a directory of at least 100", blocks)
	}
	if _, ok := cachedNames(fs, a); !ok {
		t.Fatal("/a is not in the name cache after 3,000 creates")
	}
	// lookups counts the blocks the buffer cache was asked for.
	lookups := func() int64 {
		st := fs.BufferCache().Stats()
		return st.Hits + st.Misses
	}
	// At most: the entry's block, the inode table blocks of the inodes
	// involved, and the bitmap and group descriptor blocks of a freed
	// inode; a walk reads every one of the 100+ directory blocks.
	const most = 12
	steps := []struct {
		name string
		do   func() error
		want func()
	}{
		{"unlink", func() error { return fs.Unlink(a, name(2900)) }, func() { delete(model["/a"], name(2900)) }},
		{"unlink missing", func() error {
			if err := fs.Unlink(a, "no-such-name"); err == nil {
				return fmt.Errorf("unlink of a missing name succeeded")
			}
			return nil
		}, func() {}},
		{"rename to a new name", func() error { return fs.Rename(a, name(2500), a, "renamed", 0) }, func() {
			delete(model["/a"], name(2500))
			model["/a"]["renamed"] = true
		}},
		{"rename over a name", func() error { return fs.Rename(a, name(10), a, name(2990), 0) }, func() {
			delete(model["/a"], name(10))
		}},
		{"rename between directories", func() error { return fs.Rename(a, name(1500), b, "moved", 0) }, func() {
			delete(model["/a"], name(1500))
			model["/b"]["moved"] = true
		}},
		{"rename over a name between directories", func() error { return fs.Rename(b, name(5), a, name(6), 0) }, func() {
			delete(model["/b"], name(5))
		}},
		{"rmdir", func() error { return fs.Rmdir(b, "sub") }, func() { delete(model["/b"], "sub") }},
		{"rename a directory", func() error { return fs.Rename(a, "sub", b, "sub2", 0) }, func() {
			delete(model["/a"], "sub")
			model["/b"]["sub2"] = true
		}},
	}
	for _, s := range steps {
		before := lookups()
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		s.want()
		if got := lookups() - before; got > most {
			t.Errorf("%s looked up %d blocks, want at most %d", s.name, got, most)
		}
	}
	for d, ino := range map[string]*Inode{"/a": a, "/b": b} {
		ents, err := fs.ReadDir(ino)
		if err != nil {
			t.Fatal(err)
		}
		var got, want []string
		for _, e := range ents {
			if e.Name != "." && e.Name != ".." {
				got = append(got, e.Name)
			}
		}
		for n := range model[d] {
			want = append(want, n)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s lists %d names, want %d (the model)", d, len(got), len(want))
		}
	}
	f.closeClean()
}
