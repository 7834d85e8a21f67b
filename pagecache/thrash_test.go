package pagecache

import (
	"bytes"
	"fmt"
	"testing"
)

// Several sequential readers sharing a cache too small for all their
// readahead windows: each file is read from start to end, 1 MiB at a
// time, the readers taking turns. Pages read ahead for one reader must
// not be evicted by the others' windows before they are used, over and
// over (readahead thrashing: 2.6.12's handle_ra_miss): the files' pages
// are read from the store at most 1.25 times in all, and every byte read
// is right.
func TestReadaheadSharedCacheDoesNotThrash(t *testing.T) {
	for _, tc := range []struct {
		files int
		limit int64
		bound float64 // most pages read per page of the files
	}{
		{2, 4 << 20, 1.25},
		{4, 16 << 20, 1.25},
		{9, 16 << 20, 1.25},
		{16, 32 << 20, 1.25},
		// The readers' 1 MiB requests alone fill the cache: any page
		// read ahead is evicted before use, and only the thrashing
		// detection limits the loss (3.4x before it).
		{16, 16 << 20, 1.6},
	} {
		t.Run(fmt.Sprintf("%d readers, %d MiB cache", tc.files, tc.limit>>20), func(t *testing.T) {
			const pages = 2048 // 8 MiB per file
			c := NewCache(Config{Limit: tc.limit})
			type reader struct {
				m    *Mapping
				o    *memOps
				ra   *ReadaheadState
				data []byte
			}
			rs := make([]reader, tc.files)
			for i := range rs {
				data := pattern(pages*PageSize, byte(i+1))
				o := newMemOps(t, data, false)
				m := c.NewMapping(o, 12)
				m.SetSize(int64(len(data)))
				rs[i] = reader{m, o, NewReadaheadState(0), data}
			}
			buf := make([]byte, 1<<20)
			for off := int64(0); off < pages*PageSize; off += int64(len(buf)) {
				for i, r := range rs {
					n, err := r.m.Read(r.ra, buf, off)
					if err != nil || n != len(buf) {
						t.Fatalf("reader %d at %d: got %d, %v", i, off, n, err)
					}
					if !bytes.Equal(buf, r.data[off:off+int64(n)]) {
						t.Fatalf("reader %d at %d: bytes differ from the file's", i, off)
					}
				}
			}
			total := int64(0)
			for _, r := range rs {
				for _, n := range r.o.readBatches() {
					total += int64(n)
				}
				total += r.o.readPageCalls.Load()
			}
			want := int64(tc.files) * pages
			t.Logf("pages read %d for %d pages of data (%.2fx)", total, want, float64(total)/float64(want))
			if limit := int64(float64(want) * tc.bound); total > limit {
				t.Errorf("pages read from the store got %d, want at most %d (%.2fx the %d pages of the files)", total, limit, tc.bound, want)
			}
		})
	}
}

// Small files read between the reads of a large one do not count as
// streams sharing the cache: the large file's readahead still reaches the
// full window.
func TestReadaheadSmallFilesDoNotShrinkLargeStream(t *testing.T) {
	const pages = 4096 // 16 MiB
	c := NewCache(Config{Limit: 16 << 20})
	data := pattern(pages*PageSize, 7)
	o := newMemOps(t, data, false)
	m := c.NewMapping(o, 12)
	m.SetSize(int64(len(data)))
	ra := NewReadaheadState(0)
	small := pattern(3*PageSize, 9)
	buf := make([]byte, 1<<20)
	sbuf := make([]byte, len(small))
	for off := int64(0); off < pages*PageSize; off += int64(len(buf)) {
		if n, err := m.Read(ra, buf, off); err != nil || n != len(buf) || !bytes.Equal(buf, data[off:off+int64(n)]) {
			t.Fatalf("large file at %d: got %d, %v or wrong bytes", off, n, err)
		}
		for range 200 {
			so := newMemOps(t, small, false)
			sm := c.NewMapping(so, 12)
			sm.SetSize(int64(len(small)))
			if n, err := sm.Read(NewReadaheadState(0), sbuf, 0); err != nil || n != len(small) {
				t.Fatalf("small file: got %d, %v", n, err)
			}
		}
	}
	largest := 0
	for _, n := range o.readBatches() {
		largest = max(largest, n)
	}
	if want := c.MaxReadahead(); largest < want {
		t.Errorf("largest readahead batch of the large file got %d pages, want %d (the full window)", largest, want)
	}
}
