package oracle

import (
	"os"
	"os/exec"
	"testing"
)

// RequireFUSE skips the test where a FUSE mount cannot be made here: no
// /dev/fuse, no fusermount3, or not root (mount tests chown files, use
// allow_other and compare with the kernel's loop mount).
func RequireFUSE(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("no /dev/fuse (%v): FUSE is not available here", err)
	}
	if _, err := exec.LookPath("fusermount3"); err != nil {
		t.Skip("no fusermount3 in PATH: install the fuse3 package")
	}
	if os.Getuid() != 0 {
		t.Skip("not root: FUSE mount tests chown files, use allow_other and loop mounts")
	}
}
