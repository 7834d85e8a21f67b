package ext2

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/mpagefs/mpage/ext2/layout"
	"github.com/mpagefs/mpage/internal/oracle"
)

// emptyFilesImage makes an image whose root holds empty files named
// names, for write tests (there is no directory creation yet).
func emptyFilesImage(t *testing.T, bs, isz int, size int64, names ...string) string {
	t.Helper()
	src := t.TempDir()
	for _, n := range names {
		writeFile(t, filepath.Join(src, n), nil)
	}
	return makeImage(t, bs, isz, size, src)
}

func TestWriteThenFsck(t *testing.T) {
	sizes := []int{0, 100, 12 * 1024, 13 * 1024, (12 + 256) * 1024, (12+256+1)*1024 + 77, 700*1024 + 3}
	for _, bs := range []int{1024, 2048, 4096} {
		for _, isz := range []int{128, 256} {
			t.Run(fmt.Sprintf("b%d_I%d", bs, isz), func(t *testing.T) {
				var names []string
				for i := range sizes {
					names = append(names, fmt.Sprintf("f%d", i))
				}
				img := emptyFilesImage(t, bs, isz, 16<<20, names...)
				fs := mountImage(t, img, Options{})
				for i, n := range sizes {
					f := openPath(t, fs, names[i])
					data := pattern(uint64(100+i), n)
					// Odd-sized writes, so pages are filled in pieces.
					for off := 0; off < n; off += 3001 {
						end := min(off+3001, n)
						if got, err := f.WriteAt(data[off:end], int64(off)); err != nil || got != end-off {
							t.Fatalf("WriteAt(%s, %d) = %d, %v", names[i], off, got, err)
						}
					}
					if err := f.Close(); err != nil {
						t.Fatal(err)
					}
				}
				if err := fs.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				oracle.RequireClean(t, img)
				for i, n := range sizes {
					got := oracle.DebugfsDump(t, img, "/"+names[i])
					if want := pattern(uint64(100+i), n); !bytes.Equal(got, want) {
						t.Errorf("debugfs dump %s: %d bytes, want %d (first difference at %d)", names[i], len(got), len(want), firstDiff(got, want))
					}
				}
				sup := oracle.DumpSuper(t, img)
				if st := sup["Filesystem state"]; st != "clean" {
					t.Errorf("Filesystem state %q after Close, want clean", st)
				}
			})
		}
	}
}

// TestSequentialLayout checks that a file written sequentially gets the
// layout Linux ext2 gives it: data blocks 0-11, the indirect block, then
// data 12 onwards, all contiguous. Writes of one page take the per-page
// path; larger ones are batched, their blocks allocated a run at a time
// (WriteBeginBatch), and must give the same layout.
func TestSequentialLayout(t *testing.T) {
	for _, chunk := range []int{4096, 8192, 128 << 10, 300 << 10} {
		t.Run(fmt.Sprintf("writes of %d bytes", chunk), func(t *testing.T) {
			img := emptyFilesImage(t, 1024, 128, 8<<20, "f")
			fs := mountImage(t, img, Options{})
			f := openPath(t, fs, "f")
			data := pattern(1, 300*1024)
			for off := 0; off < len(data); off += chunk {
				if _, err := f.WriteAt(data[off:min(off+chunk, len(data))], int64(off)); err != nil {
					t.Fatal(err)
				}
			}
			f.Close()
			if err := fs.Close(); err != nil {
				t.Fatal(err)
			}
			st := oracle.DebugfsStat(t, img, "/f")
			var start int
			if _, err := fmt.Sscanf(st.Blocks, "(0-11):%d", &start); err != nil {
				t.Fatalf("debugfs BLOCKS %q: %v", st.Blocks, err)
			}
			want := fmt.Sprintf("(0-11):%d-%d, (IND):%d, (12-267):%d-%d, (DIND):%d, (IND):%d, (268-299):%d-%d",
				start, start+11, start+12, start+13, start+13+255, start+269, start+270, start+271, start+271+31)
			if st.Blocks != want {
				t.Errorf("layout:\n got %s\nwant %s", st.Blocks, want)
			}
			// i_blocks counts 300 data blocks and 3 indirect ones, in sectors.
			if got, want := st.Blockcount, uint64(303*2); got != want {
				t.Errorf("i_blocks = %d, want %d", got, want)
			}
			oracle.RequireClean(t, img)
		})
	}
}

// TestConcurrentWritersDoNotInterleave writes two files at once; their
// reservation windows keep each file in runs far longer than a page.
func TestConcurrentWritersDoNotInterleave(t *testing.T) {
	img := emptyFilesImage(t, 1024, 128, 16<<20, "a", "b")
	fs := mountImage(t, img, Options{})
	var wg sync.WaitGroup
	for i, name := range []string{"a", "b"} {
		f := openPath(t, fs, name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer f.Close()
			data := pattern(uint64(i), 512*1024)
			for off := 0; off < len(data); off += 4096 {
				if _, err := f.WriteAt(data[off:off+4096], int64(off)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := fs.Close(); err != nil {
		t.Fatal(err)
	}
	oracle.RequireClean(t, img)
	for i, name := range []string{"a", "b"} {
		if got := oracle.DebugfsDump(t, img, "/"+name); !bytes.Equal(got, pattern(uint64(i), 512*1024)) {
			t.Errorf("%s: contents differ", name)
		}
		st := oracle.DebugfsStat(t, img, "/"+name)
		runs := strings.Count(st.Blocks, ",") + 1
		// 512 data blocks + 4 indirect: with 8-block windows growing to
		// 1024, a few dozen runs at most; interleaving page by page
		// would give hundreds.
		if runs > 60 {
			t.Errorf("%s is in %d runs: %s", name, runs, st.Blocks)
		}
	}
}

func TestTruncate(t *testing.T) {
	const k = 1024
	tests := []struct {
		name     string
		initial  int
		newSize  int64
		blocksOK func(st *oracle.InodeStat) error
	}{
		{"shrink to zero", 600 * k, 0, nil},
		{"shrink into direct", 600 * k, 5*k + 100, nil},
		{"shrink to indirect edge", 600 * k, 12 * k, nil},
		{"shrink into indirect", 600 * k, 100*k + 1, nil},
		{"shrink into double indirect", 600 * k, 300*k + 5, nil},
		{"extend with a hole", 10 * k, 1 << 20, nil},
		{"same size", 20 * k, 20 * k, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img := emptyFilesImage(t, 1024, 256, 8<<20, "f")
			fs := mountImage(t, img, Options{})
			sb0 := fs.Superblock()
			before := sb0.FreeBlocks()
			f := openPath(t, fs, "f")
			data := pattern(7, tc.initial)
			if _, err := f.WriteAt(data, 0); err != nil {
				t.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			if err := f.Truncate(tc.newSize); err != nil {
				t.Fatalf("Truncate(%d): %v", tc.newSize, err)
			}
			// Grow again past the old end: the cut tail must read as
			// zeroes, not as the old bytes.
			if tc.newSize < int64(tc.initial) && tc.newSize > 0 {
				if _, err := f.WriteAt([]byte{0xAB}, tc.newSize+3000); err != nil {
					t.Fatal(err)
				}
			}
			f.Close()
			if err := fs.Close(); err != nil {
				t.Fatal(err)
			}
			oracle.RequireClean(t, img)
			want := make([]byte, tc.newSize)
			copy(want, data)
			if tc.newSize < int64(tc.initial) && tc.newSize > 0 {
				want = append(want, make([]byte, 3001)...)
				want[tc.newSize+3000] = 0xAB
			}
			got := oracle.DebugfsDump(t, img, "/f")
			if !bytes.Equal(got, want) {
				t.Errorf("contents: %d bytes, want %d, first difference at %d", len(got), len(want), firstDiff(got, want))
			}
			if tc.newSize == 0 {
				fs2 := mountImage(t, img, Options{ReadOnly: true})
				sb2 := fs2.Superblock()
				if after := sb2.FreeBlocks(); after != before {
					t.Errorf("free blocks after truncate to 0: %d, before writing %d", after, before)
				}
			}
		})
	}
}

// TestNewInodeUnlinkedOpenIsFreed allocates inodes through NewInode, writes
// them, drops their only (never made) link while open, and checks the last
// close frees blocks and inode: e2fsck finds the image clean and the free
// counts are back.
func TestNewInodeUnlinkedOpenIsFreed(t *testing.T) {
	img := emptyFilesImage(t, 1024, 256, 8<<20)
	fs := mountImage(t, img, Options{})
	sb := fs.Superblock()
	freeB, freeI := sb.FreeBlocks(), sb.FreeInodes()
	root, err := fs.Root()
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Iput(root)
	for i := 0; i < 3; i++ {
		ino, err := fs.NewInode(root, layout.ModeReg|0o644, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		ino.Lock()
		ino.UpdateLocked(func(d *layout.Inode) { d.LinksCount = 1 })
		ino.Unlock()
		f, err := fs.Open(ino, true)
		if err != nil {
			t.Fatal(err)
		}
		fs.Iput(ino)
		if _, err := f.WriteAt(pattern(uint64(i), 300*1024), 0); err != nil {
			t.Fatal(err)
		}
		if sbn := fs.Superblock(); sbn.FreeInodes() != freeI-1 {
			got := sbn.FreeInodes()
			t.Errorf("free inodes with one new inode: %d, want %d", got, freeI-1)
		}
		ino.Lock()
		ino.UpdateLocked(func(d *layout.Inode) { d.LinksCount = 0 })
		ino.Unlock()
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	sb = fs.Superblock()
	if sb.FreeBlocks() != freeB || sb.FreeInodes() != freeI {
		t.Errorf("free blocks, inodes = %d, %d after last close; want %d, %d", sb.FreeBlocks(), sb.FreeInodes(), freeB, freeI)
	}
	if err := fs.Close(); err != nil {
		t.Fatal(err)
	}
	oracle.RequireClean(t, img)
}

// TestNewInodeUnattachedInterim writes a file into a new inode that no
// directory names yet (directory insertion belongs to the directory
// layer, not written yet) and reads it back with debugfs by inode number.
// e2fsck is expected to complain about the unattached inode, and only
// about that.
func TestNewInodeUnattachedInterim(t *testing.T) {
	img := emptyFilesImage(t, 4096, 256, 8<<20)
	fs := mountImage(t, img, Options{})
	root, err := fs.Root()
	if err != nil {
		t.Fatal(err)
	}
	ino, err := fs.NewInode(root, layout.ModeReg|0o640, 1000, 70000)
	fs.Iput(root)
	if err != nil {
		t.Fatal(err)
	}
	n := ino.Ino()
	ino.Lock()
	ino.UpdateLocked(func(d *layout.Inode) { d.LinksCount = 1 })
	ino.Unlock()
	f, err := fs.Open(ino, true)
	fs.Iput(ino)
	if err != nil {
		t.Fatal(err)
	}
	want := pattern(5, 5<<20+11)
	if _, err := f.WriteAt(want, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := fs.Close(); err != nil {
		t.Fatal(err)
	}
	got := oracle.DebugfsDump(t, img, fmt.Sprintf("<%d>", n))
	if !bytes.Equal(got, want) {
		t.Errorf("dump <%d>: %d bytes, want %d, first difference at %d", n, len(got), len(want), firstDiff(got, want))
	}
	st := oracle.DebugfsStat(t, img, fmt.Sprintf("<%d>", n))
	if st.UID != 1000 || st.GID != 70000 || st.Size != uint64(len(want)) {
		t.Errorf("stat <%d>: uid %d gid %d size %d; want 1000 70000 %d", n, st.UID, st.GID, st.Size, len(want))
	}
	res := oracle.FsckRun(t, img)
	if res.Code == 0 {
		t.Fatalf("e2fsck finds an unattached inode clean; the test is not testing what it should:\n%s", res.Output)
	}
	// Between "Pass 1" and the summary, only the unattached inode may
	// be reported.
	inPasses := false
	for _, line := range strings.Split(res.Output, "\n") {
		l := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(l, "Pass 1:"):
			inPasses = true
		case strings.Contains(l, "WARNING: Filesystem still has errors"):
			inPasses = false
		case !inPasses || l == "" || strings.HasPrefix(l, "Pass "):
		case l == fmt.Sprintf("Unattached inode %d", n), l == "Connect to /lost+found? no":
		default:
			t.Errorf("e2fsck complains about more than the unattached inode: %q\n%s", l, res.Output)
		}
	}
}

func TestENOSPC(t *testing.T) {
	img := emptyFilesImage(t, 1024, 128, 2<<20, "f")
	fs := mountImage(t, img, Options{})
	f := openPath(t, fs, "f")
	data := pattern(3, 4<<20)
	n, err := f.WriteAt(data, 0)
	if !errors.Is(err, syscall.ENOSPC) || !errors.Is(err, ErrNoSpace) {
		t.Fatalf("WriteAt of 4 MiB into 2 MiB: %d, %v; want ENOSPC", n, err)
	}
	if n == 0 || n >= len(data) {
		t.Fatalf("WriteAt wrote %d bytes before ENOSPC, want some but not all", n)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := fs.Close(); err != nil {
		t.Fatal(err)
	}
	oracle.RequireClean(t, img)
	got := oracle.DebugfsDump(t, img, "/f")
	if !bytes.Equal(got, data[:n]) {
		t.Errorf("after ENOSPC the file holds %d bytes, want the %d written (first difference at %d)", len(got), n, firstDiff(got, data[:n]))
	}
}
