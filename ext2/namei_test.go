package ext2

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/mpagefs/mpage/ext2/layout"
	"github.com/mpagefs/mpage/internal/oracle"
)

// nsFixture is a mounted empty image and its root.
type nsFixture struct {
	t    *testing.T
	img  string
	fs   *FS
	root *Inode
}

func newFixture(t *testing.T, o oracle.MkfsOptions) *nsFixture {
	t.Helper()
	img := oracle.MkfsImage(t, o)
	fs := nsMount(t, img, false)
	root, err := fs.Root()
	if err != nil {
		t.Fatal(err)
	}
	f := &nsFixture{t: t, img: img, fs: fs, root: root}
	return f
}

// dir resolves path to a directory, following symlinks; the reference is
// dropped at cleanup.
func (f *nsFixture) dir(path string) *Inode {
	f.t.Helper()
	ino, err := f.fs.LookupPath(path, true)
	if err != nil {
		f.t.Fatalf("LookupPath(%q): %v", path, err)
	}
	f.t.Cleanup(func() { f.fs.Iput(ino) })
	return ino
}

// parent returns the parent directory of path and the last name.
func (f *nsFixture) parent(path string) (*Inode, string) {
	f.t.Helper()
	d, name, err := f.fs.LookupParent(path)
	if err != nil {
		f.t.Fatalf("LookupParent(%q): %v", path, err)
	}
	f.t.Cleanup(func() { f.fs.Iput(d) })
	return d, name
}

func (f *nsFixture) mkdir(path string) {
	f.t.Helper()
	d, name := f.parent(path)
	ino, err := f.fs.Mkdir(d, name, 0o755, 0, 0)
	if err != nil {
		f.t.Fatalf("Mkdir(%q): %v", path, err)
	}
	f.fs.Iput(ino)
}

func (f *nsFixture) create(path string) {
	f.t.Helper()
	d, name := f.parent(path)
	ino, err := f.fs.Create(d, name, 0o644, 0, 0)
	if err != nil {
		f.t.Fatalf("Create(%q): %v", path, err)
	}
	f.fs.Iput(ino)
}

// writeTo writes data at the start of the regular file at path.
func (f *nsFixture) writeTo(path string, data []byte) {
	f.t.Helper()
	ino, err := f.fs.LookupPath(path, true)
	if err != nil {
		f.t.Fatal(err)
	}
	defer f.fs.Iput(ino)
	fl, err := f.fs.Open(ino, true)
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := fl.WriteAt(data, 0); err != nil {
		f.t.Fatal(err)
	}
	if err := fl.Close(); err != nil {
		f.t.Fatal(err)
	}
}

func (f *nsFixture) rename(from, to string, flags uint) error {
	f.t.Helper()
	od, on := f.parent(from)
	nd, nn := f.parent(to)
	return f.fs.Rename(od, on, nd, nn, flags)
}

// closeClean unmounts and requires e2fsck to find the image clean.
func (f *nsFixture) closeClean() {
	f.t.Helper()
	f.fs.Iput(f.root)
	nsClose(f.t, f.fs)
	oracle.RequireClean(f.t, f.img)
}

// debugfsLinks returns the link count and type debugfs sees at path.
func debugfsStat(t *testing.T, img, path string) *oracle.InodeStat {
	t.Helper()
	return oracle.DebugfsStat(t, img, path)
}

// lsNames returns the names debugfs lists in path, without "." and "..".
func lsNames(t *testing.T, img, path string) []string {
	t.Helper()
	var names []string
	for _, e := range debugfsLs(t, img, path) {
		if e.Name != "." && e.Name != ".." {
			names = append(names, e.Name)
		}
	}
	return names
}

func TestNamespaceSequence(t *testing.T) {
	for _, bs := range []int{1024, 4096} {
		t.Run(fmt.Sprintf("bs%d", bs), func(t *testing.T) {
			f := newFixture(t, oracle.MkfsOptions{BlockSize: bs})
			fs := f.fs
			f.mkdir("/a")
			f.mkdir("/a/b")
			f.mkdir("/gone")
			f.create("/a/file")
			f.writeTo("/a/file", []byte("hello, ext2"))
			a, b := f.dir("/a"), f.dir("/a/b")
			file := lookupT(t, fs, "/a/file")
			if err := fs.Link(file, b, "hard"); err != nil {
				t.Fatalf("Link: %v", err)
			}
			long := strings.Repeat("L", 300)
			for name, target := range map[string]string{"fast": "file", "slow": long, "up": "../a/file"} {
				ino, err := fs.Symlink(a, name, target, 0, 0)
				if err != nil {
					t.Fatalf("Symlink(%s): %v", name, err)
				}
				fs.Iput(ino)
			}
			for _, n := range []struct {
				name         string
				mode         uint16
				major, minor uint32
			}{
				{"chr", layout.ModeChr | 0o600, 1, 3},
				{"blk", layout.ModeBlk | 0o660, 259, 70000},
				{"fifo", layout.ModeFifo | 0o644, 0, 0},
				{"sock", layout.ModeSock | 0o755, 0, 0},
			} {
				ino, err := fs.Mknod(b, n.name, n.mode, n.major, n.minor, 0, 0)
				if err != nil {
					t.Fatalf("Mknod(%s): %v", n.name, err)
				}
				fs.Iput(ino)
			}
			f.create("/a/victim")
			if err := fs.Unlink(a, "victim"); err != nil {
				t.Fatalf("Unlink: %v", err)
			}
			root := f.root
			if err := fs.Rmdir(root, "gone"); err != nil {
				t.Fatalf("Rmdir: %v", err)
			}
			if err := f.rename("/a/b", "/moved", 0); err != nil {
				t.Fatalf("Rename: %v", err)
			}
			// Through the moved directory and the symlinks.
			if got := string(readPath(t, fs, "/moved/hard", 64)); got != "hello, ext2" {
				t.Errorf("/moved/hard: got %q", got)
			}
			via, err := fs.LookupPath("/a/up", true)
			if err != nil || via.Ino() != file.Ino() {
				t.Errorf("LookupPath(/a/up, follow): got %v, %v; want inode %d", via, err, file.Ino())
			}
			if via != nil {
				fs.Iput(via)
			}
			slow := lookupT(t, fs, "/a/slow")
			if got, err := fs.ReadLink(slow); err != nil || got != long {
				t.Errorf("ReadLink(slow): got %d bytes, %v; want %d", len(got), err, len(long))
			}
			f.closeClean()

			img := f.img
			if got, want := lsNames(t, img, "/"), []string{"a", "lost+found", "moved"}; !slices.Equal(got, want) {
				t.Errorf("/: got %v, want %v", got, want)
			}
			if got, want := lsNames(t, img, "/a"), []string{"fast", "file", "slow", "up"}; !slices.Equal(got, want) {
				t.Errorf("/a: got %v, want %v", got, want)
			}
			if got, want := lsNames(t, img, "/moved"), []string{"blk", "chr", "fifo", "hard", "sock"}; !slices.Equal(got, want) {
				t.Errorf("/moved: got %v, want %v", got, want)
			}
			for _, c := range []struct {
				path  string
				typ   string
				links uint32
			}{
				{"/", "directory", 5}, {"/a", "directory", 2}, {"/moved", "directory", 2},
				{"/a/file", "regular", 2}, {"/a/fast", "symlink", 1}, {"/a/slow", "symlink", 1},
				{"/moved/chr", "character special", 1}, {"/moved/blk", "block special", 1},
				{"/moved/fifo", "FIFO", 1}, {"/moved/sock", "socket", 1},
			} {
				st := debugfsStat(t, img, c.path)
				if st.Type != c.typ || st.Links != c.links {
					t.Errorf("%s: got %s with %d links, want %s with %d", c.path, st.Type, st.Links, c.typ, c.links)
				}
			}
			if st := debugfsStat(t, img, "/a/fast"); st.FastLinkDest != "file" || st.Blockcount != 0 {
				t.Errorf("/a/fast: got fast link %q, %d sectors; want \"file\" in the inode", st.FastLinkDest, st.Blockcount)
			}
			if st := debugfsStat(t, img, "/a/slow"); st.Size != uint64(len(long)) || st.Blockcount == 0 {
				t.Errorf("/a/slow: got size %d, %d sectors; want %d bytes in a block", st.Size, st.Blockcount, len(long))
			}
			if got := string(oracle.DebugfsDump(t, img, "/a/slow")); got != long {
				t.Errorf("debugfs dump /a/slow: got %d bytes, want the %d-byte target", len(got), len(long))
			}
			if got := debugfsLs(t, img, "/moved")[1]; got.Name != ".." || got.Ino != 2 {
				t.Errorf("/moved/..: got %+v, want inode 2", got)
			}
			if out := oracle.Debugfs(t, img, "stat /moved/blk"); !strings.Contains(out, "Device major/minor number: 259:70000") {
				t.Errorf("/moved/blk: debugfs stat does not show device 259:70000:\n%s", out)
			}
			if out := oracle.Debugfs(t, img, "stat /moved/chr"); !strings.Contains(out, "Device major/minor number: 01:03") {
				t.Errorf("/moved/chr: debugfs stat does not show device 1:3:\n%s", out)
			}

			// The kernel sees the same tree.
			if os.Geteuid() == 0 {
				mnt := oracle.LoopMount(t, img, true)
				checkKernelTree(t, mnt, long)
			}
		})
	}
}

func checkKernelTree(t *testing.T, mnt, long string) {
	t.Helper()
	if b, err := os.ReadFile(filepath.Join(mnt, "moved/hard")); err != nil || string(b) != "hello, ext2" {
		t.Errorf("kernel: moved/hard: got %q, %v", b, err)
	}
	if s, err := os.Readlink(filepath.Join(mnt, "a/slow")); err != nil || s != long {
		t.Errorf("kernel: readlink a/slow: got %d bytes, %v", len(s), err)
	}
	if s, err := os.Readlink(filepath.Join(mnt, "a/fast")); err != nil || s != "file" {
		t.Errorf("kernel: readlink a/fast: got %q, %v", s, err)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(mnt, "moved/blk"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFBLK || major(st.Rdev) != 259 || minor(st.Rdev) != 70000 {
		t.Errorf("kernel: moved/blk: mode %#o rdev %d:%d, want block device 259:70000", st.Mode, major(st.Rdev), minor(st.Rdev))
	}
	if err := syscall.Stat(filepath.Join(mnt, "moved"), &st); err != nil || st.Nlink != 2 {
		t.Errorf("kernel: moved: %d links, %v", st.Nlink, err)
	}
	ents, err := os.ReadDir(filepath.Join(mnt, "moved"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{"blk", "chr", "fifo", "hard", "sock"}; !slices.Equal(names, want) {
		t.Errorf("kernel: moved: got %v, want %v", names, want)
	}
}

func major(dev uint64) uint32 { return uint32((dev>>8)&0xfff) | uint32(dev>>32)&^0xfff }
func minor(dev uint64) uint32 { return uint32(dev&0xff) | uint32(dev>>12)&^0xff }

// TestManyEntries fills one directory with 10,000 names of varying
// length (3,000 with 1 KiB blocks, enough to need the indirect block:
// every add scans the whole directory, which is slow under -race),
// deletes every other one and adds half of those back.
func TestManyEntries(t *testing.T) {
	name := func(i int) string { return fmt.Sprintf("%d-%s", i, strings.Repeat("n", i%61)) }
	for _, c := range []struct{ bs, n int }{{4096, 10000}, {1024, 3000}} {
		bs, n := c.bs, c.n
		t.Run(fmt.Sprintf("bs%d", bs), func(t *testing.T) {
			f := newFixture(t, oracle.MkfsOptions{BlockSize: bs, SizeBytes: 32 << 20, Inodes: n + 100})
			fs := f.fs
			d, err := fs.Mkdir(f.root, "big", 0o755, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer fs.Iput(d)
			mk := func(i int) {
				ino, err := fs.Mknod(d, name(i), layout.ModeFifo|0o644, 0, 0, 0, 0)
				if err != nil {
					t.Fatalf("Mknod(%s): %v", name(i), err)
				}
				fs.Iput(ino)
			}
			for i := 0; i < n; i++ {
				mk(i)
			}
			for i := 0; i < n; i += 2 {
				if err := fs.Unlink(d, name(i)); err != nil {
					t.Fatalf("Unlink(%s): %v", name(i), err)
				}
			}
			sizeBefore := d.Size()
			for i := 0; i < n; i += 4 {
				mk(i)
			}
			if d.Size() != sizeBefore {
				t.Errorf("re-adding a quarter of the names grew the directory from %d to %d bytes; the freed records should be reused", sizeBefore, d.Size())
			}
			ents, _, err := fs.ReadDirFrom(d, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			for _, e := range ents {
				got[e.Name] = true
			}
			for i := 0; i < n; i++ {
				want := i%2 == 1 || i%4 == 0
				if got[name(i)] != want {
					t.Fatalf("%s: present %v, want %v", name(i), got[name(i)], want)
				}
			}
			if bs == 1024 && d.Size() <= 12*1024 {
				t.Errorf("directory of %d bytes does not reach the indirect block", d.Size())
			}
			if len(ents) != 2+n/2+n/4 {
				t.Errorf("got %d entries, want %d", len(ents), 2+n/2+n/4)
			}
			f.closeClean()
			if got := len(lsNames(t, f.img, "/big")); got != n/2+n/4 {
				t.Errorf("debugfs lists %d names in /big, want %d", got, n/2+n/4)
			}
		})
	}
}

func TestDeepNesting(t *testing.T) {
	f := newFixture(t, oracle.MkfsOptions{BlockSize: 1024})
	const depth = 100
	path := ""
	for i := 0; i < depth; i++ {
		path += fmt.Sprintf("/d%d", i)
		f.mkdir(path)
	}
	f.create(path + "/leaf")
	// ".." all the way up and down again.
	up := path + strings.Repeat("/..", depth) + "/d0"
	if got, want := lookupT(t, f.fs, up).Ino(), lookupT(t, f.fs, "/d0").Ino(); got != want {
		t.Errorf("%d levels of \"..\": got inode %d, want %d", depth, got, want)
	}
	f.closeClean()
	if st := debugfsStat(t, f.img, path+"/leaf"); st.Type != "regular" {
		t.Errorf("leaf: got %s", st.Type)
	}
}

func TestRename(t *testing.T) {
	type setup func(f *nsFixture)
	files := func(paths ...string) setup {
		return func(f *nsFixture) {
			for _, p := range paths {
				if strings.HasSuffix(p, "/") {
					f.mkdir(strings.TrimSuffix(p, "/"))
				} else {
					f.create(p)
				}
			}
		}
	}
	tests := []struct {
		name     string
		setup    setup
		from, to string
		flags    uint
		wantErr  error
		present  []string       // paths that must exist afterwards
		absent   []string       // paths that must not
		links    map[string]int // link counts afterwards
	}{
		{name: "file over file", setup: files("/x", "/y"), from: "/x", to: "/y",
			present: []string{"/y"}, absent: []string{"/x"}},
		{name: "file to new name", setup: files("/x"), from: "/x", to: "/z",
			present: []string{"/z"}, absent: []string{"/x"}},
		{name: "dir over empty dir", setup: files("/d/", "/d/f", "/e/"), from: "/d", to: "/e",
			present: []string{"/e/f"}, absent: []string{"/d"}, links: map[string]int{"/": 4, "/e": 2}},
		{name: "dir over non-empty dir", setup: files("/d/", "/e/", "/e/f"), from: "/d", to: "/e",
			wantErr: syscall.ENOTEMPTY, present: []string{"/d", "/e/f"}},
		{name: "dir into own subtree", setup: files("/d/", "/d/s/"), from: "/d", to: "/d/s/t",
			wantErr: syscall.EINVAL, present: []string{"/d/s"}},
		{name: "dir onto itself as child", setup: files("/d/"), from: "/d", to: "/d/d",
			wantErr: syscall.EINVAL, present: []string{"/d"}},
		{name: "dir over ancestor", setup: files("/a/", "/a/b/", "/a/b/c/"), from: "/a/b/c", to: "/a",
			wantErr: syscall.ENOTEMPTY, present: []string{"/a/b/c"}},
		{name: "dir across directories", setup: files("/p/", "/p/d/", "/p/d/f", "/q/"), from: "/p/d", to: "/q/d",
			present: []string{"/q/d/f"}, absent: []string{"/p/d"},
			links: map[string]int{"/p": 2, "/q": 3, "/q/d": 2}},
		{name: "file across directories", setup: files("/p/", "/p/f", "/q/"), from: "/p/f", to: "/q/g",
			present: []string{"/q/g"}, absent: []string{"/p/f"}, links: map[string]int{"/p": 2, "/q": 2}},
		{name: "onto itself", setup: files("/x"), from: "/x", to: "/x", present: []string{"/x"}},
		{name: "noreplace", setup: files("/x", "/y"), from: "/x", to: "/y", flags: RenameNoReplace,
			wantErr: syscall.EEXIST, present: []string{"/x", "/y"}},
		{name: "dir over file", setup: files("/d/", "/y"), from: "/d", to: "/y",
			wantErr: syscall.ENOTDIR, present: []string{"/d", "/y"}},
		{name: "file over dir", setup: files("/x", "/e/"), from: "/x", to: "/e",
			wantErr: syscall.EISDIR, present: []string{"/x", "/e"}},
		{name: "missing source", setup: files("/y"), from: "/x", to: "/y",
			wantErr: syscall.ENOENT, present: []string{"/y"}},
		{name: "dot", setup: files("/d/"), from: "/d/.", to: "/e", wantErr: syscall.EINVAL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, oracle.MkfsOptions{BlockSize: 1024})
			tc.setup(f)
			err := f.rename(tc.from, tc.to, tc.flags)
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("Rename(%s, %s): %v", tc.from, tc.to, err)
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Fatalf("Rename(%s, %s): got %v, want %v", tc.from, tc.to, err, tc.wantErr)
			}
			f.closeClean()
			for _, p := range tc.present {
				if out, errs := oracle.DebugfsOutput(t, f.img, "stat "+p); strings.TrimSpace(out) == "" {
					t.Errorf("%s missing: %s", p, errs)
				}
			}
			for _, p := range tc.absent {
				if out, _ := oracle.DebugfsOutput(t, f.img, "stat "+p); strings.TrimSpace(out) != "" {
					t.Errorf("%s still present", p)
				}
			}
			for p, want := range tc.links {
				if got := debugfsStat(t, f.img, p).Links; got != uint32(want) {
					t.Errorf("%s: got %d links, want %d", p, got, want)
				}
			}
		})
	}
}

func TestNameErrors(t *testing.T) {
	f := newFixture(t, oracle.MkfsOptions{BlockSize: 1024})
	fs, root := f.fs, f.root
	f.mkdir("/d")
	f.create("/d/file")
	d, file := f.dir("/d"), f.dir("/d/file")
	tests := []struct {
		name string
		op   func() error
		want error
	}{
		{"name too long", func() error { _, err := fs.Create(root, strings.Repeat("x", 256), 0o644, 0, 0); return err }, syscall.ENAMETOOLONG},
		{"slash in name", func() error { _, err := fs.Create(root, "a/b", 0o644, 0, 0); return err }, syscall.EINVAL},
		{"nul in name", func() error { _, err := fs.Create(root, "a\x00b", 0o644, 0, 0); return err }, syscall.EINVAL},
		{"empty name", func() error { _, err := fs.Mkdir(root, "", 0o755, 0, 0); return err }, syscall.EINVAL},
		{"exists", func() error { _, err := fs.Create(d, "file", 0o644, 0, 0); return err }, syscall.EEXIST},
		{"mkdir dot", func() error { _, err := fs.Mkdir(d, ".", 0o755, 0, 0); return err }, syscall.EEXIST},
		{"create in file", func() error { _, err := fs.Create(file, "x", 0o644, 0, 0); return err }, syscall.ENOTDIR},
		{"unlink missing", func() error { return fs.Unlink(d, "nope") }, syscall.ENOENT},
		{"unlink dir", func() error { return fs.Unlink(root, "d") }, syscall.EISDIR},
		{"rmdir file", func() error { return fs.Rmdir(d, "file") }, syscall.ENOTDIR},
		{"rmdir non-empty", func() error { return fs.Rmdir(root, "d") }, syscall.ENOTEMPTY},
		{"rmdir dot", func() error { return fs.Rmdir(d, ".") }, syscall.EINVAL},
		{"rmdir dotdot", func() error { return fs.Rmdir(d, "..") }, syscall.ENOTEMPTY},
		{"link dir", func() error { return fs.Link(d, root, "d2") }, syscall.EPERM},
		{"symlink too long", func() error { _, err := fs.Symlink(root, "s", strings.Repeat("t", 1024), 0, 0); return err }, syscall.ENAMETOOLONG},
		{"mknod dir", func() error { _, err := fs.Mknod(root, "m", layout.ModeDir|0o755, 0, 0, 0, 0); return err }, syscall.EINVAL},
		{"lookup missing", func() error { _, err := fs.LookupPath("/d/nope", false); return err }, syscall.ENOENT},
		{"lookup through file", func() error { _, err := fs.LookupPath("/d/file/x", false); return err }, syscall.ENOTDIR},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.op(); !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("symlink of blocksize-1", func(t *testing.T) {
		ino, err := fs.Symlink(root, "max", strings.Repeat("t", 1023), 0, 0)
		if err != nil {
			t.Fatalf("got %v, want success", err)
		}
		fs.Iput(ino)
	})
	t.Run("loop", func(t *testing.T) {
		for _, l := range [][2]string{{"l1", "l2"}, {"l2", "/l1"}} {
			ino, err := fs.Symlink(root, l[0], l[1], 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			fs.Iput(ino)
		}
		if _, err := fs.LookupPath("/l1/x", false); !errors.Is(err, syscall.ELOOP) {
			t.Errorf("LookupPath through a loop: got %v, want ELOOP", err)
		}
		ino, err := fs.LookupPath("/l1", false)
		if err != nil || !ino.IsSymlink() {
			t.Errorf("LookupPath(/l1, nofollow): got %v, %v; want the link itself", ino, err)
		} else {
			fs.Iput(ino)
		}
	})
	t.Run("EMLINK", func(t *testing.T) {
		file.Lock()
		file.UpdateLocked(func(di *layout.Inode) { di.LinksCount = LinkMax })
		file.Unlock()
		err := fs.Link(file, d, "one-too-many")
		file.Lock()
		file.UpdateLocked(func(di *layout.Inode) { di.LinksCount = 1 })
		file.Unlock()
		if !errors.Is(err, syscall.EMLINK) {
			t.Errorf("Link at %d links: got %v, want EMLINK", LinkMax, err)
		}
	})
	f.closeClean()

	t.Run("EROFS", func(t *testing.T) {
		fs := nsMount(t, f.img, true)
		root, err := fs.Root()
		if err != nil {
			t.Fatal(err)
		}
		defer fs.Iput(root)
		if _, err := fs.Create(root, "x", 0o644, 0, 0); !errors.Is(err, syscall.EROFS) {
			t.Errorf("Create on a read-only mount: got %v, want EROFS", err)
		}
		if err := fs.Rmdir(root, "d"); !errors.Is(err, syscall.EROFS) {
			t.Errorf("Rmdir on a read-only mount: got %v, want EROFS", err)
		}
	})
}

func TestUnlinkedOpenStaysReadable(t *testing.T) {
	f := newFixture(t, oracle.MkfsOptions{BlockSize: 1024})
	fs := f.fs
	f.create("/f")
	data := []byte(strings.Repeat("data", 3000))
	f.writeTo("/f", data)
	ino, err := fs.LookupPath("/f", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.Unlink(f.root, "f"); err != nil {
		t.Fatal(err)
	}
	fl, err := fs.Open(ino, false)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(data))
	if n, err := fl.ReadAt(buf, 0); n != len(data) || string(buf) != string(data) {
		t.Errorf("reading the unlinked file: got %d bytes, %v", n, err)
	}
	fl.Close()
	fs.Iput(ino)
	f.closeClean()
	if got := lsNames(t, f.img, "/"); !slices.Equal(got, []string{"lost+found"}) {
		t.Errorf("/: got %v", got)
	}
}

func TestConcurrentCreates(t *testing.T) {
	f := newFixture(t, oracle.MkfsOptions{BlockSize: 4096})
	fs := f.fs
	f.mkdir("/c")
	d := f.dir("/c")
	const workers, each = 8, 60
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				name := fmt.Sprintf("w%d-%d", w, i)
				var ino *Inode
				var err error
				if i%3 == 0 {
					ino, err = fs.Mkdir(d, name, 0o755, 0, 0)
				} else {
					ino, err = fs.Create(d, name, 0o644, 0, 0)
				}
				if err != nil {
					errs <- fmt.Errorf("%s: %w", name, err)
					return
				}
				fs.Iput(ino)
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	f.closeClean()
	if got := len(lsNames(t, f.img, "/c")); got != workers*each {
		t.Errorf("debugfs lists %d names, want %d", got, workers*each)
	}
	if got, want := debugfsStat(t, f.img, "/c").Links, uint32(2+workers*each/3); got != want {
		t.Errorf("/c: got %d links, want %d", got, want)
	}
}

func TestDirIndexReadLinearlyAndChanged(t *testing.T) {
	src := t.TempDir()
	const n = 400
	for i := 0; i < n; i++ {
		writeFile(t, filepath.Join(src, "h", fmt.Sprintf("file-with-a-longish-name-%04d", i)), nil)
	}
	img := oracle.MkfsImage(t, oracle.MkfsOptions{BlockSize: 1024, Features: "dir_index", FromDir: src})
	// e2fsck -D indexes the directory; it exits 1 when it changed things.
	prog := oracle.Tool(t, "e2fsck")
	if out, err := runCmd(prog, "-fyD", img); err != nil && !strings.Contains(err.Error(), "exit status 1") {
		t.Fatalf("e2fsck -fyD: %v\n%s", err, out)
	}
	st := debugfsStat(t, img, "/h")
	if st.Flags&layout.FlIndex == 0 {
		t.Skipf("e2fsck -D did not index /h (flags %#x)", st.Flags)
	}
	if out := oracle.Debugfs(t, img, "htree /h"); !strings.Contains(out, "Root node dump") {
		t.Fatalf("debugfs htree /h does not show an index:\n%s", out)
	}
	fs := nsMount(t, img, false)
	if dirs := compareWithDebugfs(t, fs, img, "/h", 0); dirs != 1 {
		t.Errorf("compared %d directories", dirs)
	}
	h := lookupT(t, fs, "/h")
	if _, err := fs.LookupIn(h, "file-with-a-longish-name-0399"); err != nil {
		t.Errorf("LookupIn: %v", err)
	}
	ino, err := fs.Create(h, "new-file", 0o644, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	fs.Iput(ino)
	if err := fs.Unlink(h, "file-with-a-longish-name-0007"); err != nil {
		t.Fatal(err)
	}
	if h.Stat().Flags&layout.FlIndex != 0 {
		t.Errorf("the index flag is still set after changes")
	}
	fs.Iput(h)
	nsClose(t, fs)
	oracle.RequireClean(t, img)
	if st := debugfsStat(t, img, "/h"); st.Flags&layout.FlIndex != 0 {
		t.Errorf("on disk: flags %#x still have EXT2_INDEX_FL", st.Flags)
	}
	names := lsNames(t, img, "/h")
	if len(names) != n || !slices.Contains(names, "new-file") || slices.Contains(names, "file-with-a-longish-name-0007") {
		t.Errorf("debugfs lists %d names in /h, want %d with new-file and without file 7", len(names), n)
	}
}

// runCmd runs a program and returns its combined output.
func runCmd(prog string, args ...string) (string, error) {
	out, err := exec.Command(prog, args...).CombinedOutput()
	return string(out), err
}

// TestNoFiletype changes a filesystem without the filetype feature,
// whose entries have a 16-bit name_len and no file type.
func TestNoFiletype(t *testing.T) {
	f := newFixture(t, oracle.MkfsOptions{BlockSize: 1024, Features: "^filetype"})
	if f.fs.filetype {
		t.Fatal("mke2fs -O ^filetype made a filesystem with filetype")
	}
	f.mkdir("/d")
	f.create("/d/x")
	f.mkdir("/e")
	if err := f.rename("/d/x", "/e/y", 0); err != nil {
		t.Fatal(err)
	}
	if err := f.rename("/d", "/e/d", 0); err != nil {
		t.Fatal(err)
	}
	ents := readDirAll(t, f.fs, f.dir("/e"), 0)
	for _, e := range ents {
		if e.Type != layout.FtUnknown {
			t.Errorf("%s: got file type %d, want FtUnknown", e.Name, e.Type)
		}
	}
	f.closeClean()
	if got, want := lsNames(t, f.img, "/e"), []string{"d", "y"}; !slices.Equal(got, want) {
		t.Errorf("/e: got %v, want %v", got, want)
	}
	if got := debugfsStat(t, f.img, "/e").Links; got != 3 {
		t.Errorf("/e: got %d links, want 3", got)
	}
}
