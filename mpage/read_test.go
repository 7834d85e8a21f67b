package mpage

import (
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/buffer"
	"github.com/mpagefs/mpage/pagecache"
)

const (
	up     = pagecache.Uptodate
	locked = pagecache.Locked
	perr   = pagecache.Error
	mtd    = pagecache.MappedToDisk
)

func TestReadPagesContiguousOneBio(t *testing.T) {
	for _, bsz := range blockSizes {
		t.Run(bsz.name, func(t *testing.T) {
			e := newEnv(t, bsz.bits)
			bpp := e.bpp()
			e.m.SetSize(4 * pagecache.PageSize)
			e.mp.set(0, 4*bpp, 40)
			pages := e.newPages(0, 1, 2, 3)
			if err := ReadPages(e.m, pages, e.mp.get); err != nil {
				t.Fatalf("ReadPages: got %v, want nil", err)
			}
			e.checkTrace(e.rd(40, 4*bpp))
			for i, p := range pages {
				wantPage(t, p, up|mtd, locked|perr, e.pageOf(run(40+int64(i)*bpp, bpp)...))
				if buffer.HasBuffers(p) {
					t.Errorf("page %d: has buffers, want none on the multi-page path", i)
				}
			}
			if got := e.m.NrPages(); got != 4 {
				t.Errorf("mapping pages: got %d, want 4", got)
			}
		})
	}
}

func TestReadPagesGapTwoBios(t *testing.T) {
	for _, bsz := range blockSizes {
		t.Run(bsz.name, func(t *testing.T) {
			e := newEnv(t, bsz.bits)
			bpp := e.bpp()
			e.m.SetSize(4 * pagecache.PageSize)
			e.mp.set(0, 2*bpp, 10)
			e.mp.set(2*bpp, 2*bpp, 100)
			pages := e.newPages(0, 1, 2, 3)
			ReadPages(e.m, pages, e.mp.get)
			e.checkTrace(e.rd(10, 2*bpp), e.rd(100, 2*bpp))
			for i, p := range pages {
				dev := int64(10) + int64(i)*bpp
				if i >= 2 {
					dev = 100 + int64(i-2)*bpp
				}
				wantPage(t, p, up, locked|perr, e.pageOf(run(dev, bpp)...))
			}
		})
	}
}

// A page whose last blocks are holes ends its bio at once: the next page,
// although its blocks follow on the device, starts a new one.
func TestReadPagesHoleAtEndOfPage(t *testing.T) {
	for _, bsz := range blockSizes[:2] {
		t.Run(bsz.name, func(t *testing.T) {
			e := newEnv(t, bsz.bits)
			bpp := e.bpp()
			e.m.SetSize(2 * pagecache.PageSize)
			e.mp.set(0, 1, 20)     // page 0: block 0 mapped, the rest holes
			e.mp.set(bpp, bpp, 21) // page 1: follows on the device
			pages := e.newPages(0, 1)
			ReadPages(e.m, pages, e.mp.get)
			e.checkTrace(e.rd(20, 1), e.rd(21, bpp))
			holes := make([]int64, bpp-1)
			for i := range holes {
				holes[i] = -1
			}
			wantPage(t, pages[0], up, locked|perr|mtd, e.pageOf(append([]int64{20}, holes...)...))
			wantPage(t, pages[1], up|mtd, locked|perr, e.pageOf(run(21, bpp)...))
		})
	}
}

// At end of file the blocks past i_size are holes: the tail is zeroed, the
// mapper is not asked about them and the bio goes at once.
func TestReadPagesEOFPage(t *testing.T) {
	e := newEnv(t, 10)
	e.m.SetSize(pagecache.PageSize + 1000) // page 1 has one block in the file
	e.mp.set(0, 8, 30)
	pages := e.newPages(0, 1, 2)
	ReadPages(e.m, pages, e.mp.get)
	e.checkTrace(e.rd(30, 5))
	wantPage(t, pages[0], up|mtd, locked|perr, e.pageOf(30, 31, 32, 33))
	wantPage(t, pages[1], up, locked|perr|mtd, e.pageOf(34, -1, -1, -1))
	wantPage(t, pages[2], up, locked|perr, make([]byte, pagecache.PageSize))
	for _, c := range e.mp.callList() {
		if c.iblock > 4 {
			t.Errorf("mapper asked for block %d, past end of file (last block 4)", c.iblock)
		}
	}
}

// A page that is all holes is zeroed and uptodate without I/O, and does not
// break the bio of its neighbours when their blocks are contiguous.
func TestReadPagesAllHolePage(t *testing.T) {
	for _, bsz := range blockSizes {
		t.Run(bsz.name, func(t *testing.T) {
			e := newEnv(t, bsz.bits)
			bpp := e.bpp()
			e.m.SetSize(3 * pagecache.PageSize)
			e.mp.set(0, bpp, 50)
			e.mp.set(2*bpp, bpp, 50+bpp)
			pages := e.newPages(0, 1, 2)
			copy(pages[1].Data, fill(0xee)) // stale bytes that must be zeroed
			ReadPages(e.m, pages, e.mp.get)
			e.checkTrace(e.rd(50, 2*bpp))
			wantPage(t, pages[1], up, locked|perr|mtd, make([]byte, pagecache.PageSize))
			wantPage(t, pages[2], up, locked|perr, e.pageOf(run(50+bpp, bpp)...))
		})
	}
}

// Confused pages are read block by block, after the bio gathered so far.
func TestReadPagesConfused(t *testing.T) {
	tests := []struct {
		name   string
		script func(e *env) // maps page 1 (blocks 4..7); page 0 is at 60..63
		want   func(e *env) []block.Request
		data   func(e *env) []byte // page 1
	}{{
		name: "hole then data",
		script: func(e *env) {
			e.mp.set(5, 3, 65) // block 4 a hole
		},
		want: func(e *env) []block.Request {
			return []block.Request{e.rd(60, 4), e.rd(65, 1), e.rd(66, 1), e.rd(67, 1)}
		},
		data: func(e *env) []byte { return e.pageOf(-1, 65, 66, 67) },
	}, {
		name: "non-contiguous",
		script: func(e *env) {
			e.mp.set(4, 1, 70)
			e.mp.set(5, 1, 72)
			e.mp.set(6, 1, 71)
			e.mp.set(7, 1, 73)
		},
		want: func(e *env) []block.Request {
			return []block.Request{e.rd(60, 4), e.rd(70, 1), e.rd(72, 1), e.rd(71, 1), e.rd(73, 1)}
		},
		data: func(e *env) []byte { return e.pageOf(70, 72, 71, 73) },
	}, {
		name: "mapper fills a block",
		script: func(e *env) {
			e.mp.set(4, 4, 64)
			e.mp.edit(6, func(en *entry) { en.uptodate = true })
		},
		// Block 6 (device 66) is never read: map_buffer_to_page kept it.
		want: func(e *env) []block.Request {
			return []block.Request{e.rd(60, 4), e.rd(64, 1), e.rd(65, 1), e.rd(67, 1)}
		},
		data: func(e *env) []byte { return e.pageOf(64, 65, 66, 67) },
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 10)
			e.m.SetSize(2 * pagecache.PageSize)
			e.mp.set(0, 4, 60)
			tt.script(e)
			pages := e.newPages(0, 1)
			if err := ReadPages(e.m, pages, e.mp.get); err != nil {
				t.Fatalf("ReadPages: got %v, want nil", err)
			}
			e.checkTrace(tt.want(e)...)
			wantPage(t, pages[0], up, locked|perr, e.pageOf(60, 61, 62, 63))
			wantPage(t, pages[1], up, locked|perr, tt.data(e))
			if !buffer.HasBuffers(pages[1]) {
				t.Errorf("confused page: no buffers, want the per-block path's buffers")
			}
		})
	}
}

// With one block per page, an uptodate buffer from the mapper makes the
// page uptodate with no buffers and no I/O (map_buffer_to_page).
func TestReadPagesMapperFilledWholePage(t *testing.T) {
	e := newEnv(t, 12)
	e.m.SetSize(3 * pagecache.PageSize)
	e.mp.set(0, 3, 10)
	e.mp.edit(1, func(en *entry) { en.uptodate = true })
	pages := e.newPages(0, 1, 2)
	ReadPages(e.m, pages, e.mp.get)
	e.checkTrace(e.rd(10, 1), e.rd(12, 1))
	wantPage(t, pages[1], up, locked|perr, e.pageOf(11))
	if buffer.HasBuffers(pages[1]) {
		t.Errorf("page 1: has buffers, want none")
	}
	wantPage(t, pages[2], up, locked|perr, e.pageOf(12))
}

// A mapper error sends the page to the per-block path, which fails it:
// PG_error, not uptodate, unlocked; the other blocks and pages are read.
func TestReadPagesMapperError(t *testing.T) {
	e := newEnv(t, 10)
	e.m.SetSize(3 * pagecache.PageSize)
	e.mp.set(0, 12, 80)
	e.mp.edit(5, func(en *entry) { en.err = errMapper })
	pages := e.newPages(0, 1, 2)
	err := ReadPages(e.m, pages, e.mp.get)
	if !errors.Is(err, errMapper) {
		t.Errorf("ReadPages: got %v, want %v", err, errMapper)
	}
	e.checkTrace(e.rd(80, 4), e.rd(84, 1), e.rd(86, 1), e.rd(87, 1), e.rd(88, 4))
	wantPage(t, pages[0], up, locked|perr, e.pageOf(80, 81, 82, 83))
	wantPage(t, pages[1], perr, locked|up, nil)
	wantPage(t, pages[2], up, locked|perr, e.pageOf(88, 89, 90, 91))
}

// The seed's BH_Boundary example: an ext2-like file with 1 KiB blocks,
// blocks 0..11 direct at 100..111, the indirect block at 112 and blocks
// 12.. at 113..; the mapper reads the indirect block through the queue
// when it first maps block 12. With Boundary on block 11 the disk sees
// data 0..11, the indirect block, then 12..; without it the seed's
// "12 0 1 2 ..." order.
func TestReadPagesBoundary(t *testing.T) {
	for _, tt := range []struct {
		name     string
		boundary bool
		want     func(e *env) []block.Request
	}{
		{"boundary", true, func(e *env) []block.Request { return []block.Request{e.rd(100, 12), e.rd(112, 1), e.rd(113, 12)} }},
		{"no boundary", false, func(e *env) []block.Request { return []block.Request{e.rd(112, 1), e.rd(100, 12), e.rd(113, 12)} }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 10)
			e.m.SetSize(6 * pagecache.PageSize)
			e.mp.set(0, 12, 100)
			e.mp.set(12, 12, 113)
			e.mp.edit(11, func(en *entry) { en.boundary = tt.boundary })
			indirect := make([]byte, e.bs)
			var once sync.Once
			e.mp.hook = func(iblock int64) {
				if iblock < 12 {
					return
				}
				once.Do(func() {
					b := e.q.AllocBio(block.Read, 112*2, 1)
					b.AddPage(indirect, nil)
					if err := e.q.SubmitWait(b); err != nil {
						t.Errorf("indirect block read: %v", err)
					}
				})
			}
			pages := e.newPages(0, 1, 2, 3, 4, 5)
			ReadPages(e.m, pages, e.mp.get)
			e.checkTrace(tt.want(e)...)
			for i, p := range pages {
				dev := int64(100 + 4*i)
				if i >= 3 {
					dev++
				}
				wantPage(t, p, up, locked|perr, e.pageOf(run(dev, 4)...))
			}
		})
	}
}

// A page whose index is already cached is dropped; its neighbours are read.
func TestReadPagesAddPageFails(t *testing.T) {
	e := newEnv(t, 10)
	e.m.SetSize(3 * pagecache.PageSize)
	e.mp.set(0, 12, 10)
	cached := e.m.FindOrCreate(1)
	cached.Unlock()
	pages := e.newPages(0, 1, 2)
	ReadPages(e.m, pages, e.mp.get)
	e.checkTrace(e.rd(10, 4), e.rd(18, 4))
	if e.m.Lookup(1) != cached {
		t.Errorf("page 1: the cached page was replaced")
	}
	if pages[1].Mapping() != nil {
		t.Errorf("dropped page: in a mapping, want none")
	}
	wantPage(t, pages[2], up, locked|perr, e.pageOf(18, 19, 20, 21))
}

// When the bio refuses a page (queue limits) it is submitted and a new one
// takes the page.
func TestReadPagesAddPageRefused(t *testing.T) {
	e := newEnv(t, 12)
	e.m.SetSize(5 * pagecache.PageSize)
	e.mp.set(0, 5, 10)
	e.q.SetAddPageRefuse(func(b *block.Bio, n int) bool { return b.Size()+n > 2*pagecache.PageSize })
	pages := e.newPages(0, 1, 2, 3, 4)
	ReadPages(e.m, pages, e.mp.get)
	e.checkTrace(e.rd(10, 2), e.rd(12, 2), e.rd(14, 1))
	for i, p := range pages {
		wantPage(t, p, up, locked|perr, e.pageOf(10+int64(i)))
	}
}

// When a bio of nrVecs vectors cannot be had, mpage_alloc halves nrVecs.
func TestReadPagesAllocHalving(t *testing.T) {
	e := newEnv(t, 12)
	e.m.SetSize(4 * pagecache.PageSize)
	e.mp.set(0, 4, 10)
	var mu sync.Mutex
	var asked []int
	e.q.SetAllocFault(func(nrVecs int) bool {
		mu.Lock()
		asked = append(asked, nrVecs)
		mu.Unlock()
		return nrVecs > 2
	})
	pages := e.newPages(0, 1, 2, 3)
	ReadPages(e.m, pages, e.mp.get)
	e.checkTrace(e.rd(10, 2), e.rd(12, 2))
	mu.Lock()
	if want := []int{4, 2, 2}; !slices.Equal(asked, want) {
		t.Errorf("AllocBio vector counts: got %v, want %v", asked, want)
	}
	mu.Unlock()
	for i, p := range pages {
		wantPage(t, p, up, locked|perr, e.pageOf(10+int64(i)))
	}
}

// With no bio to be had at all every page takes the per-block path, which
// still reads it correctly.
func TestReadPagesAllocAlwaysFails(t *testing.T) {
	e := newEnv(t, 11)
	e.m.SetSize(2 * pagecache.PageSize)
	e.mp.set(0, 4, 30)
	e.q.SetAllocFault(func(int) bool { return true })
	pages := e.newPages(0, 1)
	ReadPages(e.m, pages, e.mp.get)
	e.checkTrace(e.rd(30, 1), e.rd(31, 1), e.rd(32, 1), e.rd(33, 1))
	wantPage(t, pages[0], up, locked|perr, e.pageOf(30, 31))
	wantPage(t, pages[1], up, locked|perr, e.pageOf(32, 33))
}

// A device read error fails every page of the bio.
func TestReadPagesDeviceError(t *testing.T) {
	e := newEnv(t, 12)
	e.m.SetSize(3 * pagecache.PageSize)
	e.mp.set(0, 2, devBlocks-1) // the second page is past the device's end
	e.mp.set(2, 1, 5)
	pages := e.newPages(0, 1, 2)
	ReadPages(e.m, pages, e.mp.get)
	e.waitIO()
	wantPage(t, pages[0], perr, locked|up, nil)
	wantPage(t, pages[1], perr, locked|up, nil)
	wantPage(t, pages[2], up, locked|perr, e.pageOf(5))
}

func TestReadPage(t *testing.T) {
	e := newEnv(t, 10)
	e.m.SetSize(pagecache.PageSize)
	e.mp.set(0, 4, 90)
	p := e.m.FindOrCreate(0)
	if err := ReadPage(p, e.mp.get); err != nil {
		t.Fatalf("ReadPage: got %v, want nil", err)
	}
	e.checkTrace(e.rd(90, 4))
	wantPage(t, p, up|mtd, locked|perr, e.pageOf(90, 91, 92, 93))
}
