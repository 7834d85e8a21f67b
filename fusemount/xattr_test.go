package fusemount

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mpagefs/mpage/internal/oracle"
	"golang.org/x/sys/unix"
)

// xattrSource makes a tree whose files carry attributes and ACLs set on
// the host, for mke2fs -d: f (user and trusted attributes, one too big
// for a 256-byte inode), acl (an access ACL), d (access and default ACLs),
// plain (none) and l, a symlink to f. It skips the test when the host
// filesystem or setfacl cannot.
func xattrSource(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(filepath.Join(src, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"f", "acl", "plain"} {
		if err := os.WriteFile(filepath.Join(src, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("f", filepath.Join(src, "l")); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(src, "f")
	if err := unix.Setxattr(f, "user.one", []byte("1"), 0); err != nil {
		t.Skipf("the host filesystem of %s takes no user xattrs: %v", src, err)
	}
	for name, v := range map[string][]byte{
		"user.big":  bytes.Repeat([]byte("0123456789"), 40),
		"trusted.t": {0, 0xff, 1},
	} {
		if err := unix.Setxattr(f, name, v, 0); err != nil {
			t.Skipf("setxattr %s on the host: %v", name, err)
		}
	}
	setfacl := oracle.Tool(t, "setfacl")
	for _, args := range [][]string{
		{"-m", "u:1000:rw,g:50:r", filepath.Join(src, "acl")},
		{"-m", "u:1000:rwx", "-d", "-m", "g:60:rx", filepath.Join(src, "d")},
	} {
		if out, err := exec.Command(setfacl, args...).CombinedOutput(); err != nil {
			t.Skipf("setfacl %q: %v: %s", args, err, out)
		}
	}
	return src
}

// getfattrAll returns "getfattr -h -d -m - -e hex" of path as name=value
// lines, sorted.
func getfattrAll(t *testing.T, getfattr, path string) []string {
	t.Helper()
	out := run(t, getfattr, "-h", "--absolute-names", "-d", "-m", "-", "-e", "hex", path)
	var lines []string
	for _, line := range strings.Split(out, "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			lines = append(lines, line)
		}
	}
	slices.Sort(lines)
	return lines
}

// TestXattrThroughMount reads extended attributes and POSIX ACLs of an
// image made by mke2fs -d through the mount, with getfattr and with
// getxattr(2) and listxattr(2) directly, and compares them with the
// source tree's on the host.
func TestXattrThroughMount(t *testing.T) {
	getfattr := oracle.Tool(t, "getfattr")
	for _, isz := range []int{128, 256} {
		t.Run(map[int]string{128: "inode128", 256: "inode256"}[isz], func(t *testing.T) {
			src := xattrSource(t)
			image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 8 << 20, InodeSize: isz, FromDir: src})
			m := mountImage(t, image, Options{AllowOther: true})
			for _, name := range []string{"f", "acl", "d", "plain", "l"} {
				want := getfattrAll(t, getfattr, filepath.Join(src, name))
				got := getfattrAll(t, getfattr, m.path(name))
				if !slices.Equal(got, want) {
					t.Errorf("getfattr -d of %s: got %q, want %q (the source's)", name, got, want)
				}
			}
			if want := getfattrAll(t, getfattr, filepath.Join(src, "acl")); len(want) == 0 {
				t.Errorf("the source file acl has no attributes")
			}
			for _, name := range []string{"acl", "d"} {
				want := run(t, "getfacl", "-c", filepath.Join(src, name))
				if got := run(t, "getfacl", "-c", m.path(name)); got != want {
					t.Errorf("getfacl %s: got\n%s\nwant\n%s", name, got, want)
				}
			}
			want := run(t, getfattr, "--absolute-names", "-n", "system.posix_acl_access", "--only-values", filepath.Join(src, "acl"))
			if got := run(t, getfattr, "--absolute-names", "-n", "system.posix_acl_access", "--only-values", m.path("acl")); got != want {
				t.Errorf("getfattr -n system.posix_acl_access: got %x, want %x", got, want)
			}

			// getxattr(2) with the size probe and a short buffer.
			f := m.path("f")
			big := bytes.Repeat([]byte("0123456789"), 40)
			if n, err := unix.Getxattr(f, "user.big", nil); err != nil || n != len(big) {
				t.Errorf("getxattr(user.big, nil): got %d, %v, want %d", n, err, len(big))
			}
			if _, err := unix.Getxattr(f, "user.big", make([]byte, 10)); !errors.Is(err, unix.ERANGE) {
				t.Errorf("getxattr(user.big) into 10 bytes: got %v, want ERANGE", err)
			}
			buf := make([]byte, 1000)
			if n, err := unix.Getxattr(f, "user.big", buf); err != nil || !bytes.Equal(buf[:n], big) {
				t.Errorf("getxattr(user.big): got %q, %v", buf[:n], err)
			}
			if _, err := unix.Getxattr(f, "user.none", buf); !errors.Is(err, unix.ENODATA) {
				t.Errorf("getxattr(user.none): got %v, want ENODATA", err)
			}
			n, err := unix.Listxattr(f, nil)
			if err != nil {
				t.Fatalf("listxattr(nil): %v", err)
			}
			if _, err := unix.Listxattr(f, make([]byte, n-1)); !errors.Is(err, unix.ERANGE) {
				t.Errorf("listxattr into %d bytes of %d: got %v, want ERANGE", n-1, n, err)
			}
			list := make([]byte, n)
			if _, err := unix.Listxattr(f, list); err != nil {
				t.Fatalf("listxattr: %v", err)
			}
			names := strings.Split(strings.TrimSuffix(string(list), "\x00"), "\x00")
			slices.Sort(names)
			if want := []string{"trusted.t", "user.big", "user.one"}; !slices.Equal(names, want) {
				t.Errorf("listxattr: got %q, want %q", names, want)
			}

			// trusted.* is for the privileged only.
			if setpriv, err := exec.LookPath("setpriv"); err == nil {
				for _, dir := range []string{m.dir, filepath.Dir(m.dir)} {
					if err := os.Chmod(dir, 0o755); err != nil {
						t.Fatal(err)
					}
				}
				out, err := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--",
					getfattr, "--absolute-names", "-d", "-m", "-", "-e", "hex", f).CombinedOutput()
				if err != nil {
					t.Errorf("getfattr as another user: %v\n%s", err, out)
				}
				if s := string(out); strings.Contains(s, "trusted.") || !strings.Contains(s, "user.one=0x"+hex.EncodeToString([]byte("1"))) {
					t.Errorf("getfattr as another user: got %q, want user.* without trusted.*", s)
				}
			}
			m.unmount(t)
			oracle.RequireClean(t, image)
		})
	}
}

// TestNoXattr checks that Options.NoXattr turns extended attributes off.
func TestNoXattr(t *testing.T) {
	src := xattrSource(t)
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 8 << 20, FromDir: src})
	m := mountImage(t, image, Options{NoXattr: true})
	if _, err := unix.Getxattr(m.path("f"), "user.one", make([]byte, 10)); !errors.Is(err, unix.EOPNOTSUPP) {
		t.Errorf("getxattr with NoXattr: got %v, want EOPNOTSUPP", err)
	}
	if n, err := unix.Listxattr(m.path("f"), make([]byte, 100)); err == nil && n > 0 {
		t.Errorf("listxattr with NoXattr: got %d bytes of names, want none", n)
	}
}

// BenchmarkSmallWrites writes 16 MiB in 4 KiB write(2) calls with
// extended attributes on and off (Options.NoXattr). Before the mount
// took over clearing set-ID bits (HANDLE_KILLPRIV_V2, killpriv.go) the
// kernel asked for security.capability before each write with them on:
// 65-83 MB/s against 106-111 off; now 121-125 against 121-133.
func BenchmarkSmallWrites(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts Options
	}{{"xattr", Options{}}, {"noxattr", Options{NoXattr: true}}} {
		b.Run(bc.name, func(b *testing.B) {
			const size = 16 << 20
			image := oracle.MkfsImage(b, oracle.MkfsOptions{SizeBytes: 64 << 20})
			m := mountTB(b, image, bc.opts)
			buf := make([]byte, 4096)
			b.SetBytes(size)
			for b.Loop() {
				f, err := os.Create(m.path("big"))
				if err != nil {
					b.Fatal(err)
				}
				for off := 0; off < size; off += len(buf) {
					if _, err := f.Write(buf); err != nil {
						b.Fatal(err)
					}
				}
				f.Close()
			}
		})
	}
}
