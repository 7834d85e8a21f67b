package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mpagefs/mpage/internal/oracle"
)

// TestBackupSuperblock zeroes an image's primary superblock: every command
// then refuses the image, and with --sb 8193 (the first backup of a 1 KiB
// block filesystem, as e2fsck -b takes it) cat reads the file back; a
// writing command run that way writes the primary back, after which the
// image opens without --sb and e2fsck finds it clean.
func TestBackupSuperblock(t *testing.T) {
	src := t.TempDir()
	want := strings.Repeat("kept in the backup's filesystem\n", 300)
	if err := os.WriteFile(filepath.Join(src, "f"), []byte(want), 0o644); err != nil {
		t.Fatal(err)
	}
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 16 << 20, BlockSize: 1024, FromDir: src})
	f, err := os.OpenFile(image, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, 1024), 1024); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	if r := mpage(t, "cat", image+":/f"); r.code == 0 || !strings.Contains(r.stderr, image) {
		t.Errorf("cat with the primary superblock zeroed: exit %d, stderr %q; want a failure naming the image", r.code, r.stderr)
	}
	if got := mustRun(t, "--sb", "8193", "cat", image+":/f"); got != want {
		t.Errorf("cat --sb 8193: got %d bytes, want the %d written", len(got), len(want))
	}
	if r := mpage(t, "--sb", "-1", "cat", image+":/f"); r.code != 2 {
		t.Errorf("--sb -1: exit %d, stderr %q; want a usage error (exit 2)", r.code, r.stderr)
	}
	// A change made through the backup writes the primary back.
	mustRun(t, "--sb", "8193", "mkdir", image+":/d")
	oracle.RequireClean(t, image)
	if got := mustRun(t, "cat", image+":/f"); got != want {
		t.Errorf("cat after the repair: got %d bytes, want %d", len(got), len(want))
	}
}
