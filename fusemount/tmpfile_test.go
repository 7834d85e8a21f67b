package fusemount

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/mpagefs/mpage/internal/oracle"
	"golang.org/x/sys/unix"
)

// tmpfileData is what the O_TMPFILE sequence writes, by final name: a
// file past the direct blocks, and a small one.
var tmpfileData = map[string][]byte{
	"viaproc":  bytes.Repeat([]byte("through /proc/self/fd "), 10000),
	"viaempty": []byte("linked with AT_EMPTY_PATH\n"),
}

// tmpfileSeen is what the O_TMPFILE sequence observes in one filesystem:
// the outcome of each step (an errno name, or "ok"), the names left in
// the directory, and the named files.
type tmpfileSeen struct {
	steps []string
	names []string
	files map[string]string // name: mode, links, size and SHA-256
}

// describeFile is the mode, link count, size and checksum of a file.
func describeFile(t *testing.T, path string) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatalf("lstat %s: %v", path, err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return fmt.Sprintf("mode %o links %d size %d sha256 %x", st.Mode, st.Nlink, st.Size, sha256.Sum256(data))
}

// outcome names err as the sequence records it.
func outcome(err error) string {
	var en syscall.Errno
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &en):
		return unix.ErrnoName(en)
	default:
		return err.Error()
	}
}

// freeInodes is statfs's free inode count of the filesystem of path.
func freeInodes(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Fatalf("statfs %s: %v", path, err)
	}
	return st.Ffree
}

// tmpfileSequence runs the O_TMPFILE sequence in a new directory d of
// the filesystem mounted at root, with plain system calls, and returns
// what it saw:
//
//   - a tmpfile written, then linked as d/viaproc with
//     linkat(AT_FDCWD, "/proc/self/fd/N", ..., AT_SYMLINK_FOLLOW);
//   - another linked as d/viaempty with linkat(fd, "", ..., AT_EMPTY_PATH),
//     its link count going from 0 to 1;
//   - a tmpfile written and closed without a name, whose inode must be
//     free again afterwards (statfs), and nothing left in d;
//   - a tmpfile linked onto an existing name (EEXIST), one opened with
//     O_EXCL (never linkable: ENOENT), and a file unlinked while open
//     linked again both ways (ENOENT).
func tmpfileSequence(t *testing.T, root string) tmpfileSeen {
	t.Helper()
	var seen tmpfileSeen
	step := func(what string, err error) {
		seen.steps = append(seen.steps, what+": "+outcome(err))
	}
	d := filepath.Join(root, "d")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	open := func(mode uint32, flags int) int {
		t.Helper()
		fd, err := unix.Open(d, unix.O_TMPFILE|flags, mode)
		if err != nil {
			t.Fatalf("open(%s, O_TMPFILE|%#x): %v", d, flags, err)
		}
		return fd
	}
	write := func(fd int, data []byte) {
		t.Helper()
		if n, err := unix.Pwrite(fd, data, 0); n != len(data) || err != nil {
			t.Fatalf("pwrite of %d bytes: got %d, %v", len(data), n, err)
		}
	}
	nlink := func(fd int) uint64 {
		t.Helper()
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			t.Fatalf("fstat: %v", err)
		}
		return uint64(st.Nlink)
	}

	fd := open(0o640, unix.O_RDWR)
	write(fd, tmpfileData["viaproc"])
	got := make([]byte, len(tmpfileData["viaproc"]))
	if n, err := unix.Pread(fd, got, 0); n != len(got) || !bytes.Equal(got, tmpfileData["viaproc"]) {
		t.Errorf("reading the tmpfile back: got %d bytes (%v), equal %v", n, err, bytes.Equal(got, tmpfileData["viaproc"]))
	}
	seen.steps = append(seen.steps, fmt.Sprintf("links before linkat: %d", nlink(fd)))
	step("linkat /proc/self/fd AT_SYMLINK_FOLLOW",
		unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", fd), unix.AT_FDCWD, filepath.Join(d, "viaproc"), unix.AT_SYMLINK_FOLLOW))
	seen.steps = append(seen.steps, fmt.Sprintf("links after linkat: %d", nlink(fd)))
	unix.Close(fd)

	fd = open(0o600, unix.O_WRONLY)
	write(fd, tmpfileData["viaempty"])
	step("linkat AT_EMPTY_PATH", unix.Linkat(fd, "", unix.AT_FDCWD, filepath.Join(d, "viaempty"), unix.AT_EMPTY_PATH))
	seen.steps = append(seen.steps, fmt.Sprintf("links after linkat: %d", nlink(fd)))
	step("linkat onto an existing name", unix.Linkat(fd, "", unix.AT_FDCWD, filepath.Join(d, "viaproc"), unix.AT_EMPTY_PATH))
	unix.Close(fd)

	// A tmpfile closed without a name gives its inode back.
	before := freeInodes(t, d)
	fd = open(0o644, unix.O_RDWR)
	write(fd, bytes.Repeat([]byte{0xee}, 100<<10))
	if got := freeInodes(t, d); got != before-1 {
		t.Errorf("free inodes with a tmpfile open: got %d, want %d", got, before-1)
	}
	unix.Close(fd)
	// The kernel sends RELEASE and FORGET to a FUSE server after
	// close(2) returns: wait for them.
	deadline := time.Now().Add(10 * time.Second)
	for freeInodes(t, d) != before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	seen.steps = append(seen.steps, fmt.Sprintf("inode freed after close: %v", freeInodes(t, d) == before))

	fd = open(0o600, unix.O_RDWR|unix.O_EXCL)
	step("linkat of an O_EXCL tmpfile", unix.Linkat(fd, "", unix.AT_FDCWD, filepath.Join(d, "excl"), unix.AT_EMPTY_PATH))
	unix.Close(fd)

	victim := filepath.Join(d, "victim")
	fd, err := unix.Open(victim, unix.O_CREAT|unix.O_EXCL|unix.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Unlink(victim); err != nil {
		t.Fatal(err)
	}
	step("linkat of an unlinked file, AT_EMPTY_PATH", unix.Linkat(fd, "", unix.AT_FDCWD, victim, unix.AT_EMPTY_PATH))
	step("linkat of an unlinked file, /proc/self/fd",
		unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", fd), unix.AT_FDCWD, victim, unix.AT_SYMLINK_FOLLOW))
	unix.Close(fd)

	seen.names = listNames(t, d)
	seen.files = map[string]string{}
	for _, name := range seen.names {
		seen.files[name] = describeFile(t, filepath.Join(d, name))
	}
	return seen
}

// listNames returns the sorted names in dir.
func listNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

// compareSeen reports every difference between what the sequence saw in
// our mount and in the kernel's.
func compareSeen(t *testing.T, ours, kernel tmpfileSeen) {
	t.Helper()
	if !slices.Equal(ours.steps, kernel.steps) {
		t.Errorf("steps:\nour mount:\n\t%v\nkernel ext2:\n\t%v", ours.steps, kernel.steps)
	}
	if !slices.Equal(ours.names, kernel.names) {
		t.Errorf("names in d: our mount %v, kernel ext2 %v", ours.names, kernel.names)
	}
	for name, k := range kernel.files {
		if o := ours.files[name]; o != k {
			t.Errorf("d/%s: our mount %q, kernel ext2 %q", name, o, k)
		}
	}
}

// tmpfileReadOnly tries O_TMPFILE in the root of a read-only mount.
func tmpfileReadOnly(root string) string {
	fd, err := unix.Open(root, unix.O_TMPFILE|unix.O_RDWR, 0o600)
	if err == nil {
		unix.Close(fd)
	}
	return outcome(err)
}

// TestTmpfileThroughMount runs the O_TMPFILE sequence (tmpfileSequence)
// on our mount and on a kernel ext2 loop mount of another image, and
// requires the same outcomes, names and files from both; then our image
// must be clean for e2fsck and read the same through a kernel loop mount.
// A read-only mount of each refuses O_TMPFILE with EROFS.
func TestTmpfileThroughMount(t *testing.T) {
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 16 << 20, BlockSize: 1024})
	m := mountImage(t, image, Options{})
	ours := tmpfileSequence(t, m.dir)
	t.Logf("our mount: %q", ours.steps)
	m.unmount(t)
	oracle.RequireClean(t, image)

	// What a user would check first, whatever the kernel does.
	if want := []string{"viaempty", "viaproc"}; !slices.Equal(ours.names, want) {
		t.Errorf("names in d: got %v, want %v", ours.names, want)
	}
	for _, s := range []string{"inode freed after close: true", "links after linkat: 1", "linkat of an unlinked file, AT_EMPTY_PATH: ENOENT"} {
		if !slices.Contains(ours.steps, s) {
			t.Errorf("steps: got %v, want %q among them", ours.steps, s)
		}
	}

	kernelImage := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 16 << 20, BlockSize: 1024})
	loop := oracle.LoopMount(t, kernelImage, false)
	kernel := tmpfileSequence(t, loop)
	compareSeen(t, ours, kernel)
	oracle.Umount(t, loop)
	oracle.RequireClean(t, kernelImage)

	// Our image as the kernel reads it.
	ro := oracle.LoopMount(t, image, true)
	if got := listNames(t, filepath.Join(ro, "d")); !slices.Equal(got, ours.names) {
		t.Errorf("d through a kernel loop mount: got %v, want %v", got, ours.names)
	}
	for name, data := range tmpfileData {
		got, err := os.ReadFile(filepath.Join(ro, "d", name))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("d/%s through a kernel loop mount: got %d bytes (%v), want the %d written", name, len(got), err, len(data))
		}
		if k, o := describeFile(t, filepath.Join(ro, "d", name)), ours.files[name]; k != o {
			t.Errorf("d/%s: kernel loop mount %q, our mount %q", name, k, o)
		}
	}
	kernelRO := tmpfileReadOnly(ro)
	oracle.Umount(t, ro)

	mro := mountImage(t, image, Options{ReadOnly: true})
	if got := tmpfileReadOnly(mro.dir); got != "EROFS" || got != kernelRO {
		t.Errorf("O_TMPFILE on a read-only mount: ours %s, kernel ext2 %s; want EROFS", got, kernelRO)
	}
	mro.unmount(t)
}
