package fusemount

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/hanwen/go-fuse/v2/posixtest"
	"github.com/mpagefs/mpage/internal/oracle"
)

// posixSkips are the cases of go-fuse's posixtest that test what ext2
// does not have, with the reason.
var posixSkips = map[string]string{
	// Linux's ext2 has no fallocate either (EOPNOTSUPP); faking it
	// by growing the file would promise space we did not reserve.
	"Fallocate":         "ext2 has no fallocate (EOPNOTSUPP, as Linux's ext2)",
	"FallocateKeepSize": "ext2 has no fallocate (EOPNOTSUPP, as Linux's ext2)",
	// The case takes a second F_SETLK by the same process on another
	// descriptor to conflict: that is OFD-lock behaviour (go-fuse's
	// loopback passes locks to the host as OFD locks). POSIX record
	// locks of one process never conflict, and the kernel keeps our
	// locks itself, as on a local filesystem, where this case fails
	// too.
	"FcntlFlockLocksFile": "expects OFD-lock conflicts within one process; POSIX locks of one process never conflict",
}

// posixMustRun are cases that skip themselves where the filesystem
// lacks what they test, and that our mount must run: a skip fails them.
var posixMustRun = map[string]bool{
	"Tmpfile": true, // O_TMPFILE (tmpfile.go)
}

// TestPosix runs go-fuse's POSIX conformance table against the mount,
// each case in a directory of its own, and checks the image with e2fsck
// afterwards.
func TestPosix(t *testing.T) {
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 32 << 20})
	m := mountImage(t, image, Options{})
	names := make([]string, 0, len(posixtest.All))
	for name := range posixtest.All {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fn := posixtest.All[name]
		t.Run(name, func(t *testing.T) {
			if why, ok := posixSkips[name]; ok {
				t.Skip(why)
			}
			if posixMustRun[name] {
				defer func() {
					if t.Skipped() {
						t.Errorf("%s skipped itself; the mount must support it", name)
					}
				}()
			}
			dir := filepath.Join(m.dir, name)
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			fn(t, dir)
		})
	}
	m.unmount(t)
	oracle.RequireClean(t, image)
}
