package ext2

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/internal/oracle"
	"github.com/mpagefs/mpage/writeback"
)

// TestFollowupFileSyncCrash creates a file, writes it (new blocks, and
// for the larger sizes an indirect block) and syncs it with File.Sync;
// a crash right after the Sync must leave an image e2fsck finds clean,
// holding the file with its data. The group descriptors' free counts
// change with the allocations, so they must reach the disk with the
// bitmaps (e2fsck -n counts a wrong group count as an error).
func TestFollowupFileSyncCrash(t *testing.T) {
	tests := []struct {
		name      string
		blockSize int
		size      int
	}{
		{"direct blocks", 1024, 5000},
		{"indirect block", 1024, 300 << 10},
		{"double indirect", 1024, 400 << 10},
		{"4k blocks", 4096, 100 << 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			image := oracle.MkfsImage(t, oracle.MkfsOptions{SizeBytes: 8 << 20, BlockSize: tc.blockSize})
			dev, err := block.OpenFile(image, false)
			if err != nil {
				t.Fatal(err)
			}
			faulty := block.NewFaulty(dev)
			// No background writeback: what reaches the device is
			// what the Sync writes.
			fs, err := Mount(faulty, Options{Name: image, Logf: t.Logf,
				Writeback: writeback.Config{Interval: time.Hour, Expire: time.Hour, BackgroundDirty: 1 << 30}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { fs.Close() })
			root, err := fs.Root()
			if err != nil {
				t.Fatal(err)
			}
			defer fs.Iput(root)
			ino, err := fs.Create(root, "new", 0o644, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			f, err := fs.Open(ino, true)
			fs.Iput(ino)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			want := make([]byte, tc.size)
			for i := range want {
				want[i] = byte(i*7 + i>>10)
			}
			if _, err := f.WriteAt(want, 0); err != nil {
				t.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				t.Fatalf("Sync: %v", err)
			}

			crashed, err := faulty.Crash()
			if err != nil {
				t.Fatal(err)
			}
			crashImage := filepath.Join(t.TempDir(), "crash.img")
			if err := os.WriteFile(crashImage, crashed.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			oracle.RequireClean(t, crashImage)
			if got := oracle.DebugfsDump(t, crashImage, "/new"); !bytes.Equal(got, want) {
				t.Errorf("after a crash, /new holds %d bytes (equal %v), want the %d synced", len(got), bytes.Equal(got, want), len(want))
			}
		})
	}
}
