package block_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mpagefs/mpage/block"
)

// pageBufs returns n page-aligned 4096-byte buffers (from one anonymous
// mapping, as the page cache's frames are) filled with fill.
func pageBufs(t *testing.T, n int, fill byte) [][]byte {
	t.Helper()
	mem, err := unix.Mmap(-1, 0, n*4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatalf("mmap: %v", err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = mem[i*4096 : (i+1)*4096 : (i+1)*4096]
		for j := range bufs[i] {
			bufs[i][j] = fill + byte(i)
		}
	}
	return bufs
}

func directImage(t *testing.T, size int64) (*block.File, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.img")
	f, err := block.CreateFile(path, size)
	if err != nil {
		t.Fatalf("CreateFile: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	if !f.DirectCapable() {
		t.Skipf("the filesystem of %s does not do O_DIRECT or report its alignment", path)
	}
	return f, path
}

// A large aligned write goes through O_DIRECT, and every reader sees it:
// our buffered descriptor, which had the old bytes of the range cached by
// the kernel, and another process's view of the file.
func TestFileDirectWriteIsCoherent(t *testing.T) {
	f, path := directImage(t, 8<<20)
	const off = 1 << 20
	old := pageBufs(t, 1, 'a')
	if err := f.WriteVecAt(old, off); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4096)
	if err := f.ReadVecAt([][]byte{got}, off); err != nil { // now in the kernel's cache
		t.Fatal(err)
	}
	if f.DirectWrites() != 0 {
		t.Fatalf("a 4 KiB write went direct (%d direct calls); want buffered below %d bytes", f.DirectWrites(), block.DirectWriteMin)
	}

	bufs := pageBufs(t, 256, 'A') // 1 MiB
	if err := f.WriteVecAt(bufs, off); err != nil {
		t.Fatal(err)
	}
	if f.DirectWrites() != 1 {
		t.Fatalf("%d direct calls after a 1 MiB aligned write; want 1", f.DirectWrites())
	}
	want := bytes.Join(bufs, nil)
	back := make([]byte, len(want))
	if err := f.ReadVecAt([][]byte{back}, off); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, want) {
		t.Fatalf("buffered read after a direct write returns stale bytes (first byte %q, want %q)", back[0], want[0])
	}
	if err := f.Flush(); err != nil {
		t.Fatal(err)
	}
	disk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(disk[off:off+len(want)], want) {
		t.Fatalf("the file read with os.ReadFile differs from the direct write")
	}
	if !bytes.Equal(disk[:off], make([]byte, off)) {
		t.Fatalf("bytes before the write changed")
	}
}

// Writes that cannot go direct (an unaligned buffer, a small write, a File
// opened Buffered) go through the buffered descriptor and land all
// the same.
func TestFileDirectFallbacks(t *testing.T) {
	f, path := directImage(t, 8<<20)

	// A Go slice starting one byte into an allocation is not aligned.
	odd := make([]byte, 1<<20+1)[1:]
	for i := range odd {
		odd[i] = byte(i * 7)
	}
	if err := f.WriteVecAt([][]byte{odd}, 0); err != nil {
		t.Fatal(err)
	}
	// Aligned pages, but below DirectWriteMin.
	bufs := pageBufs(t, block.DirectWriteMin/4096-1, 'q')
	if err := f.WriteVecAt(bufs, 2<<20); err != nil {
		t.Fatal(err)
	}
	if got := f.DirectWrites(); got != 0 {
		t.Fatalf("%d direct calls; an unaligned buffer and a write below %d bytes must be buffered", got, block.DirectWriteMin)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	g, err := block.OpenFileOptions(path, block.FileOptions{Buffered: true})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if g.DirectCapable() {
		t.Fatalf("a File opened Buffered reports direct writes")
	}
	big := pageBufs(t, 256, 'z')
	if err := g.WriteVecAt(big, 4<<20); err != nil {
		t.Fatal(err)
	}
	if g.DirectWrites() != 0 {
		t.Fatalf("a Buffered File made %d direct calls", g.DirectWrites())
	}
	for _, c := range []struct {
		off  int64
		want []byte
	}{{0, odd}, {2 << 20, bytes.Join(bufs, nil)}, {4 << 20, bytes.Join(big, nil)}} {
		got := make([]byte, len(c.want))
		if err := g.ReadVecAt([][]byte{got}, c.off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, c.want) {
			t.Errorf("bytes at %d differ from what was written", c.off)
		}
	}
}

// With DirectReads, large aligned reads go through O_DIRECT and see every
// write made before them: bytes another descriptor left dirty in the
// kernel's cache (the kernel writes the range back before a direct read),
// and our own buffered small writes. Small or unaligned reads stay
// buffered, a read past the end fails as a buffered one does, and a
// read-only File reads direct too.
func TestFileDirectReads(t *testing.T) {
	f, path := directImage(t, 8<<20)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 2<<20)
	for i := range want {
		want[i] = byte(i*13 + i>>12)
	}
	other, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.WriteAt(want, 1<<20); err != nil { // dirty in the kernel's cache, not synced
		t.Fatal(err)
	}

	for _, readOnly := range []bool{false, true} {
		g, err := block.OpenFileOptions(path, block.FileOptions{ReadOnly: readOnly, DirectReads: true})
		if err != nil {
			t.Fatal(err)
		}
		bufs := pageBufs(t, len(want)/4096, 0)
		if err := g.ReadVecAt(bufs, 1<<20); err != nil {
			t.Fatal(err)
		}
		if g.DirectReads() != 1 {
			t.Fatalf("readOnly %v: %d direct reads after a 2 MiB aligned read; want 1", readOnly, g.DirectReads())
		}
		if !bytes.Equal(bytes.Join(bufs, nil), want) {
			t.Fatalf("readOnly %v: a direct read missed bytes written through another descriptor", readOnly)
		}
		small := pageBufs(t, 1, 0)
		if err := g.ReadVecAt(small, 1<<20); err != nil {
			t.Fatal(err)
		}
		odd := make([]byte, 1<<20+1)[1:]
		if err := g.ReadVecAt([][]byte{odd}, 1<<20); err != nil {
			t.Fatal(err)
		}
		if g.DirectReads() != 1 {
			t.Fatalf("readOnly %v: %d direct reads; a 4 KiB read and an unaligned buffer must be buffered", readOnly, g.DirectReads())
		}
		if !bytes.Equal(small[0], want[:4096]) || !bytes.Equal(odd, want[:1<<20]) {
			t.Fatalf("readOnly %v: buffered reads beside direct ones differ from what was written", readOnly)
		}
		if !readOnly {
			// Our own small buffered write, then a direct read over it.
			patch := pageBufs(t, 1, 'p')
			if err := g.WriteVecAt(patch, 2<<20); err != nil {
				t.Fatal(err)
			}
			copy(want[1<<20:], patch[0])
			if err := g.ReadVecAt(bufs, 1<<20); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(bytes.Join(bufs, nil), want) {
				t.Fatalf("a direct read missed our own buffered write")
			}
		}
		if err := g.ReadVecAt(pageBufs(t, 512, 0), 7<<20); err == nil {
			t.Fatalf("readOnly %v: a 2 MiB read 1 MiB before the end succeeded", readOnly)
		}
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
