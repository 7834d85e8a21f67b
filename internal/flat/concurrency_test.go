package flat

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/pagecache"
	"github.com/mpagefs/mpage/writeback"
)

// TestConcurrentStack loads one mapping from every side at once, in a
// page cache far smaller than the file, with the flusher running:
//
//   - three writers write whole pages of their own stripes of the file,
//     each page self-describing (genPage) with a version that only grows;
//   - a fourth writer writes unaligned byte ranges of random bytes into
//     its own stripes;
//   - two readers read the file sequentially in 64 KiB calls and check
//     every page of the first three writers: it must be a whole version
//     of that page (no torn page), not newer than its writer announced
//     and never older than a version the same reader saw before (an older
//     one would be a lost write resurfacing from disk after eviction);
//   - a goroutine grows the file past the writers' range and truncates it
//     back, and drops clean pages of the file (InvalidateClean);
//   - a goroutine writes and truncates a second file, checking every
//     read against its model;
//   - a sampler checks that the cache's resident pages never exceed its
//     limit.
//
// At the end every handle syncs without error, and the device holds
// exactly the in-memory model of both files.
func TestConcurrentStack(t *testing.T) {
	const (
		bs          = 1024
		fileSize    = 16 << 20
		filePages   = fileSize / pagecache.PageSize
		tailBytes   = 1 << 20
		sideCap     = 256 << 10
		stripePages = 16
		nWriters    = 4 // the last one writes unaligned bytes
		nReaders    = 2
		opsPerW     = 300
		cacheLimit  = 2 << 20
	)
	blocksPerExt := int64((fileSize+tailBytes)/bs) / 4
	mainSpec := FileSpec{Name: "main", Extents: fragmented(0, 4, blocksPerExt), Size: fileSize}
	sideStart := 4 * (blocksPerExt + 1)
	sideSpec := FileSpec{Name: "side", Extents: Linear(sideStart, sideCap/bs)}
	mem := block.NewMemory((sideStart + sideCap/bs + 8) * bs)
	model := genFile(fileSize)
	putFile(t, mem.Bytes(), bs, mainSpec, model)
	model = bytes.Clone(model)

	fsys, _ := mount(t, mem, Config{
		BlockSize:   bs,
		Files:       []FileSpec{mainSpec, sideSpec},
		CacheConfig: pagecache.Config{Limit: cacheLimit},
		Writeback:   writeback.Config{Interval: 10 * time.Millisecond, Expire: 20 * time.Millisecond},
	})
	cache := fsys.Cache()
	limit := cache.LimitPages()
	owner := func(page int64) int { return int(page/stripePages) % nWriters }

	var (
		announced [filePages]atomic.Int64 // highest version a writer started to write, per page
		stop      atomic.Bool
		failures  atomic.Int32
		maxPages  atomic.Int64
		dropped   atomic.Int64
		handles   []*File
		hmu       sync.Mutex
	)
	fail := func(format string, args ...any) {
		if failures.Add(1) <= 10 {
			t.Errorf(format, args...)
		}
		stop.Store(true)
	}
	openH := func(name string) *File {
		f := open(t, fsys, name)
		hmu.Lock()
		handles = append(handles, f)
		hmu.Unlock()
		return f
	}

	var writers, others sync.WaitGroup
	for w := range nWriters {
		f := openH("main")
		writers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			stripes := filePages / stripePages / nWriters
			for range opsPerW {
				if stop.Load() {
					return
				}
				stripe := int64(rng.IntN(stripes)*nWriters + w)
				first := stripe * stripePages
				if w == nWriters-1 {
					// Unaligned random bytes within one stripe.
					off := first*pagecache.PageSize + int64(rng.IntN(stripePages*pagecache.PageSize-1))
					n := min(int64(1+rng.IntN(3*pagecache.PageSize)), (first+stripePages)*pagecache.PageSize-off)
					buf := make([]byte, n)
					for i := range buf {
						buf[i] = byte(rng.Uint32())
					}
					if _, err := f.WriteAt(buf, off); err != nil {
						fail("writer %d: WriteAt(%d bytes at %d): %v", w, n, off, err)
						return
					}
					copy(model[off:], buf)
					continue
				}
				start := first + int64(rng.IntN(stripePages))
				n := min(int64(1+rng.IntN(8)), first+stripePages-start)
				buf := make([]byte, n*pagecache.PageSize)
				for i := range n {
					v := announced[start+i].Add(1)
					genPage(buf[i*pagecache.PageSize:(i+1)*pagecache.PageSize], start+i, v)
				}
				if _, err := f.WriteAt(buf, start*pagecache.PageSize); err != nil {
					fail("writer %d: WriteAt(pages %d+%d): %v", w, start, n, err)
					return
				}
				copy(model[start*pagecache.PageSize:], buf)
			}
		})
	}

	for r := range nReaders {
		f := openH("main")
		others.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 11))
			seen := make([]int64, filePages)
			buf := make([]byte, 64<<10)
			for !stop.Load() {
				start := int64(rng.IntN(filePages)) * pagecache.PageSize
				end := min(start+int64(64<<10+rng.IntN(1<<20)), fileSize)
				for off := start; off < end && !stop.Load(); off += int64(len(buf)) {
					rbuf := buf[:min(int64(len(buf)), end-off)]
					n, err := f.ReadAt(rbuf, off)
					if err != nil || n != len(rbuf) {
						fail("reader %d: ReadAt(%d): %d, %v", r, off, n, err)
						return
					}
					for i := 0; i+pagecache.PageSize <= n; i += pagecache.PageSize {
						page := (off + int64(i)) / pagecache.PageSize
						if owner(page) == nWriters-1 {
							continue
						}
						v, err := pageVersion(rbuf[i:i+pagecache.PageSize], page)
						if err != nil {
							fail("reader %d: %v", r, err)
							return
						}
						if a := announced[page].Load(); v > a {
							fail("reader %d: page %d at version %d, but its writer has announced only %d", r, page, v, a)
							return
						}
						if v < seen[page] {
							fail("reader %d: page %d went back from version %d to %d (lost write)", r, page, seen[page], v)
							return
						}
						seen[page] = v
					}
				}
			}
		})
	}

	// Grow the file past the writers' range, truncate it back, and drop
	// clean pages.
	tailF := openH("main")
	others.Go(func() {
		rng := rand.New(rand.NewPCG(3, 3))
		for !stop.Load() {
			off := int64(fileSize + rng.IntN(tailBytes/2))
			buf := bytes.Repeat([]byte{0xEE}, 1+rng.IntN(64<<10))
			if _, err := tailF.WriteAt(buf, off); err != nil {
				fail("tail: WriteAt(%d bytes at %d): %v", len(buf), off, err)
				return
			}
			if err := tailF.Truncate(fileSize); err != nil {
				fail("tail: Truncate: %v", err)
				return
			}
			if s := tailF.Size(); s != fileSize {
				fail("tail: size after truncate is %d, want %d", s, fileSize)
				return
			}
			dropped.Add(int64(fsys.Mapping("main").InvalidateClean()))
			time.Sleep(time.Millisecond)
		}
	})

	// The side file: writes and truncations checked against a model.
	sideF := openH("side")
	var sideModel []byte
	others.Go(func() {
		rng := rand.New(rand.NewPCG(5, 5))
		for !stop.Load() {
			if rng.IntN(3) == 0 {
				size := int64(rng.IntN(sideCap))
				if err := sideF.Truncate(size); err != nil {
					fail("side: Truncate(%d): %v", size, err)
					return
				}
				if size < int64(len(sideModel)) {
					sideModel = sideModel[:size]
				} else {
					sideModel = append(sideModel, make([]byte, size-int64(len(sideModel)))...)
				}
			} else {
				off := int64(rng.IntN(sideCap - 1))
				buf := make([]byte, min(int64(1+rng.IntN(16<<10)), sideCap-off))
				for i := range buf {
					buf[i] = byte(rng.Uint32())
				}
				if _, err := sideF.WriteAt(buf, off); err != nil {
					fail("side: WriteAt(%d bytes at %d): %v", len(buf), off, err)
					return
				}
				if end := off + int64(len(buf)); end > int64(len(sideModel)) {
					sideModel = append(sideModel, make([]byte, end-int64(len(sideModel)))...)
				}
				copy(sideModel[off:], buf)
			}
			got := make([]byte, len(sideModel)+1)
			n, _ := sideF.ReadAt(got, 0)
			if n != len(sideModel) || !bytes.Equal(got[:n], sideModel) {
				fail("side: read back %d bytes, want %d; first difference at %d", n, len(sideModel), firstDiff(got[:n], sideModel))
				return
			}
			dropped.Add(int64(fsys.Mapping("side").InvalidateClean()))
		}
	})

	// The memory limit, sampled.
	others.Go(func() {
		for !stop.Load() {
			p := cache.Stats().Pages
			if p > maxPages.Load() {
				maxPages.Store(p)
			}
			if p > limit {
				fail("cache holds %d pages, over its limit of %d", p, limit)
				return
			}
			time.Sleep(200 * time.Microsecond)
		}
	})

	within(t, 50*time.Second, "the concurrent load", func() {
		writers.Wait()
		stop.Store(true)
		others.Wait()
	})
	if t.Failed() {
		return
	}

	within(t, 20*time.Second, "Sync of every handle", func() {
		for i, f := range handles {
			if err := f.Sync(); err != nil {
				t.Errorf("handle %d (%s): Sync: %v", i, f.Name(), err)
			}
		}
	})
	got := fileBytes(t, fsys, mem.Bytes(), "main", fileSize)
	if i := firstDiff(got, model); i >= 0 {
		page := int64(i / pagecache.PageSize)
		t.Errorf("main: device differs from the model at byte %d (page %d, writer %d)%s",
			i, page, owner(page), versions(got, model, page, owner(page) != nWriters-1))
	}
	if got := fileBytes(t, fsys, mem.Bytes(), "side", int64(len(sideModel))); !bytes.Equal(got, sideModel) {
		t.Errorf("side: device differs from the model at byte %d", firstDiff(got, sideModel))
	}

	st := cache.Stats()
	fst := fsys.Flusher().Stats()
	t.Logf("cache: %+v; max sampled pages %d of %d; dropped by InvalidateClean %d; flusher: %+v; queue: %+v",
		st, maxPages.Load(), limit, dropped.Load(), fst, fsys.Queue().Stats())
	if st.PeakPages > limit {
		t.Errorf("cache peak: got %d pages, want at most the limit %d", st.PeakPages, limit)
	}
	// The load must have done what it is meant to exercise.
	if st.Evicted == 0 {
		t.Errorf("no page was evicted: the cache limit was not reached")
	}
	if fst.BackgroundPages+fst.ExpiredPages == 0 {
		t.Errorf("the flusher wrote no page in the background")
	}
}

// versions describes the versions of page in got and want, for pages of
// the aligned writers.
func versions(got, want []byte, page int64, aligned bool) string {
	if !aligned {
		return ""
	}
	p := func(b []byte) string {
		v, err := pageVersion(b[page*pagecache.PageSize:(page+1)*pagecache.PageSize], page)
		if err != nil {
			return err.Error()
		}
		return fmt.Sprintf("version %d", v)
	}
	return fmt.Sprintf(": device has %s, model %s", p(got), p(want))
}
