package fusemount

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hanwen/go-fuse/v2/posixtest"
	"github.com/mpagefs/mpage/internal/oracle"
	"golang.org/x/sys/unix"
)

// xattrScript is one list of attribute changes made the same way on our
// mount and on the kernel's: setfattr, setfacl and the system calls
// with their flags. Each step records the error it got (nil or an errno)
// so that the two runs can be compared step by step.
func xattrScript(t *testing.T, dir string) []string {
	t.Helper()
	p := func(f string) string { return filepath.Join(dir, f) }
	var results []string
	note := func(what string, err error) {
		results = append(results, fmt.Sprintf("%s: %v", what, err))
	}
	// The script's commands must succeed.
	cmd := func(name string, args ...string) {
		t.Helper()
		run(t, name, args...)
	}
	note("set user.new", unix.Setxattr(p("plain"), "user.new", []byte("new value"), 0))
	note("create user.new again", unix.Setxattr(p("plain"), "user.new", []byte("x"), unix.XATTR_CREATE))
	note("replace user.missing", unix.Setxattr(p("plain"), "user.missing", []byte("x"), unix.XATTR_REPLACE))
	note("replace user.new", unix.Setxattr(p("plain"), "user.new", []byte("replaced, longer value"), unix.XATTR_REPLACE))
	note("remove user.missing", unix.Removexattr(p("plain"), "user.missing"))
	note("set empty value", unix.Setxattr(p("plain"), "user.empty", nil, 0))
	note("replace in-inode user.one", unix.Setxattr(p("f"), "user.one", []byte("one, now longer"), 0))
	note("remove user.big", unix.Removexattr(p("f"), "user.big"))
	note("set trusted", unix.Setxattr(p("f"), "trusted.t", []byte{9, 9}, 0))
	note("set security", unix.Setxattr(p("d"), "security.s", []byte("dir"), 0))
	note("user.* on the symlink itself", unix.Lsetxattr(p("l"), "user.x", []byte("x"), 0))
	note("trusted.* on the symlink itself", unix.Lsetxattr(p("l"), "trusted.x", []byte("on link"), 0))
	note("bad namespace", unix.Setxattr(p("plain"), "bogus.x", []byte("x"), 0))
	for i := range 8 {
		note("many", unix.Setxattr(p("many"), fmt.Sprintf("user.k%d", i), bytes.Repeat([]byte{byte('a' + i)}, 20*i), 0))
	}
	cmd("setfattr", "-x", "user.k3", p("many"))
	cmd("setfattr", "-n", "user.k5", "-v", "0x00ff", p("many"))
	cmd("setfacl", "-m", "u:1000:rwx,g:50:r", p("plain"))
	cmd("setfacl", "-x", "u:1000", p("acl"))
	cmd("setfacl", "-d", "-m", "u:7:r", p("d"))
	cmd("setfacl", "-b", p("f"))
	cmd("setfacl", "-m", "g::rwx", p("many")) // the mode bits only: no ACL stored
	note("remove a missing ACL", unix.Removexattr(p("many"), "system.posix_acl_access"))
	note("default ACL on a file", unix.Setxattr(p("plain"), "system.posix_acl_default",
		[]byte{2, 0, 0, 0, 1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff, 4, 0, 4, 0, 0xff, 0xff, 0xff, 0xff, 0x20, 0, 4, 0, 0xff, 0xff, 0xff, 0xff}, 0))
	note("malformed ACL", unix.Setxattr(p("plain"), "system.posix_acl_access", []byte{2, 0, 0, 0, 1, 0}, 0))
	return results
}

// xattrState is what getfattr, getfacl and stat say of each file.
func xattrState(t *testing.T, dir string) map[string][]string {
	t.Helper()
	getfattr := oracle.Tool(t, "getfattr")
	st := map[string][]string{}
	for _, f := range []string{"f", "acl", "d", "plain", "l", "many"} {
		p := filepath.Join(dir, f)
		lines := getfattrAll(t, getfattr, p)
		var fi unix.Stat_t
		if err := unix.Lstat(p, &fi); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, fmt.Sprintf("mode %#o", fi.Mode&0o7777))
		if f != "l" {
			lines = append(lines, strings.Split(run(t, "getfacl", "-cp", p), "\n")...)
		}
		st[f] = lines
	}
	return st
}

// copyImage copies an image file.
func copyImage(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy.img")
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestXattrWritesThroughMount makes the same attribute and ACL changes
// (setxattr(2) with its flags, removexattr(2), setfattr, setfacl) on our
// mount and on the kernel's loop mount of a copy of the same image, and
// compares, step by step, the errors, then what getfattr, getfacl and
// stat show of every file, mode bits included (an access ACL sets them).
// After unmount e2fsck -fn is clean, and the kernel reads our image as
// our mount showed it.
func TestXattrWritesThroughMount(t *testing.T) {
	oracle.Tool(t, "setfattr")
	oracle.Tool(t, "getfacl")
	src := xattrSource(t)
	if err := os.WriteFile(filepath.Join(src, "many"), []byte("many"), 0o644); err != nil {
		t.Fatal(err)
	}
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 8 << 20, FromDir: src, InodeSize: 256})
	kimage := copyImage(t, image)

	m := mountImage(t, image, Options{})
	ours := xattrScript(t, m.dir)
	ourState := xattrState(t, m.dir)
	m.unmount(t)
	oracle.RequireClean(t, image)

	kmnt := oracle.LoopMount(t, kimage, false)
	kernel := xattrScript(t, kmnt)
	kernelState := xattrState(t, kmnt)
	oracle.Umount(t, kmnt)

	if !slices.Equal(ours, kernel) {
		for i := range min(len(ours), len(kernel)) {
			if ours[i] != kernel[i] {
				t.Errorf("step %d: got %q, the kernel %q", i, ours[i], kernel[i])
			}
		}
	}
	for f, want := range kernelState {
		if got := ourState[f]; !slices.Equal(got, want) {
			t.Errorf("%s through our mount:\n%s\nthrough the kernel's:\n%s", f, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}

	// The kernel reads what we wrote as our mount showed it.
	kmnt = oracle.LoopMount(t, image, true)
	again := xattrState(t, kmnt)
	oracle.Umount(t, kmnt)
	for f, want := range ourState {
		if got := again[f]; !slices.Equal(got, want) {
			t.Errorf("%s read by the kernel from our image:\n%s\nwant (our mount):\n%s", f, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}

// TestXattrWriteErrorsThroughMount: a full attribute block is ENOSPC and
// leaves the attributes as they were; a read-only mount is EROFS.
func TestXattrWriteErrorsThroughMount(t *testing.T) {
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 8 << 20, BlockSize: 1024, InodeSize: 128})
	m := mountImage(t, image, Options{})
	p := m.path("f")
	if err := os.WriteFile(p, []byte("f"), 0o644); err != nil {
		t.Fatal(err)
	}
	v := bytes.Repeat([]byte("v"), 300)
	set := 0
	var err error
	for ; set < 10; set++ {
		if err = unix.Setxattr(p, fmt.Sprintf("user.a%d", set), v, 0); err != nil {
			break
		}
	}
	if !errors.Is(err, unix.ENOSPC) || set != 3 {
		t.Errorf("filling the 1 KiB attribute block with 300-byte values: %d set, then %v; want 3, then ENOSPC", set, err)
	}
	buf := make([]byte, 400)
	for i := range set {
		if n, err := unix.Getxattr(p, fmt.Sprintf("user.a%d", i), buf); err != nil || !bytes.Equal(buf[:n], v) {
			t.Errorf("user.a%d after ENOSPC: got %d bytes, %v", i, n, err)
		}
	}
	m.unmount(t)
	oracle.RequireClean(t, image)

	ro := mountImage(t, image, Options{ReadOnly: true})
	if err := unix.Setxattr(ro.path("f"), "user.x", []byte("x"), 0); !errors.Is(err, unix.EROFS) {
		t.Errorf("setxattr on a read-only mount: got %v, want EROFS", err)
	}
	if err := unix.Removexattr(ro.path("f"), "user.a0"); !errors.Is(err, unix.EROFS) {
		t.Errorf("removexattr on a read-only mount: got %v, want EROFS", err)
	}
	ro.unmount(t)
}

// TestXattrPosixCases runs go-fuse's two xattr cases of posixtest (set,
// list, get, remove; a value of 8 KiB, which must fail with ENOSPC, as
// on the kernel's own mount, or be stored) against a fresh mount, and
// checks the image after.
func TestXattrPosixCases(t *testing.T) {
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 8 << 20})
	m := mountImage(t, image, Options{})
	for name, fn := range map[string]func(*testing.T, string){"XAttr": posixtest.XAttr, "XAttrLarge": posixtest.XAttrLarge} {
		t.Run(name, func(t *testing.T) {
			dir := m.path(name)
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			fn(t, dir)
		})
	}
	m.unmount(t)
	oracle.RequireClean(t, image)
}

// TestXattrCpPreserve copies files with cp -a into the mount: cp keeps
// each mode by setting an access ACL of three entries (which ext2 turns
// into mode bits, storing nothing) and copies a real ACL and user
// attributes as they are. Modes, getfacl and getfattr agree with the
// source; e2fsck is clean after.
func TestXattrCpPreserve(t *testing.T) {
	getfattr := oracle.Tool(t, "getfattr")
	src := xattrSource(t)
	for name, mode := range map[string]os.FileMode{"x751": 0o751, "x600": 0o600, "x4755": 0o4755 | os.ModeSetuid} {
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 8 << 20})
	m := mountImage(t, image, Options{})
	run(t, "cp", "-a", src+"/.", m.dir)
	for _, name := range []string{"f", "acl", "d", "plain", "l", "x751", "x600", "x4755"} {
		var want, got unix.Stat_t
		if err := unix.Lstat(filepath.Join(src, name), &want); err != nil {
			t.Fatal(err)
		}
		if err := unix.Lstat(m.path(name), &got); err != nil {
			t.Fatal(err)
		}
		if got.Mode != want.Mode {
			t.Errorf("%s: mode %#o, want %#o (the source's)", name, got.Mode, want.Mode)
		}
		if w, g := getfattrAll(t, getfattr, filepath.Join(src, name)), getfattrAll(t, getfattr, m.path(name)); !slices.Equal(g, w) {
			t.Errorf("%s: getfattr got %q, want %q", name, g, w)
		}
		if name != "l" {
			if w, g := run(t, "getfacl", "-c", filepath.Join(src, name)), run(t, "getfacl", "-c", m.path(name)); g != w {
				t.Errorf("%s: getfacl got\n%s\nwant\n%s", name, g, w)
			}
		}
	}
	m.unmount(t)
	oracle.RequireClean(t, image)
}
