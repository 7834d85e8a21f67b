package flat

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/pagecache"
)

// TestSequentialRequestShape writes a 64 MiB contiguous file in 1 MiB
// writes, syncs, and reads it back cold through a new mount: the page
// cache, mpage and the queue must turn that into few large device calls
// (at least 1 MiB per call on average, each way), counted from the
// queue's Stats.
func TestSequentialRequestShape(t *testing.T) {
	const (
		size  = 64 << 20
		chunk = 1 << 20
		bs    = 4096
	)
	spec := FileSpec{Name: "f", Extents: Linear(0, size/bs)}
	mem := block.NewMemory(size)
	cacheCfg := pagecache.Config{Limit: 32 << 20, MaxReadahead: 512}
	fsys, q := mount(t, mem, Config{BlockSize: bs, Files: []FileSpec{spec}, CacheConfig: cacheCfg})
	f := open(t, fsys, "f")
	buf := make([]byte, chunk)
	within(t, 40*time.Second, "sequential write and Sync", func() {
		for off := int64(0); off < size; off += chunk {
			genPage(buf, off/chunk, 1)
			if _, err := f.WriteAt(buf, off); err != nil {
				t.Fatalf("WriteAt(%d): %v", off, err)
			}
		}
		if err := f.Sync(); err != nil {
			t.Fatalf("Sync: %v", err)
		}
	})
	w := q.Stats()
	if w.BytesWritten < size {
		t.Fatalf("queue wrote %d bytes, want at least %d", w.BytesWritten, size)
	}
	perWrite := w.BytesWritten / max(w.WriteCalls, 1)
	t.Logf("write: %d calls, %d bytes, %.2f MiB per call, largest %d; cache %+v",
		w.WriteCalls, w.BytesWritten, float64(perWrite)/(1<<20), w.LargestRequest, fsys.Cache().Stats())
	if perWrite < 1<<20 {
		t.Errorf("write: got %d bytes per device call on average, want at least 1 MiB", perWrite)
	}

	spec.Size = size
	fsys2, q2 := mount(t, mem, Config{BlockSize: bs, Files: []FileSpec{spec}, CacheConfig: cacheCfg})
	g := open(t, fsys2, "f")
	want := make([]byte, chunk)
	within(t, 40*time.Second, "cold sequential read", func() {
		for off := int64(0); off < size; off += chunk {
			n, err := g.ReadAt(buf, off)
			if n != chunk || (err != nil && err != io.EOF) {
				t.Fatalf("ReadAt(%d): got %d, %v", off, n, err)
			}
			genPage(want, off/chunk, 1)
			if !bytes.Equal(buf, want) {
				t.Fatalf("ReadAt(%d): data differs at byte %d", off, firstDiff(buf, want))
			}
		}
	})
	r := q2.Stats()
	reads, readBytes := r.ReadCalls, r.BytesRead
	perRead := readBytes / max(reads, 1)
	t.Logf("read: %d calls, %d bytes, %.2f MiB per call", reads, readBytes, float64(perRead)/(1<<20))
	if readBytes < size {
		t.Errorf("cold read: queue read %d bytes, want at least %d", readBytes, size)
	}
	if perRead < 1<<20 {
		t.Errorf("cold read: got %d bytes per device call on average, want at least 1 MiB", perRead)
	}
}
