package ext2fs

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/mpagefs/mpage/internal/oracle"
	"golang.org/x/sys/unix"
)

// hostXattrs returns the extended attributes of path on the host,
// without following a final symlink.
func hostXattrs(t *testing.T, path string) map[string][]byte {
	t.Helper()
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(path, buf)
	if err != nil {
		t.Fatalf("llistxattr %s: %v", path, err)
	}
	m := map[string][]byte{}
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" {
			continue
		}
		v := make([]byte, 64<<10)
		vn, err := unix.Lgetxattr(path, name, v)
		if err != nil {
			t.Fatalf("lgetxattr %s %s: %v", path, name, err)
		}
		m[name] = v[:vn]
	}
	return m
}

// xattrTree makes a source tree whose files carry extended attributes
// and POSIX ACLs set on the host: f (user attributes), acl (an access
// ACL), d (access and default ACLs) and l, a symlink to f. It skips the
// test if the host filesystem or tools cannot.
func xattrTree(t *testing.T) string {
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
	if err := unix.Setxattr(f, "user.two", bytes.Repeat([]byte{0, 0xff}, 100), 0); err != nil {
		t.Fatal(err)
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

func TestXattr(t *testing.T) {
	for _, isz := range []int{128, 256} {
		t.Run(map[int]string{128: "inode128", 256: "inode256"}[isz], func(t *testing.T) {
			src := xattrTree(t)
			image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 8 << 20, InodeSize: isz, FromDir: src})
			fsys := mustOpen(t, image, Options{ReadOnly: true})
			for _, name := range []string{"f", "acl", "d", "plain", "l"} {
				t.Run(name, func(t *testing.T) {
					want := hostXattrs(t, filepath.Join(src, name))
					got, err := fsys.Llistxattr("/" + name)
					if err != nil {
						t.Fatalf("Llistxattr: %v", err)
					}
					slices.Sort(got)
					wantNames := make([]string, 0, len(want))
					for n := range want {
						wantNames = append(wantNames, n)
					}
					slices.Sort(wantNames)
					if !slices.Equal(got, wantNames) {
						t.Errorf("Llistxattr: got %q, want %q (the host's)", got, wantNames)
					}
					for n, v := range want {
						gv, err := fsys.Lgetxattr(name, n)
						if err != nil || !bytes.Equal(gv, v) {
							t.Errorf("Lgetxattr(%s): got %x, %v, want %x (the host's)", n, gv, err, v)
						}
					}
				})
			}
			if len(hostXattrs(t, filepath.Join(src, "acl"))) == 0 {
				t.Errorf("the host lists no ACL on acl")
			}

			// Through the symlink l to f.
			if v, err := fsys.Getxattr("l", "user.one"); err != nil || string(v) != "1" {
				t.Errorf("Getxattr(l, user.one): got %q, %v, want \"1\" (the link followed)", v, err)
			}
			if names, err := fsys.Listxattr("/l"); err != nil || !slices.Contains(names, "user.two") {
				t.Errorf("Listxattr(/l): got %q, %v, want f's names", names, err)
			}
			if _, err := fsys.Lgetxattr("l", "user.one"); !errors.Is(err, syscall.ENODATA) {
				t.Errorf("Lgetxattr(l, user.one): got %v, want ENODATA", err)
			}

			errCases := []struct {
				name, file, attr string
				want             error
			}{
				{"missing attribute", "f", "user.none", syscall.ENODATA},
				{"missing file", "nope", "user.one", fs.ErrNotExist},
				{"unknown namespace", "f", "bogus.one", errors.ErrUnsupported},
				{"empty name", "", "user.one", fs.ErrNotExist},
			}
			for _, ec := range errCases {
				_, err := fsys.Getxattr(ec.file, ec.attr)
				var pe *fs.PathError
				if !errors.As(err, &pe) || pe.Op != "getxattr" || pe.Path != ec.file {
					t.Errorf("%s: got %#v, want an *fs.PathError of getxattr %q", ec.name, err, ec.file)
				}
				if !errors.Is(err, ec.want) {
					t.Errorf("%s: got %v, want %v", ec.name, err, ec.want)
				}
			}
			fsys.Close()
			if _, err := fsys.Listxattr("f"); !errors.Is(err, fs.ErrClosed) {
				t.Errorf("Listxattr after Close: got %v, want fs.ErrClosed", err)
			}
		})
	}
}
