package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

var accessLine = regexp.MustCompile(`(?m)^Access: .*\((\d+)\)$`)

// accessTime is the atime, in seconds, that "mpage stat" shows for spec.
func accessTime(t *testing.T, spec string) string {
	t.Helper()
	m := accessLine.FindStringSubmatch(mustRun(t, "stat", spec))
	if m == nil {
		t.Fatalf("mpage stat %s: no Access line", spec)
	}
	return m[1]
}

// TestAtimeFlag checks --atime: a bad value is a usage error, commands
// that only read an image leave it byte for byte as it was whatever the
// mode, and a command that opens the image for writing updates the atime
// of what it reads under relatime, not under noatime.
func TestAtimeFlag(t *testing.T) {
	if r := mpage(t, "--atime=sometimes", "df", "x"); r.code != 2 {
		t.Errorf("--atime=sometimes: exit %d, stderr %q, want exit 2", r.code, r.stderr)
	}
	image, _, _ := treeImage(t)
	host := filepath.Join(t.TempDir(), "host")
	if err := os.WriteFile(host, []byte("some data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "cp", host, image+":/a")
	// Back to 2020 (ctime now): every mode but noatime updates at the
	// next read.
	mustRun(t, "touch", "-d", "2020-01-01", image+":/a")
	old := accessTime(t, image+":/a")

	before, err := os.ReadFile(image)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	for _, args := range [][]string{
		{"--atime=strictatime", "cat", image + ":/a"},
		{"--atime=strictatime", "ls", "-l", image + ":/"},
		{"--atime=strictatime", "stat", image + ":/a"},
		{"--atime=strictatime", "cp", image + ":/a", out},
	} {
		mustRun(t, args...)
		after, err := os.ReadFile(image)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(before, after) {
			t.Errorf("mpage %v changed the image", args)
		}
	}

	mustRun(t, "--atime=noatime", "cp", image+":/a", image+":/b")
	if got := accessTime(t, image+":/a"); got != old {
		t.Errorf("after a copy within the image under noatime: atime %s, want %s unchanged", got, old)
	}
	mustRun(t, "cp", image+":/a", image+":/c")
	if got := accessTime(t, image+":/a"); got == old {
		t.Errorf("after a copy within the image under relatime: atime %s, want it updated", got)
	}
}
