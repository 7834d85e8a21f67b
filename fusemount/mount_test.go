package fusemount

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mpagefs/mpage/ext2fs"
	"github.com/mpagefs/mpage/internal/oracle"
	"golang.org/x/sys/unix"
)

// requireFuse skips the test where a FUSE mount cannot be made: no
// /dev/fuse, no fusermount3, or not root (the tests chown, use
// allow_other and loop mounts).
func requireFuse(t *testing.T) { oracle.RequireFUSE(t) }

// mounted is a filesystem mounted for a test.
type mounted struct {
	image string
	fsys  *ext2fs.FS
	srv   *Server
	dir   string
	done  bool
	// tracked registers the mount with the FUSE reaper (main_test.go).
	tracked *oracle.FUSEMount
}

// mountImage opens image and mounts it at a new directory. The mount is
// undone in t.Cleanup if the test did not unmount it.
func mountImage(t *testing.T, image string, opts Options) *mounted {
	t.Helper()
	requireFuse(t)
	return mountTB(t, image, opts)
}

func mountTB(t testing.TB, image string, opts Options) *mounted {
	t.Helper()
	return mountCache(t, image, opts, 16<<20)
}

// mountCache is mountTB with a page cache of cache bytes.
func mountCache(t testing.TB, image string, opts Options, cache int64) *mounted {
	t.Helper()
	fsys, err := ext2fs.Open(image, ext2fs.Options{ReadOnly: opts.ReadOnly, CacheLimit: cache})
	if err != nil {
		t.Fatalf("ext2fs.Open(%s): %v", image, err)
	}
	return mountFS(t, image, fsys, opts)
}

// mountFS mounts fsys, opened from image, at a new directory; the mount
// is registered with the FUSE reaper and undone in t.Cleanup if the test
// did not unmount it (closing fsys).
func mountFS(t testing.TB, image string, fsys *ext2fs.FS, opts Options) *mounted {
	t.Helper()
	dir := t.TempDir()
	opts.FsName = image
	srv, err := Mount(fsys, dir, opts)
	if err != nil {
		fsys.Close()
		t.Fatalf("Mount: %v", err)
	}
	m := &mounted{image: image, fsys: fsys, srv: srv, dir: dir}
	m.tracked = oracle.TrackFUSEMount(t, dir)
	t.Cleanup(func() {
		if m.done {
			return
		}
		if err := srv.Unmount(); err != nil {
			// Busy or hung: abort the connection, so that nothing
			// waits on it any more.
			if aerr := m.tracked.Abort(); aerr != nil {
				exec.Command("fusermount3", "-u", "-z", dir).Run()
			}
		}
		waited := make(chan struct{})
		go func() { srv.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(30 * time.Second):
			t.Errorf("the server of %s did not stop within 30 s of the unmount: aborting its connection", dir)
			m.tracked.Abort()
			<-waited
		}
		m.tracked.Untrack()
		fsys.Close()
	})
	return m
}

// unmount unmounts, waits for the server and closes the filesystem,
// which must write everything back without error.
func (m *mounted) unmount(t *testing.T) {
	t.Helper()
	if err := m.srv.Unmount(); err != nil {
		t.Fatalf("Unmount: %v", err)
	}
	m.srv.Wait()
	m.tracked.Untrack()
	m.done = true
	if err := m.fsys.Close(); err != nil {
		t.Fatalf("closing the filesystem after unmount: %v", err)
	}
}

func (m *mounted) path(rel string) string { return filepath.Join(m.dir, rel) }

// run runs a command and fails the test with its output if it fails.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// sh runs a shell pipeline.
func sh(t *testing.T, script string) {
	t.Helper()
	run(t, "sh", "-c", "set -e; "+script)
}

// treeImage makes an image with mke2fs -d from oracle.DefaultTree.
func treeImage(t *testing.T) (image, src string) {
	t.Helper()
	src = filepath.Join(t.TempDir(), "tree")
	oracle.GenerateTree(t, src, oracle.DefaultTree)
	image = oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 16 << 20, FromDir: src})
	return image, src
}

var compareAll = oracle.CompareOptions{Owners: true, Times: true, Ignore: []string{"lost+found"}}

// TestTreeThroughMount reads an image made by mke2fs -d through the
// mount: the same tree, the same inode numbers as ext2fs sees, stable
// across lookups and shared by hard links.
func TestTreeThroughMount(t *testing.T) {
	image, src := treeImage(t)
	m := mountImage(t, image, Options{})
	oracle.CompareTrees(t, src, m.dir, compareAll)
	out, err := exec.Command("diff", "-r", "--no-dereference", src, m.dir).CombinedOutput()
	if err != nil {
		// lost+found is the only difference diff may find; it cannot
		// compare fifos (CompareTrees did).
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			bothFifos := strings.Count(line, " is a fifo") == 2
			if !strings.Contains(line, "lost+found") && !bothFifos {
				t.Errorf("diff -r: %s", line)
			}
		}
	}

	var st syscall.Stat_t
	if err := syscall.Stat(m.dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Ino != 2 {
		t.Errorf("root inode number: got %d, want 2", st.Ino)
	}
	inodes := map[uint64]string{}
	err = filepath.WalkDir(m.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(m.dir, p)
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		fi, err := m.fsys.Lstat(rel)
		if err != nil {
			return err
		}
		ii := fi.Sys().(*ext2fs.InodeInfo)
		if st.Ino != uint64(ii.Ino) {
			t.Errorf("%s: inode number through the mount %d, ext2fs %d", rel, st.Ino, ii.Ino)
		}
		if st.Nlink != uint64(ii.Nlink) || st.Uid != ii.UID || st.Gid != ii.GID || st.Blocks != int64(ii.Blocks) {
			t.Errorf("%s: nlink/uid/gid/blocks through the mount %d/%d/%d/%d, ext2fs %d/%d/%d/%d",
				rel, st.Nlink, st.Uid, st.Gid, st.Blocks, ii.Nlink, ii.UID, ii.GID, ii.Blocks)
		}
		if prev, ok := inodes[st.Ino]; ok && !d.IsDir() {
			if st.Nlink < 2 {
				t.Errorf("%s and %s share inode %d with %d links", prev, rel, st.Ino, st.Nlink)
			}
		}
		inodes[st.Ino] = rel
		return nil
	})
	if err != nil {
		t.Fatalf("walking the mount: %v", err)
	}
	m.unmount(t)
	oracle.RequireClean(t, image)
}

// TestCopyInAndTar copies a tree in with cp -a and with tar through the
// mount, reads it back out with tar, and checks the image afterwards
// with e2fsck and with the kernel's own ext2 driver.
func TestCopyInAndTar(t *testing.T) {
	src := filepath.Join(t.TempDir(), "tree")
	oracle.GenerateTree(t, src, oracle.DefaultTree)
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 32 << 20})
	m := mountImage(t, image, Options{})

	run(t, "cp", "-a", src, m.path("cp"))
	if err := os.Mkdir(m.path("tar"), 0o755); err != nil {
		t.Fatal(err)
	}
	sh(t, "tar -C '"+src+"' -cf - . | tar -C '"+m.path("tar")+"' -xpf -")
	oracle.CompareTrees(t, src, m.path("cp"), oracle.CompareOptions{Owners: true, Times: true})
	oracle.CompareTrees(t, src, m.path("tar"), oracle.CompareOptions{Owners: true, Times: true})

	out := filepath.Join(t.TempDir(), "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	sh(t, "tar -C '"+m.path("cp")+"' -cf - . | tar -C '"+out+"' -xpf -")
	oracle.CompareTrees(t, src, out, oracle.CompareOptions{Owners: true, Times: true})

	m.unmount(t)
	oracle.RequireClean(t, image)
	loop := oracle.LoopMount(t, image, true)
	oracle.CompareTrees(t, src, filepath.Join(loop, "cp"), oracle.CompareOptions{Owners: true, Times: true})
	oracle.CompareTrees(t, src, filepath.Join(loop, "tar"), oracle.CompareOptions{Owners: true, Times: true})
}

// TestOpenFileMovedByAnotherProcess renames and then unlinks a file
// from another process while this one holds it open: reads and writes
// through the descriptor go on, fstat shows no links, and the inode is
// freed at the last close (e2fsck finds no orphan).
func TestOpenFileMovedByAnotherProcess(t *testing.T) {
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 8 << 20})
	m := mountImage(t, image, Options{})
	want := bytes.Repeat([]byte("0123456789abcdef"), 1000)
	if err := os.WriteFile(m.path("a"), want, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(m.path("a"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	run(t, "mv", m.path("a"), m.path("b"))
	got := make([]byte, len(want))
	if _, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read after rename by another process: err %v, equal %v", err, bytes.Equal(got, want))
	}
	if b, err := os.ReadFile(m.path("b")); err != nil || !bytes.Equal(b, want) {
		t.Fatalf("reading the new name: err %v, equal %v", err, bytes.Equal(b, want))
	}
	run(t, "rm", m.path("b"))
	if _, err := os.Lstat(m.path("b")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Lstat of the removed name: got %v, want ENOENT", err)
	}
	if _, err := f.WriteAt([]byte("tail"), int64(len(want))); err != nil {
		t.Fatalf("write after unlink: %v", err)
	}
	if err := f.Sync(); err != nil {
		t.Fatalf("fsync after unlink: %v", err)
	}
	got = make([]byte, len(want)+4)
	if _, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, append(want, "tail"...)) {
		t.Fatalf("read after unlink: err %v", err)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatalf("fstat after unlink: %v", err)
	}
	if st.Nlink != 0 || st.Size != int64(len(want)+4) {
		t.Errorf("fstat after unlink: nlink %d size %d, want 0 and %d", st.Nlink, st.Size, len(want)+4)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	m.unmount(t)
	oracle.RequireClean(t, image)
}

// TestWriteFsyncReadBack writes with pwrite, fsyncs the file and its
// directory, and finds the data both through a new descriptor and in the
// image itself (debugfs) while still mounted.
func TestWriteFsyncReadBack(t *testing.T) {
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 16 << 20})
	m := mountImage(t, image, Options{})
	rng := rand.New(rand.NewPCG(7, 7))
	want := make([]byte, 3<<20+123)
	for i := range want {
		want[i] = byte(rng.Uint32())
	}
	f, err := os.OpenFile(m.path("data"), os.O_CREATE|os.O_RDWR|os.O_EXCL, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	// Written back to front in 64 KiB pieces, so nothing is sequential.
	for off := len(want) - len(want)%(64<<10); off >= 0; off -= 64 << 10 {
		end := min(off+64<<10, len(want))
		if _, err := f.WriteAt(want[off:end], int64(off)); err != nil {
			t.Fatalf("WriteAt %d: %v", off, err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatalf("fsync: %v", err)
	}
	d, err := os.Open(m.dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(); err != nil {
		t.Fatalf("fsync of the directory: %v", err)
	}
	d.Close()
	got, err := os.ReadFile(m.path("data"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read back through a new descriptor: err %v, %d bytes, equal %v", err, len(got), bytes.Equal(got, want))
	}
	if dump := oracle.DebugfsDump(t, image, "/data"); !bytes.Equal(dump, want) {
		t.Errorf("debugfs dump of the fsynced file while mounted: %d bytes, equal %v; want %d bytes", len(dump), bytes.Equal(dump, want), len(want))
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	m.unmount(t)
	oracle.RequireClean(t, image)
}

// TestReadOnlyMount refuses every change with EROFS and leaves the image
// as it was.
func TestReadOnlyMount(t *testing.T) {
	image, src := treeImage(t)
	before, err := os.ReadFile(image)
	if err != nil {
		t.Fatal(err)
	}
	m := mountImage(t, image, Options{ReadOnly: true})
	oracle.CompareTrees(t, src, m.dir, compareAll)
	changes := []struct {
		name string
		do   func() error
	}{
		{"create", func() error { return os.WriteFile(m.path("new"), nil, 0o644) }},
		{"open for writing", func() error {
			f, err := os.OpenFile(m.path("hard-a"), os.O_WRONLY, 0)
			if err == nil {
				f.Close()
			}
			return err
		}},
		{"mkdir", func() error { return os.Mkdir(m.path("d"), 0o755) }},
		{"remove", func() error { return os.Remove(m.path("hard-a")) }},
		{"rename", func() error { return os.Rename(m.path("hard-a"), m.path("g")) }},
		{"chmod", func() error { return os.Chmod(m.path("hard-a"), 0o600) }},
		{"symlink", func() error { return os.Symlink("x", m.path("l")) }},
	}
	for _, c := range changes {
		t.Run(c.name, func(t *testing.T) {
			if err := c.do(); !errors.Is(err, syscall.EROFS) {
				t.Errorf("got %v, want EROFS", err)
			}
		})
	}
	m.unmount(t)
	after, err := os.ReadFile(image)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Errorf("a read-only mount changed the image")
	}
}

// TestPermissions checks that the kernel enforces modes and owners
// (default_permissions) for another user let in with AllowOther, and that
// what that user creates is theirs.
func TestPermissions(t *testing.T) {
	requireFuse(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("no setpriv to run commands as another user")
	}
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 8 << 20})
	m := mountImage(t, image, Options{AllowOther: true})
	if err := os.WriteFile(m.path("public"), []byte("public\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(m.path("secret"), []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(m.path("shared"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(m.path("shared"), 0o777); err != nil { // past the umask
		t.Fatal(err)
	}
	// The mount point itself (a t.TempDir) must let the user through.
	if err := os.Chmod(m.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(m.dir), 0o755); err != nil {
		t.Fatal(err)
	}
	as := func(args ...string) ([]byte, error) {
		cmd := exec.Command(setpriv, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--"}, args...)...)
		return cmd.CombinedOutput()
	}
	if out, err := as("cat", m.path("public")); err != nil || string(out) != "public\n" {
		t.Errorf("another user reading a 0644 file: %v, %q", err, out)
	}
	if out, err := as("cat", m.path("secret")); err == nil || !strings.Contains(string(out), "Permission denied") {
		t.Errorf("another user reading a 0600 file of root: err %v, output %q; want Permission denied", err, out)
	}
	if out, err := as("touch", m.path("mine")); err == nil || !strings.Contains(string(out), "Permission denied") {
		t.Errorf("another user creating in root's 0755 directory: err %v, output %q; want Permission denied", err, out)
	}
	if out, err := as("sh", "-c", "umask 022; echo hi > "+m.path("shared/theirs")+" && mkdir "+m.path("shared/dir")); err != nil {
		t.Fatalf("another user creating in a 0777 directory: %v\n%s", err, out)
	}
	for _, name := range []string{"shared/theirs", "shared/dir"} {
		var st syscall.Stat_t
		if err := syscall.Lstat(m.path(name), &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != 65534 || st.Gid != 65534 {
			t.Errorf("%s: owner %d:%d, want 65534:65534", name, st.Uid, st.Gid)
		}
		wantPerm := uint32(0o644)
		if name == "shared/dir" {
			wantPerm = 0o755
		}
		if st.Mode&0o7777 != wantPerm {
			t.Errorf("%s: mode %o, want %o (umask applied)", name, st.Mode&0o7777, wantPerm)
		}
	}
	if out, err := as("chmod", "600", m.path("public")); err == nil {
		t.Errorf("another user chmod of root's file succeeded: %s", out)
	}
	m.unmount(t)
	oracle.RequireClean(t, image)
	// The owners are in the image.
	if out := oracle.Debugfs(t, image, "stat /shared/theirs"); !strings.Contains(out, "User: 65534") {
		t.Errorf("debugfs stat /shared/theirs: want User: 65534 in\n%s", out)
	}
}

// TestSetattrAndSpecialFiles changes modes, owners, times and sizes and
// makes device nodes, fifos and links through the mount, and finds the
// same attributes in the image through the kernel's ext2 driver.
func TestSetattrAndSpecialFiles(t *testing.T) {
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 8 << 20})
	m := mountImage(t, image, Options{})
	if err := os.WriteFile(m.path("f"), bytes.Repeat([]byte{'x'}, 10000), 0o644); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	steps := []struct {
		name string
		do   func() error
	}{
		// chown clears set-user-ID (even by root): chmod after it.
		{"chown", func() error { return os.Chown(m.path("f"), 1234, 5678) }},
		{"chmod", func() error { return syscall.Chmod(m.path("f"), 0o4751) }},
		{"truncate", func() error { return os.Truncate(m.path("f"), 3000) }},
		{"chtimes", func() error { return os.Chtimes(m.path("f"), mtime, mtime) }},
		{"mknod char", func() error { return syscall.Mknod(m.path("null"), syscall.S_IFCHR|0o644, int(unix.Mkdev(1, 3))) }},
		{"mknod block", func() error { return syscall.Mknod(m.path("blk"), syscall.S_IFBLK|0o600, int(unix.Mkdev(259, 70000))) }},
		{"mkfifo", func() error { return syscall.Mkfifo(m.path("fifo"), 0o640) }},
		{"symlink", func() error { return os.Symlink("f", m.path("link")) }},
		{"lchown symlink", func() error { return os.Lchown(m.path("link"), 42, 43) }},
		{"link", func() error { return os.Link(m.path("f"), m.path("f2")) }},
		{"sticky dir", func() error {
			if err := os.Mkdir(m.path("tmp"), 0o777); err != nil {
				return err
			}
			return os.Chmod(m.path("tmp"), 0o777|os.ModeSticky)
		}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s through the mount: %v", s.name, err)
		}
	}
	check := func(where, root string) {
		t.Helper()
		type want struct {
			mode     uint32
			uid, gid uint32
			size     int64
			rdev     uint64
			nlink    uint64
		}
		wants := map[string]want{
			"f":    {mode: syscall.S_IFREG | 0o4751, uid: 1234, gid: 5678, size: 3000, nlink: 2},
			"f2":   {mode: syscall.S_IFREG | 0o4751, uid: 1234, gid: 5678, size: 3000, nlink: 2},
			"null": {mode: syscall.S_IFCHR | 0o644, rdev: unix.Mkdev(1, 3), nlink: 1},
			"blk":  {mode: syscall.S_IFBLK | 0o600, rdev: unix.Mkdev(259, 70000), nlink: 1},
			"fifo": {mode: syscall.S_IFIFO | 0o640, nlink: 1},
			"link": {mode: syscall.S_IFLNK | 0o777, uid: 42, gid: 43, size: 1, nlink: 1},
			"tmp":  {mode: syscall.S_IFDIR | 0o1777, nlink: 2},
		}
		for name, w := range wants {
			var st syscall.Stat_t
			if err := syscall.Lstat(filepath.Join(root, name), &st); err != nil {
				t.Errorf("%s: lstat %s: %v", where, name, err)
				continue
			}
			got := want{mode: st.Mode, uid: st.Uid, gid: st.Gid, rdev: st.Rdev, nlink: st.Nlink}
			if st.Mode&syscall.S_IFMT == syscall.S_IFREG || st.Mode&syscall.S_IFMT == syscall.S_IFLNK {
				got.size = st.Size
			}
			if name == "tmp" || name == "null" || name == "blk" || name == "fifo" {
				got.uid, got.gid = w.uid, w.gid // made by root: 0:0
			}
			if got != w {
				t.Errorf("%s: %s: got %+v, want %+v", where, name, got, w)
			}
		}
		fi, err := os.Stat(filepath.Join(root, "f"))
		if err != nil || !fi.ModTime().Equal(mtime) {
			t.Errorf("%s: mtime of f: %v (%v), want %v", where, fi.ModTime(), err, mtime)
		}
	}
	check("through the mount", m.dir)
	m.unmount(t)
	oracle.RequireClean(t, image)
	check("kernel loop mount", oracle.LoopMount(t, image, true))
}

// TestConcurrentNamespace creates, renames across directories, stats,
// lists and removes files from several goroutines at once; every
// operation must succeed, and the image must be clean afterwards.
func TestConcurrentNamespace(t *testing.T) {
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 16 << 20})
	m := mountImage(t, image, Options{})
	const workers, rounds = 4, 60
	for i := range workers {
		if err := os.Mkdir(m.path(fmt.Sprintf("w%d", i)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(m.path("shared"), 0o755); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	stop := make(chan struct{})
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				name := m.path(fmt.Sprintf("w%d/f%d", w, r))
				data := bytes.Repeat([]byte{byte(w), byte(r)}, 1000*(r%5+1))
				if err := os.WriteFile(name, data, 0o644); err != nil {
					errs <- err
					return
				}
				moved := m.path(fmt.Sprintf("shared/w%d-f%d", w, r))
				if err := os.Rename(name, moved); err != nil {
					errs <- err
					return
				}
				got, err := os.ReadFile(moved)
				if err != nil || !bytes.Equal(got, data) {
					errs <- fmt.Errorf("reading %s after the move: %v (equal %v)", moved, err, bytes.Equal(got, data))
					return
				}
				if err := os.Chmod(moved, 0o600); err != nil {
					errs <- err
					return
				}
				if r%2 == 0 {
					if err := os.Remove(moved); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	listerDone := make(chan struct{})
	go func() {
		defer close(listerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := os.ReadDir(m.path("shared")); err != nil {
				errs <- fmt.Errorf("listing: %v", err)
				return
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-listerDone
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ents, err := os.ReadDir(m.path("shared"))
	if err != nil {
		t.Fatal(err)
	}
	if want := workers * rounds / 2; len(ents) != want {
		t.Errorf("shared holds %d files, want %d", len(ents), want)
	}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want mode 0600", e.Name(), fi, err)
		}
	}
	m.unmount(t)
	oracle.RequireClean(t, image)
}
