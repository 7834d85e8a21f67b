package mpage

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/buffer"
	"github.com/mpagefs/mpage/pagecache"
)

const (
	dirty = pagecache.Dirty
	wb    = pagecache.Writeback
)

// fallback records the pages handed to the filesystem's writepage and
// writes them with buffer.WriteFullPage.
type fallback struct {
	e     *env
	mu    sync.Mutex
	pages []int64
}

func (f *fallback) writepage(p *pagecache.Page, wbc *pagecache.WritebackControl) error {
	f.mu.Lock()
	f.pages = append(f.pages, p.Index)
	f.mu.Unlock()
	return buffer.WriteFullPage(p, f.e.mp.get, wbc)
}

func (f *fallback) got() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.pages)
}

// wantState checks a page after writeback: unlocked, flags in want set,
// those in not clear.
func wantState(t *testing.T, p *pagecache.Page, want, not pagecache.Flags) {
	t.Helper()
	wantPage(t, p, want, not, nil)
}

// wantDev checks device block n against data.
func (e *env) wantDev(n int64, data []byte) {
	e.t.Helper()
	if got := e.devBlock(n); !bytes.Equal(got, data) {
		e.t.Errorf("device block %d: differs from the expected at byte %d", n, firstDiff(got, data))
	}
}

// wantDevPage checks that the device blocks from dev hold page data.
func (e *env) wantDevPage(dev int64, data []byte) {
	e.t.Helper()
	for i := int64(0); i < e.bpp(); i++ {
		e.wantDev(dev+i, data[i*int64(e.bs):(i+1)*int64(e.bs)])
	}
}

// syncAll is a whole-file integrity pass.
func syncAll() *pagecache.WritebackControl {
	return &pagecache.WritebackControl{SyncMode: pagecache.SyncAll, NrToWrite: math.MaxInt64}
}

func TestWritePagesContiguousOneBio(t *testing.T) {
	for _, bsz := range blockSizes {
		t.Run(bsz.name, func(t *testing.T) {
			e := newEnv(t, bsz.bits)
			bpp := e.bpp()
			e.m.SetSize(4 * pagecache.PageSize)
			e.mp.set(0, 4*bpp, 40)
			var pages []*pagecache.Page
			for i := range int64(4) {
				pages = append(pages, e.dirtyPage(i, fill(byte('a'+i))))
			}
			wbc := syncAll()
			f := &fallback{e: e}
			if err := WritePages(e.m, wbc, e.mp.get, f.writepage); err != nil {
				t.Fatalf("WritePages: got %v, want nil", err)
			}
			e.checkTrace(e.wr(40, 4*bpp))
			for i, p := range pages {
				wantState(t, p, up, dirty|wb|perr)
				e.wantDevPage(40+int64(i)*bpp, fill(byte('a'+i)))
			}
			if wbc.PagesWritten != 4 {
				t.Errorf("PagesWritten: got %d, want 4", wbc.PagesWritten)
			}
			if got := f.got(); len(got) != 0 {
				t.Errorf("fallback writepage called for pages %v, want none", got)
			}
			if e.m.Tagged(pagecache.TagDirty) {
				t.Errorf("mapping still tagged dirty")
			}
		})
	}
}

// Newly allocated blocks drop their stale metadata alias: a dirty buffer of
// the metadata cache for the same block must not overwrite the file data
// when the cache is synced later (unmap_underlying_metadata).
func TestWritePagesNewBlockUnmapsMetadata(t *testing.T) {
	e := newEnv(t, 10)
	c := buffer.NewCache(e.q, e.bs, buffer.CacheConfig{})
	t.Cleanup(c.Close)
	bh := c.Getblk(devBlocks / 2) // the mapper's first free block
	copy(bh.Data, bytes.Repeat([]byte("META"), e.bs/4))
	bh.Set(buffer.Uptodate)
	c.MarkDirty(bh)
	c.Release(bh)

	e.m.SetSize(pagecache.PageSize)
	p := e.dirtyPage(0, fill('d'))
	if err := WritePages(e.m, syncAll(), e.mp.get, nil); err != nil {
		t.Fatalf("WritePages: got %v, want nil", err)
	}
	if err := c.Sync(); err != nil {
		t.Fatalf("cache Sync: %v", err)
	}
	e.checkTrace(e.wr(devBlocks/2, 4))
	wantState(t, p, up, dirty|wb|perr)
	e.wantDevPage(devBlocks/2, fill('d'))
}

// The seed's boundary case on the write side: the data bio ending at block
// 11 is submitted at once and the dirty indirect block after it is written
// next (write_boundary_block), before the data of blocks 12...
func TestWritePagesBoundary(t *testing.T) {
	e := newEnv(t, 10)
	c := buffer.NewCache(e.q, e.bs, buffer.CacheConfig{})
	t.Cleanup(c.Close)
	indirect := bytes.Repeat([]byte("IND!"), e.bs/4)
	bh := c.Getblk(112)
	copy(bh.Data, indirect)
	bh.Set(buffer.Uptodate)
	c.MarkDirty(bh)
	c.Release(bh)

	e.m.SetSize(4 * pagecache.PageSize)
	e.mp.set(0, 12, 100)
	e.mp.set(12, 4, 113)
	e.mp.edit(11, func(en *entry) { en.boundary = true })
	for i := range int64(4) {
		e.dirtyPage(i, fill(byte('0'+i)))
	}
	if err := WritePages(e.m, syncAll(), e.mp.get, nil); err != nil {
		t.Fatalf("WritePages: got %v, want nil", err)
	}
	e.checkTrace(e.wr(100, 12), e.wr(112, 1), e.wr(113, 4))
	e.wantDev(112, indirect)
	e.wantDevPage(100, fill('0'))
	e.wantDevPage(113, fill('3'))
}

// The page straddling end of file has its tail zeroed, on disk too; blocks
// past end of file are neither mapped nor written.
func TestWritePagesEOFTail(t *testing.T) {
	for _, bsz := range []struct {
		name string
		bits uint
		want func(e *env) []block.Request
	}{
		// One block per page: the EOF page joins the bio.
		{"4KiB", 12, func(e *env) []block.Request { return []block.Request{e.wr(40, 2)} }},
		// The EOF page's bio is cut after its one block in the file.
		{"1KiB", 10, func(e *env) []block.Request { return []block.Request{e.wr(40, 5)} }},
	} {
		t.Run(bsz.name, func(t *testing.T) {
			e := newEnv(t, bsz.bits)
			e.m.SetSize(pagecache.PageSize + 100)
			e.mp.set(0, 2*e.bpp(), 40)
			e.dirtyPage(0, fill('b'))
			p := e.dirtyPage(1, fill('a'))
			if err := WritePages(e.m, syncAll(), e.mp.get, nil); err != nil {
				t.Fatalf("WritePages: got %v, want nil", err)
			}
			e.checkTrace(bsz.want(e)...)
			wantState(t, p, up, dirty|wb|perr)
			want := append(bytes.Repeat([]byte{'a'}, 100), make([]byte, e.bs-100)...)
			e.wantDev(40+e.bpp(), want)
			if !bytes.Equal(p.Data[100:], make([]byte, pagecache.PageSize-100)) {
				t.Errorf("page tail past end of file not zeroed in memory")
			}
			if e.bpp() > 1 {
				e.wantDev(45, pattern(45, e.bs))
				for _, c := range e.mp.callList() {
					if c.iblock > 4 {
						t.Errorf("mapper asked for block %d, past end of file", c.iblock)
					}
				}
			}
		})
	}
}

// A page wholly past end of file (truncate racing) goes to the fallback,
// which only unlocks it.
func TestWritePagesPastEOF(t *testing.T) {
	e := newEnv(t, 12)
	e.m.SetSize(2 * pagecache.PageSize)
	e.mp.set(0, 3, 40)
	for i := range int64(3) {
		e.dirtyPage(i, fill(byte('a'+i)))
	}
	p2 := e.m.Lookup(2)
	f := &fallback{e: e}
	if err := WritePages(e.m, syncAll(), e.mp.get, f.writepage); err != nil {
		t.Fatalf("WritePages: got %v, want nil", err)
	}
	e.checkTrace(e.wr(40, 2))
	if got, want := f.got(), []int64{2}; !slices.Equal(got, want) {
		t.Errorf("fallback pages: got %v, want %v", got, want)
	}
	wantState(t, p2, 0, wb|perr)
	e.wantDev(42, pattern(42, e.bs))
	for _, c := range e.mp.callList() {
		if c.iblock == 2 {
			t.Errorf("mapper asked to allocate block 2, past end of file")
		}
	}
}

// withBuffers puts a dirty page at index whose buffers have the given
// states and device blocks (-1: unmapped).
func (e *env) withBuffers(index int64, data []byte, devs []int64, states []buffer.State) *pagecache.Page {
	e.t.Helper()
	p := e.m.FindOrCreate(index)
	copy(p.Data, data)
	p.SetUptodate()
	bh := buffer.CreateEmptyBuffers(p, e.bs, 0)
	for i := range devs {
		bh.SetState(states[i])
		if devs[i] >= 0 {
			bh.Map(e.q, devs[i])
		}
		bh = bh.Next()
	}
	p.SetDirty()
	p.Unlock()
	return p
}

func TestWritePagesWithBuffers(t *testing.T) {
	du := buffer.Dirty | buffer.Uptodate
	tests := []struct {
		name     string
		devs     []int64
		states   []buffer.State
		want     func(e *env) []block.Request
		fallback []int64
		clean    []bool // buffers clean afterwards
	}{{
		name:   "all mapped and dirty",
		devs:   []int64{60, 61, 62, 63},
		states: []buffer.State{du, du, du, du},
		want:   func(e *env) []block.Request { return []block.Request{e.wr(60, 8)} },
		clean:  []bool{true, true, true, true},
	}, {
		name:   "unmapped tail",
		devs:   []int64{60, 61, -1, -1},
		states: []buffer.State{du, du, buffer.Uptodate, buffer.Uptodate},
		want:   func(e *env) []block.Request { return []block.Request{e.wr(60, 2), e.wr(64, 4)} },
		clean:  []bool{true, true, true, true},
	}, {
		name:   "dirty unmapped",
		devs:   []int64{60, -1, -1, -1},
		states: []buffer.State{du, du, du, du},
		want: func(e *env) []block.Request {
			return []block.Request{e.wr(60, 1), e.wr(256, 1), e.wr(257, 1), e.wr(258, 1), e.wr(64, 4)}
		},
		fallback: []int64{0},
		clean:    []bool{true, true, true, true},
	}, {
		name:   "clean mapped buffer",
		devs:   []int64{60, 61, 62, 63},
		states: []buffer.State{du, buffer.Uptodate, du, du},
		want: func(e *env) []block.Request {
			return []block.Request{e.wr(60, 1), e.wr(62, 1), e.wr(63, 1), e.wr(64, 4)}
		},
		fallback: []int64{0},
		clean:    []bool{true, true, true, true},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 10)
			e.m.SetSize(2 * pagecache.PageSize)
			e.mp.set(4, 4, 64)
			p0 := e.withBuffers(0, fill('x'), tt.devs, tt.states)
			e.dirtyPage(1, fill('y'))
			f := &fallback{e: e}
			if err := WritePages(e.m, syncAll(), e.mp.get, f.writepage); err != nil {
				t.Fatalf("WritePages: got %v, want nil", err)
			}
			e.checkTrace(tt.want(e)...)
			if got := f.got(); !slices.Equal(got, tt.fallback) {
				t.Errorf("fallback pages: got %v, want %v", got, tt.fallback)
			}
			wantState(t, p0, up, dirty|wb|perr)
			bh := buffer.Buffers(p0)
			for i, clean := range tt.clean {
				if bh.Has(buffer.Dirty) == clean {
					t.Errorf("buffer %d: dirty %v, want %v", i, bh.Has(buffer.Dirty), !clean)
				}
				if bh.Has(buffer.Mapped) && tt.states[i]&buffer.Dirty != 0 {
					e.wantDev(bh.Blocknr, fill('x')[:e.bs])
				}
				bh = bh.Next()
			}
			e.wantDevPage(64, fill('y'))
		})
	}
}

func TestWritePagesRange(t *testing.T) {
	e := newEnv(t, 12)
	e.m.SetSize(8 * pagecache.PageSize)
	e.mp.set(0, 8, 40)
	var pages []*pagecache.Page
	for i := range int64(8) {
		pages = append(pages, e.dirtyPage(i, fill(byte('a'+i))))
	}
	wbc := &pagecache.WritebackControl{SyncMode: pagecache.SyncNone, NrToWrite: 100,
		RangeStart: 2 * pagecache.PageSize, RangeEnd: 5*pagecache.PageSize - 1}
	if err := WritePages(e.m, wbc, e.mp.get, nil); err != nil {
		t.Fatalf("WritePages: got %v, want nil", err)
	}
	e.checkTrace(e.wr(42, 3))
	for i, p := range pages {
		if in := i >= 2 && i <= 4; in {
			wantState(t, p, up, dirty|wb)
		} else {
			wantState(t, p, up|dirty, wb)
		}
	}
	if wbc.PagesWritten != 3 || wbc.NrToWrite != 97 {
		t.Errorf("PagesWritten, NrToWrite: got %d, %d, want 3, 97", wbc.PagesWritten, wbc.NrToWrite)
	}
}

func TestWritePagesCyclic(t *testing.T) {
	e := newEnv(t, 12)
	e.m.SetSize(8 * pagecache.PageSize)
	e.mp.set(0, 8, 40)
	for _, i := range []int64{2, 3, 6, 7} {
		e.dirtyPage(i, fill(byte('a'+i)))
	}
	e.m.SetWritebackIndex(5)
	wbc := &pagecache.WritebackControl{SyncMode: pagecache.SyncNone, NrToWrite: 3, RangeCyclic: true}
	if err := WritePages(e.m, wbc, e.mp.get, nil); err != nil {
		t.Fatalf("WritePages: got %v, want nil", err)
	}
	// From index 5 to the end, then wrapped to the start, three pages.
	e.checkTrace(e.wr(46, 2), e.wr(42, 1))
	if got := e.m.WritebackIndex(); got != 3 {
		t.Errorf("writeback index: got %d, want 3 (after the last page written)", got)
	}
	wantState(t, e.m.Lookup(3), dirty, wb)

	e.resetTrace()
	wbc = &pagecache.WritebackControl{SyncMode: pagecache.SyncNone, NrToWrite: 10, RangeCyclic: true}
	if err := WritePages(e.m, wbc, e.mp.get, nil); err != nil {
		t.Fatalf("second WritePages: got %v, want nil", err)
	}
	e.checkTrace(e.wr(43, 1))
	if got := e.m.WritebackIndex(); got != 0 {
		t.Errorf("writeback index after a complete pass: got %d, want 0", got)
	}
	for i := range int64(8) {
		e.wantDevPage(40+i, map[bool][]byte{true: fill(byte('a' + i)), false: pattern(40+i, e.bs)}[i == 2 || i == 3 || i == 6 || i == 7])
	}
}

func TestWritePagesBudget(t *testing.T) {
	e := newEnv(t, 12)
	e.m.SetSize(5 * pagecache.PageSize)
	e.mp.set(0, 5, 40)
	for i := range int64(5) {
		e.dirtyPage(i, fill(byte('a'+i)))
	}
	wbc := &pagecache.WritebackControl{SyncMode: pagecache.SyncNone, NrToWrite: 2}
	if err := WritePages(e.m, wbc, e.mp.get, nil); err != nil {
		t.Fatalf("WritePages: got %v, want nil", err)
	}
	e.checkTrace(e.wr(40, 2))
	if wbc.NrToWrite != 0 || wbc.PagesWritten != 2 {
		t.Errorf("NrToWrite, PagesWritten: got %d, %d, want 0, 2", wbc.NrToWrite, wbc.PagesWritten)
	}
	for i := int64(2); i < 5; i++ {
		wantState(t, e.m.Lookup(i), dirty, wb)
	}
}

// holdFirstWrite writes page 0 alone and holds its device write at the
// gate, so that page 0 stays under writeback; page 0 is then redirtied.
// It returns the function that opens the gate.
func (e *env) holdFirstWrite() (release func()) {
	e.t.Helper()
	gate := make(chan struct{})
	e.dev.gate.Store(&gate)
	wbc := &pagecache.WritebackControl{SyncMode: pagecache.SyncNone, NrToWrite: 10, RangeStart: 0, RangeEnd: pagecache.PageSize - 1}
	if err := WritePages(e.m, wbc, e.mp.get, nil); err != nil {
		e.t.Fatalf("first WritePages: %v", err)
	}
	<-e.dev.entered
	p := e.m.Lookup(0)
	if !p.Has(wb) {
		e.t.Fatalf("page 0: not under writeback while its write is held")
	}
	p.SetDirty()
	var once sync.Once
	release = func() {
		once.Do(func() {
			e.dev.gate.Store(nil)
			close(gate)
		})
	}
	e.t.Cleanup(release)
	return release
}

// An integrity pass waits for a page already under writeback and writes it
// again, and is not cut short by NrToWrite.
func TestWritePagesSyncAllWaits(t *testing.T) {
	e := newEnv(t, 12)
	e.m.SetSize(4 * pagecache.PageSize)
	e.mp.set(0, 4, 40)
	for i := range int64(4) {
		e.dirtyPage(i, fill(byte('a'+i)))
	}
	release := e.holdFirstWrite()

	wbc := &pagecache.WritebackControl{SyncMode: pagecache.SyncAll, NrToWrite: 1}
	done := make(chan error, 1)
	go func() { done <- WritePages(e.m, wbc, e.mp.get, nil) }()
	select {
	case err := <-done:
		t.Fatalf("SyncAll WritePages returned (%v) while page 0 was under writeback", err)
	case <-time.After(50 * time.Millisecond):
	}
	release()
	if err := <-done; err != nil {
		t.Fatalf("SyncAll WritePages: got %v, want nil", err)
	}
	e.checkTrace(e.wr(40, 1), e.wr(40, 4))
	if wbc.PagesWritten != 4 {
		t.Errorf("PagesWritten: got %d, want 4 despite NrToWrite 1", wbc.PagesWritten)
	}
	for i := range int64(4) {
		wantState(t, e.m.Lookup(i), up, dirty|wb)
	}
}

// A memory-cleaning pass skips a page under writeback, leaving it dirty.
func TestWritePagesSyncNoneSkipsWriteback(t *testing.T) {
	e := newEnv(t, 12)
	e.m.SetSize(4 * pagecache.PageSize)
	e.mp.set(0, 4, 40)
	for i := range int64(4) {
		e.dirtyPage(i, fill(byte('a'+i)))
	}
	release := e.holdFirstWrite()
	wbc := &pagecache.WritebackControl{SyncMode: pagecache.SyncNone, NrToWrite: 10}
	if err := WritePages(e.m, wbc, e.mp.get, nil); err != nil {
		t.Fatalf("WritePages: got %v, want nil", err)
	}
	release()
	e.checkTrace(e.wr(40, 1), e.wr(41, 3))
	wantState(t, e.m.Lookup(0), dirty, wb)
	if wbc.PagesWritten != 3 {
		t.Errorf("PagesWritten: got %d, want 3", wbc.PagesWritten)
	}
}

func TestWritePagesCongestion(t *testing.T) {
	t.Run("before start", func(t *testing.T) {
		e := newEnv(t, 12)
		e.m.SetSize(2 * pagecache.PageSize)
		e.mp.set(0, 2, 40)
		e.dirtyPage(0, fill('a'))
		e.dirtyPage(1, fill('b'))
		e.bdi.congested.Store(true)
		wbc := &pagecache.WritebackControl{SyncMode: pagecache.SyncNone, NrToWrite: 10, Nonblocking: true}
		if err := WritePages(e.m, wbc, e.mp.get, nil); err != nil {
			t.Fatalf("WritePages: got %v, want nil", err)
		}
		e.checkTrace()
		if !wbc.EncounteredCongestion || wbc.PagesWritten != 0 {
			t.Errorf("EncounteredCongestion, PagesWritten: got %v, %d, want true, 0", wbc.EncounteredCongestion, wbc.PagesWritten)
		}
	})
	t.Run("during the pass", func(t *testing.T) {
		e := newEnv(t, 12)
		e.m.SetSize(4 * pagecache.PageSize)
		e.mp.set(0, 4, 40)
		for i := range int64(4) {
			e.dirtyPage(i, fill(byte('a'+i)))
		}
		e.mp.hook = func(iblock int64) {
			if iblock == 1 {
				e.bdi.congested.Store(true)
			}
		}
		wbc := &pagecache.WritebackControl{SyncMode: pagecache.SyncNone, NrToWrite: 10, Nonblocking: true}
		if err := WritePages(e.m, wbc, e.mp.get, nil); err != nil {
			t.Fatalf("WritePages: got %v, want nil", err)
		}
		e.checkTrace(e.wr(40, 2))
		if !wbc.EncounteredCongestion || wbc.PagesWritten != 2 {
			t.Errorf("EncounteredCongestion, PagesWritten: got %v, %d, want true, 2", wbc.EncounteredCongestion, wbc.PagesWritten)
		}
		wantState(t, e.m.Lookup(2), dirty, wb)
		wantState(t, e.m.Lookup(3), dirty, wb)
	})
}

// A page truncated between the dirty look-up and its lock is skipped.
func TestWritePagesTruncatedMeanwhile(t *testing.T) {
	e := newEnv(t, 12)
	e.m.SetSize(3 * pagecache.PageSize)
	e.mp.set(0, 3, 40)
	for i := range int64(3) {
		e.dirtyPage(i, fill(byte('a'+i)))
	}
	p1 := e.m.Lookup(1)
	p1.Lock()
	reached := make(chan struct{}, 1)
	e.mp.hook = func(iblock int64) {
		if iblock == 0 {
			select {
			case reached <- struct{}{}:
			default:
			}
		}
	}
	wbc := syncAll()
	done := make(chan error, 1)
	go func() { done <- WritePages(e.m, wbc, e.mp.get, nil) }()
	<-reached // the pass has looked up pages 0..2 and is writing page 0
	e.m.Remove(p1)
	p1.Unlock()
	if err := <-done; err != nil {
		t.Fatalf("WritePages: got %v, want nil", err)
	}
	e.checkTrace(e.wr(40, 1), e.wr(42, 1))
	if wbc.PagesWritten != 2 {
		t.Errorf("PagesWritten: got %d, want 2", wbc.PagesWritten)
	}
	for _, c := range e.mp.callList() {
		if c.iblock == 1 {
			t.Errorf("mapper called for the truncated page's block")
		}
	}
	e.wantDev(41, pattern(41, e.bs))
}

// Out of space: the page goes to the fallback, whose mapper call fails;
// the error is returned, recorded on the mapping as ENOSPC, the page is
// marked PG_error and left dirty, and the blocks already mapped are
// written.
func TestWritePagesNoSpace(t *testing.T) {
	enospc := fmt.Errorf("balloc: %w", syscall.ENOSPC)
	for _, tt := range []struct {
		name string
		bits uint
		want func(e *env) []block.Request
	}{
		{"4KiB", 12, func(e *env) []block.Request { return []block.Request{e.wr(40, 1)} }},
		// Page 1's blocks 4, 5 are mapped, 6, 7 are holes: the recover path
		// writes 4 and 5.
		{"1KiB", 10, func(e *env) []block.Request { return []block.Request{e.wr(40, 4), e.wr(44, 1), e.wr(45, 1)} }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.bits)
			since := e.m.SampleErr()
			e.m.SetSize(2 * pagecache.PageSize)
			bpp := e.bpp()
			e.mp.set(0, bpp+bpp/2, 40)
			e.mp.allocErr = enospc
			e.dirtyPage(0, fill('a'))
			p1 := e.dirtyPage(1, fill('b'))
			f := &fallback{e: e}
			err := WritePages(e.m, syncAll(), e.mp.get, f.writepage)
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("WritePages: got %v, want ENOSPC", err)
			}
			e.checkTrace(tt.want(e)...)
			wantState(t, p1, perr|dirty, wb)
			merr := e.m.CheckErr(since)
			if !errors.Is(merr, pagecache.ErrNoSpace) || !errors.Is(merr, syscall.ENOSPC) {
				t.Errorf("mapping error: got %v, want ErrNoSpace wrapping ENOSPC", merr)
			}
			if got := e.m.CheckErrors(); got != pagecache.ErrNoSpace {
				t.Errorf("CheckErrors: got %v, want %v", got, pagecache.ErrNoSpace)
			}
			if bpp > 1 {
				e.wantDev(44, fill('b')[:e.bs])
				e.wantDev(46, pattern(46, e.bs))
			}
		})
	}
}

// A failed device write marks the pages of that bio PG_error and records
// the error on the mapping; the other bio's pages are fine.
func TestWritePagesDeviceError(t *testing.T) {
	e := newEnv(t, 12)
	since := e.m.SampleErr()
	e.m.SetSize(4 * pagecache.PageSize)
	e.mp.set(0, 2, 40)
	e.mp.set(2, 2, 50)
	var pages []*pagecache.Page
	for i := range int64(4) {
		pages = append(pages, e.dirtyPage(i, fill(byte('a'+i))))
	}
	e.dev.failSector.Store(41 << 3)
	if err := WritePages(e.m, syncAll(), e.mp.get, nil); err != nil {
		t.Fatalf("WritePages: got %v, want nil (the error is asynchronous)", err)
	}
	e.waitIO()
	wantState(t, pages[0], perr, wb)
	wantState(t, pages[1], perr, wb)
	wantState(t, pages[2], 0, wb|perr)
	wantState(t, pages[3], 0, wb|perr)
	e.wantDev(40, pattern(40, e.bs))
	e.wantDevPage(50, fill('c'))
	e.wantDevPage(51, fill('d'))
	if err := e.m.CheckErr(since); !errors.Is(err, block.ErrIO) {
		t.Errorf("mapping error: got %v, want one wrapping %v", err, block.ErrIO)
	}
}

func TestWritePage(t *testing.T) {
	e := newEnv(t, 10)
	e.m.SetSize(pagecache.PageSize + 2048)
	e.mp.set(0, 8, 70)
	t.Run("into a bio", func(t *testing.T) {
		p := e.dirtyPage(0, fill('q'))
		p.Lock()
		p.ClearDirtyForIO()
		if err := WritePage(p, e.mp.get, syncAll()); err != nil {
			t.Fatalf("WritePage: got %v, want nil", err)
		}
		e.checkTrace(e.wr(70, 4))
		wantState(t, p, up, wb|dirty|perr)
		e.wantDevPage(70, fill('q'))
	})
	t.Run("confused page", func(t *testing.T) {
		e.resetTrace()
		p := e.withBuffers(1, fill('r'), []int64{74, -1, -1, -1}, []buffer.State{buffer.Dirty | buffer.Uptodate, buffer.Dirty, 0, 0})
		p.Lock()
		p.ClearDirtyForIO()
		err := WritePage(p, e.mp.get, syncAll())
		if !errors.Is(err, ErrAgain) {
			t.Fatalf("WritePage: got %v, want %v", err, ErrAgain)
		}
		if !p.Has(locked) || p.Has(wb) {
			t.Errorf("page after ErrAgain: flags %b, want locked, not under writeback", p.Flags())
		}
		p.Unlock()
		e.checkTrace()
	})
}

// With no mapper every page goes to writepage, in index order.
func TestWritePagesWritepageOnly(t *testing.T) {
	e := newEnv(t, 12)
	e.m.SetSize(3 * pagecache.PageSize)
	e.mp.set(0, 3, 40)
	for i := range int64(3) {
		e.dirtyPage(i, fill(byte('a'+i)))
	}
	f := &fallback{e: e}
	wbc := syncAll()
	if err := WritePages(e.m, wbc, nil, f.writepage); err != nil {
		t.Fatalf("WritePages: got %v, want nil", err)
	}
	e.checkTrace(e.wr(40, 1), e.wr(41, 1), e.wr(42, 1))
	if got, want := f.got(), []int64{0, 1, 2}; !slices.Equal(got, want) {
		t.Errorf("writepage pages: got %v, want %v", got, want)
	}
	if wbc.PagesWritten != 3 {
		t.Errorf("PagesWritten: got %d, want 3", wbc.PagesWritten)
	}
	if err := WritePages(e.m, syncAll(), nil, nil); !errors.Is(err, ErrNoGetBlock) {
		t.Errorf("WritePages with neither: got %v, want %v", err, ErrNoGetBlock)
	}
}
