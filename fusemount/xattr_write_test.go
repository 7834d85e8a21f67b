package fusemount

import (
	"errors"
	"os"
	"testing"

	"github.com/mpagefs/mpage/internal/oracle"
	"golang.org/x/sys/unix"
)

// TestXattrWritesRefusedReadsServed sets and removes attributes (user.*
// and the access ACL that cp -a sets on every file) on several files,
// each more than once: every call fails with EOPNOTSUPP, the first ones
// answered by us and the later ones by the kernel. Reading attributes
// still works after, and the files are untouched.
func TestXattrWritesRefusedReadsServed(t *testing.T) {
	src := xattrSource(t)
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 8 << 20, FromDir: src, InodeSize: 256})
	m := mountImage(t, image, Options{})
	acl := []byte{2, 0, 0, 0, 1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff, 4, 0, 4, 0, 0xff, 0xff, 0xff, 0xff, 0x20, 0, 4, 0, 0xff, 0xff, 0xff, 0xff}
	for round := range 2 {
		for _, f := range []string{"f", "plain", "acl"} {
			p := m.path(f)
			if err := unix.Setxattr(p, "user.new", []byte("x"), 0); !errors.Is(err, unix.EOPNOTSUPP) {
				t.Errorf("round %d: setxattr user.new on %s: got %v, want EOPNOTSUPP", round, f, err)
			}
			if err := unix.Setxattr(p, "system.posix_acl_access", acl, 0); !errors.Is(err, unix.EOPNOTSUPP) {
				t.Errorf("round %d: setxattr system.posix_acl_access on %s: got %v, want EOPNOTSUPP", round, f, err)
			}
			if err := unix.Removexattr(p, "user.one"); !errors.Is(err, unix.EOPNOTSUPP) {
				t.Errorf("round %d: removexattr user.one on %s: got %v, want EOPNOTSUPP", round, f, err)
			}
		}
	}
	buf := make([]byte, 16)
	n, err := unix.Getxattr(m.path("f"), "user.one", buf)
	if err != nil || string(buf[:n]) != "1" {
		t.Errorf("getxattr user.one after refused writes: got %q, %v, want \"1\"", buf[:n], err)
	}
	if _, err := unix.Getxattr(m.path("plain"), "user.new", buf); !errors.Is(err, unix.ENODATA) {
		t.Errorf("getxattr of the refused user.new: got %v, want ENODATA", err)
	}
	if b, err := os.ReadFile(m.path("f")); err != nil || string(b) != "f" {
		t.Errorf("content of f: got %q, %v, want \"f\"", b, err)
	}
	m.unmount(t)
	oracle.RequireClean(t, image)
}
