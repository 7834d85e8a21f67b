package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/mpagefs/mpage/internal/oracle"
)

// TestMkfsFromReadsLittle fills an image of a given size from a tree of
// about 700 entries and checks that the fill reads back almost nothing
// of the image it has just made (the inode table blocks of its new
// inodes are known zeros, not read one by one), and that the image is
// clean and holds the tree, owners and times included.
func TestMkfsFromReadsLittle(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	oracle.GenerateTree(t, src, oracle.TreeSpec{Seed: 3, Depth: 3, DirsPerDir: 4, FilesPerDir: 8, Sizes: []int64{0, 100, 5000, 70000}, Symlinks: true, HardLinks: true})
	image := filepath.Join(t.TempDir(), "img")
	r := mpage(t, "--stats=json", "mkfs", "--size", "64M", "--block-size", "1024", "--from", src, image)
	if r.code != 0 {
		t.Fatalf("mkfs --from: exit %d, stderr %q", r.code, r.stderr)
	}
	var m struct {
		ReadCalls  int64 `json:"read_calls"`
		WriteCalls int64 `json:"write_calls"`
	}
	if err := json.Unmarshal([]byte(r.stderr), &m); err != nil {
		t.Fatalf("--stats=json: %v: %q", err, r.stderr)
	}
	// 770 inodes of 256 bytes fill 190 table blocks of 1 KiB; what is
	// read is the two bitmaps of each group the inodes and blocks go to
	// (64 MiB of 1 KiB blocks: 8 groups) and the root's blocks.
	const groups = 8
	if want := int64(2*groups + 4); m.ReadCalls > want {
		t.Errorf("device reads while filling: got %d, want at most %d", m.ReadCalls, want)
	}
	oracle.RequireClean(t, image)
	out := filepath.Join(t.TempDir(), "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "cp", "-a", image+":/", out)
	oracle.CompareTrees(t, src, out, oracle.CompareOptions{Owners: true, Times: true, Ignore: []string{"lost+found"}})
}
