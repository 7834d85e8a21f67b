package ext2

import (
	"bytes"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/mpagefs/mpage/internal/oracle"
)

// freeBlockCount is the filesystem's free block count.
func freeBlockCount(fs *FS) int64 {
	sb := fs.Superblock()
	return int64(sb.FreeBlocks())
}

// fillTo fills fs until exactly want blocks are free: a big file takes
// most of the space, then one-block files take the rest one by one.
func fillTo(t *testing.T, fs *FS, want int64) {
	t.Helper()
	root, err := fs.Root()
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Iput(root)
	create := func(name string) *File {
		t.Helper()
		ino, err := fs.Create(root, name, 0o644, 0, 0)
		if err != nil {
			t.Fatalf("Create(%s): %v", name, err)
		}
		defer fs.Iput(ino)
		f, err := fs.Open(ino, true)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	bs := int64(fs.BlockSize())
	big := create("filler")
	// Leave room for the indirect blocks of the filler and 40 spare.
	if n := freeBlockCount(fs) - want - 40; n > 0 {
		data := bytes.Repeat([]byte{0xaa}, int(n*bs*250/256))
		if _, err := big.WriteAt(data, 0); err != nil {
			t.Fatalf("writing the filler: %v", err)
		}
	}
	big.Close()
	for i := 0; freeBlockCount(fs) > want; i++ {
		f := create(fmt.Sprintf("small%d", i))
		if _, err := f.WriteAt([]byte{1}, 0); err != nil {
			t.Fatalf("writing small%d: %v", i, err)
		}
		f.Close()
	}
	if got := freeBlockCount(fs); got != want {
		t.Fatalf("filled to %d free blocks, want %d", got, want)
	}
}

// TestFollowupENOSPCMidPage writes 12289 bytes (13 blocks of 1 KiB, the
// 13th behind an indirect block) into a filesystem with too few free
// blocks: the write stops with ENOSPC at a page whose first blocks were
// allocated, and those blocks, past the new size, must be freed again
// (ext2_write_failed), or e2fsck finds i_size too small.
func TestFollowupENOSPCMidPage(t *testing.T) {
	tests := []struct {
		name  string
		free  int64
		size  int  // bytes written
		wantN int  // bytes stored: whole pages before the failing one
		app   bool // write with Append (O_APPEND) rather than WriteAt
	}{
		// Pages 0-1 take blocks 0-7; page 2 gets 8-9 and fails on 10.
		{"data block", 10, 12289, 8192, false},
		{"data block 11", 11, 12289, 8192, false},
		{"data block append", 10, 12289, 8192, true},
		// Blocks 0-11 fit, then the indirect block and block 12 do
		// not both fit: the last page (one byte) fails.
		{"indirect block", 12, 12289, 12288, false},
		{"indirect block 13", 13, 12289, 12288, false},
		// The indirect block and block 12 fit, block 13 does not: both
		// lie past the new size and must go.
		{"after indirect block", 14, 16384, 12288, false},
		{"after indirect block append", 14, 16384, 12288, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img := makeImage(t, 1024, 128, 1<<20, "")
			fs := mountImage(t, img, Options{})
			root, err := fs.Root()
			if err != nil {
				t.Fatal(err)
			}
			ino, err := fs.Create(root, "f", 0o644, 0, 0)
			fs.Iput(root)
			if err != nil {
				t.Fatal(err)
			}
			f, err := fs.Open(ino, true)
			fs.Iput(ino)
			if err != nil {
				t.Fatal(err)
			}
			fillTo(t, fs, tc.free)
			data := pattern(7, tc.size)
			var n int
			if tc.app {
				_, n, err = f.Append(data)
			} else {
				n, err = f.WriteAt(data, 0)
			}
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("WriteAt(%d bytes) = %d, %v; want ENOSPC", tc.size, n, err)
			}
			if n != tc.wantN {
				t.Errorf("WriteAt stored %d bytes, want %d", n, tc.wantN)
			}
			if got := f.Size(); got != int64(n) {
				t.Errorf("size after the failed write %d, want %d", got, n)
			}
			// The blocks kept are those of the bytes stored (with the
			// indirect block past 12 of them), nothing past the size.
			kept := int64((n + 1023) / 1024)
			if kept > 12 {
				kept++
			}
			if got, want := f.Stat().Blocks, uint64(kept*2); got != want {
				t.Errorf("i_blocks after the failed write %d, want %d", got, want)
			}
			if got, want := freeBlockCount(fs), tc.free-kept; got != want {
				t.Errorf("free blocks after the failed write %d, want %d", got, want)
			}
			got := make([]byte, 16384)
			m, _ := f.ReadAt(got, 0)
			if !bytes.Equal(got[:m], data[:n]) {
				t.Errorf("read back %d bytes, want the %d written (first difference at %d)", m, n, firstDiff(got[:m], data[:n]))
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if err := fs.Close(); err != nil {
				t.Fatal(err)
			}
			oracle.RequireClean(t, img)
			if got := oracle.DebugfsDump(t, img, "/f"); !bytes.Equal(got, data[:n]) {
				t.Errorf("debugfs dump: %d bytes, want the %d written (first difference at %d)", len(got), n, firstDiff(got, data[:n]))
			}
		})
	}
}
