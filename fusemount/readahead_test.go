package fusemount

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/mpagefs/mpage/internal/oracle"
	"golang.org/x/sys/unix"
)

// readAheadKB reads the kernel's readahead of the mount at dir.
func readAheadKB(t *testing.T, dir string) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev)))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestReadAhead checks the kernel's readahead of a mount: 1 MiB by
// default, as asked, or the kernel's own when asked to leave it.
func TestReadAhead(t *testing.T) {
	requireFuse(t)
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 8 << 20})
	for _, tc := range []struct {
		name string
		ra   int
		want string
	}{
		{"default", 0, "1024"},
		{"4MiB", 4 << 20, "4096"},
		{"kernel", -1, "128"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mountImage(t, image, Options{ReadAhead: tc.ra})
			if got := readAheadKB(t, m.dir); got != tc.want {
				t.Errorf("read_ahead_kb of the mount: got %s, want %s", got, tc.want)
			}
			m.unmount(t)
		})
	}
}
