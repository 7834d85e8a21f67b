package fusemount

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mpagefs/mpage/ext2fs"
	"github.com/mpagefs/mpage/internal/oracle"
)

// TestReaddirLeavesOutNamesFUSECannotCarry lists, through the mount, a
// directory in which one entry's name holds a '/' and another's a NUL, as
// a damaged directory can (e2fsprogs' f_baddir has "foo/bar"). The
// kernel's FUSE refuses a whole READDIR reply with such a name (EIO), at
// every retry, so before, a listing stopped there: now both entries are
// left out and every other name is listed, with no error.
func TestReaddirLeavesOutNamesFUSECannotCarry(t *testing.T) {
	requireFuse(t)
	src := filepath.Join(t.TempDir(), "src")
	names := []string{"aa-1", "bb-2", "cc-3", "dd-4", "ee-5"}
	for _, n := range names {
		if err := os.MkdirAll(filepath.Join(src, "d"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, "d", n), []byte(n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const bs = 1024
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 4 << 20, BlockSize: bs, FromDir: src})

	// Where the names of bb-2 and dd-4 are in the image.
	fsys, err := ext2fs.Open(image, ext2fs.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	e2 := fsys.Ext2()
	dir, err := e2.Lookup("d")
	if err != nil {
		t.Fatal(err)
	}
	ents, _, err := e2.ReadDirFrom(dir, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	patch := map[string]byte{"bb-2": '/', "dd-4": 0}
	at := map[string]int64{}
	for _, e := range ents {
		if _, ok := patch[e.Name]; ok {
			blk, _, err := dir.MapBlock(e.Off/bs, false)
			if err != nil || blk == 0 {
				t.Fatalf("block of %s: %d, %v", e.Name, blk, err)
			}
			at[e.Name] = blk*bs + e.Off%bs + 8 + 2 // the '-' of the name
		}
	}
	e2.Iput(dir)
	if err := fsys.Close(); err != nil {
		t.Fatal(err)
	}
	if len(at) != len(patch) {
		t.Fatalf("found %v of the entries to damage, want %d", at, len(patch))
	}
	f, err := os.OpenFile(image, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	for name, off := range at {
		if _, err := f.WriteAt([]byte{patch[name]}, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	m := mountImage(t, image, Options{ReadOnly: true})
	list, err := os.ReadDir(m.path("d"))
	if err != nil {
		t.Errorf("ReadDir through the mount: %v, want no error", err)
	}
	var got []string
	for _, e := range list {
		got = append(got, e.Name())
	}
	want := []string{"aa-1", "cc-3", "ee-5"}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("listed %q, want %q", got, want)
	}
	if b, err := os.ReadFile(m.path("d/ee-5")); err != nil || string(b) != "ee-5" {
		t.Errorf("read d/ee-5: %q, %v", b, err)
	}
	m.unmount(t)
}
