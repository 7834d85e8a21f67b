package flat

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/pagecache"
)

// mount makes a queue over dev and mounts cfg on it; both are closed at
// cleanup (the filesystem first).
func mount(t testing.TB, dev block.Device, cfg Config) (*FS, *block.Queue) {
	t.Helper()
	q := block.NewQueue(dev, block.Config{})
	fsys, err := New(q, cfg)
	if err != nil {
		q.Close()
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		fsys.Close()
		q.Close()
	})
	return fsys, q
}

// open opens name and closes it at cleanup.
func open(t testing.TB, fsys *FS, name string) *File {
	t.Helper()
	f, err := fsys.Open(name)
	if err != nil {
		t.Fatalf("Open(%q): %v", name, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// within runs f and fails the test, with every goroutine's stack, if it
// does not return within d: a hang (a page left locked, a lost wakeup)
// fails instead of stalling the test binary.
func within(t testing.TB, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		pprof.Lookup("goroutine").WriteTo(os.Stderr, 2)
		t.Fatalf("%s did not finish within %v (goroutines dumped above)", what, d)
	}
}

// genPage fills buf (a page) with the self-describing contents of file
// page index at version v: every 8-byte word holds index, v and its own
// position, so a reader can tell which write a page came from.
func genPage(buf []byte, index, v int64) {
	for i := 0; i+8 <= len(buf); i += 8 {
		w := uint64(index)<<40 ^ uint64(v)<<16 ^ uint64(i/8)
		binary.LittleEndian.PutUint64(buf[i:], w*0x9E3779B97F4A7C15)
	}
	binary.LittleEndian.PutUint32(buf[0:], uint32(index))
	binary.LittleEndian.PutUint32(buf[4:], uint32(v))
}

// pageVersion checks that page holds genPage(index, v) for some v and
// returns v.
func pageVersion(page []byte, index int64) (int64, error) {
	gotIndex := int64(binary.LittleEndian.Uint32(page[0:]))
	v := int64(binary.LittleEndian.Uint32(page[4:]))
	if gotIndex != index {
		return 0, fmt.Errorf("page %d holds the header of page %d (version %d)", index, gotIndex, v)
	}
	want := make([]byte, len(page))
	genPage(want, index, v)
	if i := firstDiff(page, want); i >= 0 {
		return 0, fmt.Errorf("page %d version %d is torn or corrupt at byte %d", index, v, i)
	}
	return v, nil
}

// firstDiff is the first index where a and b differ, or -1.
func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// fileBytes reads the bytes of file name, from 0 to size, straight from
// the device through the filesystem's extent table; blocks that are not
// allocated (holes) read as zeros, whatever the device holds there.
func fileBytes(t testing.TB, fsys *FS, mem []byte, name string, size int64) []byte {
	t.Helper()
	out := make([]byte, size)
	bs := int64(fsys.BlockSize())
	ino := fsys.inodes[name]
	for off := int64(0); off < size; off += bs {
		b := off / bs
		ino.allocMu.Lock()
		allocated := ino.alloc[b/64]&(1<<(b%64)) != 0
		ino.allocMu.Unlock()
		if !allocated {
			continue
		}
		dev, ok := fsys.DeviceOffset(name, off)
		if !ok {
			t.Fatalf("file %s offset %d has no device offset", name, off)
		}
		copy(out[off:min(off+bs, size)], mem[dev:])
	}
	return out
}

// putFile writes data as the contents of file name straight onto the
// device, before mounting (the file's Size must cover it).
func putFile(t testing.TB, mem []byte, bs int, spec FileSpec, data []byte) {
	t.Helper()
	var fileBlock int64
	for _, e := range spec.Extents {
		for b := int64(0); b < e.Len; b++ {
			off := (fileBlock + b) * int64(bs)
			if off >= int64(len(data)) {
				return
			}
			copy(mem[(e.Start+b)*int64(bs):(e.Start+b+1)*int64(bs)], data[off:min(off+int64(bs), int64(len(data)))])
		}
		fileBlock += e.Len
	}
}

// fragmented returns an extent table of n extents of blocks each, laid
// out on the device in reverse order with a one-block gap between them,
// starting at device block start, so no two file-adjacent extents are
// device-adjacent.
func fragmented(start, n, blocks int64) []Extent {
	ext := make([]Extent, n)
	for i := range n {
		ext[i] = Extent{Start: start + (n-1-i)*(blocks+1), Len: blocks}
	}
	return ext
}

// genFile is n bytes of genPage contents at version 0.
func genFile(n int64) []byte {
	out := make([]byte, (n+pagecache.PageSize-1)/pagecache.PageSize*pagecache.PageSize)
	for i := int64(0); i < int64(len(out))/pagecache.PageSize; i++ {
		genPage(out[i*pagecache.PageSize:(i+1)*pagecache.PageSize], i, 0)
	}
	return out[:n]
}
