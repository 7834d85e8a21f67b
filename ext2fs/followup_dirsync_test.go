package ext2fs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/ext2"
	"github.com/mpagefs/mpage/internal/oracle"
	"github.com/mpagefs/mpage/writeback"
)

// TestFollowupDirSync checks fsync of a directory (File.Sync on a
// directory handle): after renames that grow the directory (new blocks,
// a new size in its inode) and unlinks, a crash right after the Sync
// keeps the directory as it was synced, consistent for e2fsck, while the
// dirty data of an unrelated file is not written by it (fsync syncs one
// inode).
func TestFollowupDirSync(t *testing.T) {
	const files = 60
	src := t.TempDir()
	for i := 0; i < files; i++ {
		writeTestFile(t, filepath.Join(src, "d", fmt.Sprintf("f%03d", i)), []byte(fmt.Sprintf("file %d\n", i)))
	}
	writeTestFile(t, filepath.Join(src, "other"), bytes.Repeat([]byte{'o'}, 4<<20))
	image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 16 << 20, BlockSize: 1024, FromDir: src})
	dev, err := block.OpenFile(image, false)
	if err != nil {
		t.Fatal(err)
	}
	faulty := block.NewFaulty(dev)
	// No background writeback during the test: what reaches the device
	// is what the syncs write.
	opts := Options{Mount: ext2.Options{Writeback: writeback.Config{Interval: time.Hour, Expire: time.Hour, BackgroundDirty: 1 << 30}}}
	fsys, err := OpenDevice(faulty, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fsys.Close() })

	// Unrelated dirty data: 4 MiB rewritten in place.
	o, err := fsys.OpenFile("other", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.WriteAt(bytes.Repeat([]byte{'n'}, 4<<20), 0); err != nil {
		t.Fatal(err)
	}
	o.Close()

	long := strings.Repeat("x", 100)
	var want []string
	for i := 0; i < files; i++ {
		old := fmt.Sprintf("d/f%03d", i)
		if i%10 == 9 {
			if err := fsys.Remove(old); err != nil {
				t.Fatal(err)
			}
			continue
		}
		name := fmt.Sprintf("g%03d-%s", i, long)
		if err := fsys.Rename(old, "d/"+name); err != nil {
			t.Fatal(err)
		}
		want = append(want, name)
	}
	slices.Sort(want)
	if fi, err := fsys.Stat("d"); err != nil || fi.Size() <= 1024 {
		t.Fatalf("Stat(d) after the renames: %v, %v; want it grown past one block", fi, err)
	}

	d, err := fsys.OpenFile("d", os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	before := len(faulty.Calls())
	if err := d.Sync(); err != nil {
		t.Fatalf("Sync on the directory: %v", err)
	}
	d.Close()
	written := int64(0)
	for _, c := range faulty.Calls()[before:] {
		if c.Op == block.Write {
			written += int64(c.Len)
		}
	}
	if written == 0 || written >= 1<<20 {
		t.Errorf("Sync on the directory wrote %d bytes, want some, and less than the 4 MiB of another file's dirty data", written)
	}

	crashed, err := faulty.Crash()
	if err != nil {
		t.Fatal(err)
	}
	crashImage := filepath.Join(t.TempDir(), "crash.img")
	if err := os.WriteFile(crashImage, crashed.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	// Renames and unlinks only change the directory, the unlinked
	// inodes and the bitmaps and descriptors, all written by the Sync:
	// the crash image is consistent.
	oracle.RequireClean(t, crashImage)
	cfs, err := OpenDevice(crashed, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("mounting the crash image: %v", err)
	}
	defer cfs.Close()
	ents, err := cfs.ReadDir("d")
	if err != nil {
		t.Fatalf("ReadDir(d) on the crash image: %v", err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, want) {
		t.Errorf("after a crash, d holds %d names %.4q, want the %d synced %.4q", len(got), got, len(want), want)
	}
	for _, name := range want[:3] {
		b, err := cfs.ReadFile("d/" + name)
		var i int
		fmt.Sscanf(name, "g%03d", &i)
		if err != nil || string(b) != fmt.Sprintf("file %d\n", i) {
			t.Errorf("after a crash, d/%s holds %q, %v; want its content", name[:4], b, err)
		}
	}
}

// writeTestFile writes a source file for mke2fs -d, making its folder.
func writeTestFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
