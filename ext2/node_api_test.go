package ext2

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mpagefs/mpage/internal/oracle"
)

// cachedNames returns the names the name cache holds for directory dir,
// and whether it holds the directory at all.
func cachedNames(fs *FS, dir *Inode) (map[string]uint32, bool) {
	dc := &fs.dcache
	dc.mu.Lock()
	defer dc.mu.Unlock()
	d, ok := dc.dirs[dir.ino]
	if !ok {
		return nil, false
	}
	return copyNames(d.names), true
}

func copyNames(m map[string]dcEntry) map[string]uint32 {
	out := make(map[string]uint32, len(m))
	for k, v := range m {
		out[k] = v.ino
	}
	return out
}

// TestLookupInodeNameCache changes a large directory (cached names) and a
// small one (searched block by block) at random, with creates, unlinks,
// renames within and between them (also over existing names), links,
// and directories made and removed, and after each change looks names
// up with LookupInode against a model; at the end both directories are
// listed and the image checked by e2fsck.
func TestLookupInodeNameCache(t *testing.T) {
	f := newFixture(t, oracle.MkfsOptions{SizeBytes: 16 << 20, BlockSize: 1024})
	fs := f.fs
	big, err := fs.Mkdir(f.root, "big", 0o755, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	small, err := fs.Mkdir(f.root, "small", 0o755, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	dirs := map[*Inode]map[string]uint32{big: {}, small: {}}
	name := func(i int) string { return fmt.Sprintf("entry-with-a-longer-name-%04d", i) }
	create := func(dir *Inode, n string) {
		t.Helper()
		ino, err := fs.Create(dir, n, 0o644, 0, 0)
		if err != nil {
			t.Fatalf("Create(%q): %v", n, err)
		}
		dirs[dir][n] = ino.ino
		fs.Iput(ino)
	}
	for i := range 400 { // 400 entries of 36 bytes: 14 KiB, past dcacheMinSize
		create(big, name(i))
	}
	for i := range 5 {
		create(small, name(i))
	}
	check := func(dir *Inode, n string) {
		t.Helper()
		want, ok := dirs[dir][n]
		ino, err := fs.LookupInode(dir, n)
		switch {
		case !ok && !errors.Is(err, syscall.ENOENT):
			if err == nil {
				fs.Iput(ino)
			}
			t.Fatalf("LookupInode(%q) of a removed name: %v, want ENOENT", n, err)
		case ok && err != nil:
			t.Fatalf("LookupInode(%q): %v, want inode %d", n, err, want)
		case ok:
			got := ino.ino
			fs.Iput(ino)
			if got != want {
				t.Fatalf("LookupInode(%q) = inode %d, want %d", n, got, want)
			}
		}
	}
	check(big, name(0)) // builds the cache of big
	if _, ok := cachedNames(fs, big); !ok {
		t.Fatalf("no cached names for a directory of %d bytes", big.Size())
	}
	if _, ok := cachedNames(fs, small); ok {
		t.Errorf("names cached for a directory of %d bytes, below %d", small.Size(), dcacheMinSize)
	}

	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(dir *Inode) string { // an existing name, or "" for none
		if len(dirs[dir]) == 0 {
			return ""
		}
		names := make([]string, 0, len(dirs[dir]))
		for n := range dirs[dir] {
			names = append(names, n)
		}
		slices.Sort(names)
		return names[rng.IntN(len(names))]
	}
	other := func(d *Inode) *Inode {
		if d == big {
			return small
		}
		return big
	}
	next := 1000
	for step := range 600 {
		d := big
		if rng.IntN(4) == 0 {
			d = small
		}
		var touched []string
		switch op := rng.IntN(6); op {
		case 0: // create
			n := name(next)
			next++
			create(d, n)
			touched = append(touched, n)
		case 1: // unlink
			n := pick(d)
			if n == "" {
				continue
			}
			if err := fs.Unlink(d, n); err != nil {
				t.Fatalf("step %d: Unlink(%q): %v", step, n, err)
			}
			delete(dirs[d], n)
			touched = append(touched, n)
		case 2, 3: // rename within d or to the other directory, to a new name or over an existing one
			n := pick(d)
			if n == "" {
				continue
			}
			to := d
			if op == 3 {
				to = other(d)
			}
			nn := name(next)
			next++
			if rng.IntN(2) == 0 {
				if e := pick(to); e != "" && e != n {
					nn = e
				}
			}
			if err := fs.Rename(d, n, to, nn, 0); err != nil {
				t.Fatalf("step %d: Rename(%q, %q): %v", step, n, nn, err)
			}
			ino := dirs[d][n]
			if dirs[to][nn] != ino { // onto another link to the same inode: nothing happens
				delete(dirs[d], n)
				dirs[to][nn] = ino
			}
			touched = append(touched, n, nn)
		case 4: // link
			n := pick(d)
			if n == "" {
				continue
			}
			src, err := fs.Iget(dirs[d][n])
			if err != nil {
				t.Fatal(err)
			}
			nn := name(next)
			next++
			err = fs.Link(src, other(d), nn)
			fs.Iput(src)
			if err != nil {
				t.Fatalf("step %d: Link(%q): %v", step, nn, err)
			}
			dirs[other(d)][nn] = dirs[d][n]
			touched = append(touched, nn)
		case 5: // a directory made, then removed
			n := name(next)
			next++
			sub, err := fs.Mkdir(d, n, 0o755, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			dirs[d][n] = sub.ino
			fs.Iput(sub)
			check(d, n)
			if err := fs.Rmdir(d, n); err != nil {
				t.Fatal(err)
			}
			delete(dirs[d], n)
			touched = append(touched, n)
		}
		for _, n := range touched {
			check(big, n)
			check(small, n)
		}
		check(d, pick(d))
	}
	for _, d := range []*Inode{big, small} {
		ents, err := fs.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]uint32{}
		for _, e := range ents {
			if e.Name != "." && e.Name != ".." {
				got[e.Name] = e.Ino
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(dirs[d]) {
			t.Errorf("directory inode %d lists %d names, the model %d: got %v, want %v", d.ino, len(got), len(dirs[d]), got, dirs[d])
		}
		for n := range dirs[d] {
			check(d, n)
		}
	}
	if cached, ok := cachedNames(fs, big); ok {
		delete(cached, ".")
		delete(cached, "..")
		if fmt.Sprint(cached) != fmt.Sprint(dirs[big]) {
			t.Errorf("the name cache of the large directory differs from it: %v, want %v", cached, dirs[big])
		}
	}
	fs.Iput(big)
	fs.Iput(small)
	f.closeClean()
}

// TestNameCacheOfRemovedDirectory removes a large, cached directory and
// makes a new one, which takes the same inode number: the new directory
// must not answer with the old one's names.
func TestNameCacheOfRemovedDirectory(t *testing.T) {
	f := newFixture(t, oracle.MkfsOptions{SizeBytes: 16 << 20, BlockSize: 1024})
	fs := f.fs
	d, err := fs.Mkdir(f.root, "d", 0o755, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		ino, err := fs.Create(d, fmt.Sprintf("name-%04d-padding-padding", i), 0o644, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		fs.Iput(ino)
	}
	ino, err := fs.LookupInode(d, "name-0007-padding-padding")
	if err != nil {
		t.Fatal(err)
	}
	fs.Iput(ino)
	if _, ok := cachedNames(fs, d); !ok {
		t.Fatalf("no cached names for a directory of %d bytes", d.Size())
	}
	for i := range 300 {
		if err := fs.Unlink(d, fmt.Sprintf("name-%04d-padding-padding", i)); err != nil {
			t.Fatal(err)
		}
	}
	old := d.ino
	if err := fs.Rmdir(f.root, "d"); err != nil {
		t.Fatal(err)
	}
	fs.Iput(d) // deleted now
	d, err = fs.Mkdir(f.root, "e", 0o755, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Iput(d)
	if d.ino != old {
		t.Logf("the new directory is inode %d, not %d: the check below is weaker", d.ino, old)
	}
	if _, ok := cachedNames(fs, d); ok {
		t.Errorf("a new directory, inode %d, has cached names", d.ino)
	}
	if ino, err := fs.LookupInode(d, "name-0007-padding-padding"); !errors.Is(err, syscall.ENOENT) {
		if err == nil {
			fs.Iput(ino)
		}
		t.Errorf("LookupInode in the new directory of a name of the removed one: %v, want ENOENT", err)
	}
}

// TestSetAttrOfUnlinkedInode changes the mode, owner, times and size of
// a file that has no name left but is open, as fchmod, fchown, futimens
// and ftruncate do; the inode is deleted at the last close.
func TestSetAttrOfUnlinkedInode(t *testing.T) {
	f := newFixture(t, oracle.MkfsOptions{})
	fs := f.fs
	ino, err := fs.Create(f.root, "f", 0o644, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	file, err := fs.Open(ino, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := file.WriteAt(make([]byte, 5000), 0); err != nil {
		t.Fatal(err)
	}
	if err := fs.Unlink(f.root, "f"); err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1_000_000_000, 5)
	mt := time.Unix(1_100_000_000, 7)
	before := ino.Stat().Ctime
	time.Sleep(10 * time.Millisecond)
	if err := fs.Truncate(ino, 100); err != nil {
		t.Fatalf("Truncate of an unlinked open file: %v", err)
	}
	err = fs.SetAttr(ino, AttrChange{
		SetMode: true, Mode: 0o4750,
		SetUID: true, UID: 1234, SetGID: true, GID: 5678,
		SetAtime: true, Atime: at, SetMtime: true, Mtime: mt,
	})
	if err != nil {
		t.Fatalf("SetAttr of an unlinked open file: %v", err)
	}
	st := ino.Stat()
	if st.Mode != 0o100000|0o4750 || st.UID != 1234 || st.GID != 5678 || st.Nlink != 0 || st.Size != 100 {
		t.Errorf("after setattr: mode %#o uid %d gid %d nlink %d size %d, want %#o 1234 5678 0 100",
			st.Mode, st.UID, st.GID, st.Nlink, st.Size, 0o104750)
	}
	if !st.Atime.Equal(at) || st.Mtime.Unix() != mt.Unix() {
		t.Errorf("times: atime %v mtime %v, want %v %v", st.Atime, st.Mtime, at, mt)
	}
	if !st.Ctime.After(before) {
		t.Errorf("ctime %v not after %v", st.Ctime, before)
	}
	dir, err := fs.Root()
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Iput(dir)
	if err := fs.Truncate(dir, 0); !errors.Is(err, syscall.EISDIR) {
		t.Errorf("Truncate of a directory: %v, want EISDIR", err)
	}
	file.Close()
	fs.Iput(ino) // the last reference: deleted
	if g := fs.Igrab(ino); g != nil {
		t.Errorf("Igrab of a deleted inode = inode %d, want nil", g.ino)
		fs.Iput(g)
	}
	f.closeClean()
}

// TestNameCachePerMount mounts two images at once, each with a large
// directory of the same inode number holding other names, and checks
// that each mount's lookups see only its own names; Close empties a
// mount's cache.
func TestNameCachePerMount(t *testing.T) {
	var fss [2]*FS
	var dirs [2]*Inode
	for i := range fss {
		f := newFixture(t, oracle.MkfsOptions{SizeBytes: 4 << 20, BlockSize: 1024})
		d, err := f.fs.Mkdir(f.root, "big", 0o755, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for j := range 300 { // 300 entries of 24 bytes: past dcacheMinSize
			ino, err := f.fs.Create(d, fmt.Sprintf("mount%d-name-%04d", i, j), 0o644, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.fs.Iput(ino)
		}
		fss[i], dirs[i] = f.fs, d
	}
	if dirs[0].ino != dirs[1].ino {
		t.Fatalf("the directories are inodes %d and %d; want one number", dirs[0].ino, dirs[1].ino)
	}
	for i, fs := range fss {
		own := fmt.Sprintf("mount%d-name-0007", i)
		other := fmt.Sprintf("mount%d-name-0007", 1-i)
		ino, err := fs.LookupInode(dirs[i], own)
		if err != nil {
			t.Fatalf("mount %d: LookupInode(%q): %v", i, own, err)
		}
		fs.Iput(ino)
		if _, ok := cachedNames(fs, dirs[i]); !ok {
			t.Fatalf("mount %d: no cached names for a directory of %d bytes", i, dirs[i].Size())
		}
		if ino, err := fs.LookupInode(dirs[i], other); !errors.Is(err, syscall.ENOENT) {
			if err == nil {
				fs.Iput(ino)
			}
			t.Errorf("mount %d: LookupInode(%q) of the other mount's name: %v, want ENOENT", i, other, err)
		}
	}
	fs := fss[0]
	fs.Iput(dirs[0])
	nsClose(t, fs)
	if m, ok := cachedNames(fs, dirs[0]); ok || len(m) != 0 {
		t.Errorf("after Close: %d names cached (held %v), want none", len(m), ok)
	}
	if _, ok := cachedNames(fss[1], dirs[1]); !ok {
		t.Errorf("closing one mount dropped the other's cache")
	}
	fss[1].Iput(dirs[1])
}

// TestEntryOfDeletedInode looks up, unlinks and renames over a name whose
// inode the inode table says is deleted (links 0, dtime set), as in
// e2fsprogs' f_uninit_restart_fsck. As fs/ext2/namei.c:ext2_lookup()
// does, that is a filesystem error, reported as corruption naming the
// directory, the entry and the inode (EIO to a program), not the ESTALE
// of Iget, which would tell a program that a handle it held went stale.
func TestEntryOfDeletedInode(t *testing.T) {
	tests := []struct {
		name string
		op   func(fs *FS, root *Inode) error
	}{
		{"LookupInode", func(fs *FS, root *Inode) error {
			ino, err := fs.LookupInode(root, "f")
			if err == nil {
				fs.Iput(ino)
			}
			return err
		}},
		{"Unlink", func(fs *FS, root *Inode) error { return fs.Unlink(root, "f") }},
		{"Rename over it", func(fs *FS, root *Inode) error { return fs.Rename(root, "g", root, "f", 0) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := t.TempDir()
			writeFile(t, src+"/f", pattern(1, 3000))
			writeFile(t, src+"/g", pattern(2, 3000))
			img := makeImage(t, 1024, 128, 4<<20, src)
			n, inodeOff, _ := fileLoc(t, img, "f")
			patchImage(t, img, inodeOff+20, le32(1))      // i_dtime
			patchImage(t, img, inodeOff+26, []byte{0, 0}) // i_links_count

			fs := mountImage(t, img, Options{})
			root, err := fs.Root()
			if err != nil {
				t.Fatal(err)
			}
			defer fs.Iput(root)
			err = tc.op(fs, root)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s of an entry holding deleted inode %d: got %v, want an error wrapping ErrCorrupt", tc.name, n, err)
			}
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.Inode != root.Ino() {
				t.Errorf("error %q: want a *CorruptError naming directory inode %d", err, root.Ino())
			}
			if want := fmt.Sprintf("entry %q references deleted inode %d", "f", n); !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
			if !fs.HasErrors() {
				t.Errorf("HasErrors() = false after an entry held a deleted inode")
			}
			// The other name is unharmed.
			if ino, err := fs.LookupInode(root, "g"); err != nil {
				t.Errorf("LookupInode of the other name: %v", err)
			} else {
				fs.Iput(ino)
			}
		})
	}
}
