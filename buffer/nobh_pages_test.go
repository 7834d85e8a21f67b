package buffer

import (
	"bytes"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/mpagefs/mpage/pagecache"
)

// runMapper is a get_block that honours bh.Size as ext2_get_block does:
// it maps up to Size bytes of blocks from iblock in one call, all already
// mapped and contiguous on the device, or all holes allocated together,
// at most maxRun blocks (an indirect block's boundary) and at most free
// new blocks (then ENOSPC). It counts its calls.
type runMapper struct {
	x      *pio
	maxRun int64
	free   int64 // blocks left to allocate; < 0 for no limit
	calls  int
}

func (r *runMapper) get(iblock int64, bh *Head, create bool) error {
	x := r.x
	x.mu.Lock()
	defer x.mu.Unlock()
	r.calls++
	want := min(max(int64(bh.Size/x.bs), 1), r.maxRun)
	if dev, ok := x.table[iblock]; ok {
		n := int64(1)
		for n < want {
			if d, ok := x.table[iblock+n]; !ok || d != dev+n {
				break
			}
			n++
		}
		bh.Map(x.q, dev)
		bh.Size = int(n) * x.bs
		return nil
	}
	if !create {
		return nil
	}
	if r.free == 0 {
		return fmt.Errorf("runMapper: block %d: %w", iblock, syscall.ENOSPC)
	}
	n := int64(1)
	for n < want && (r.free < 0 || n < r.free) {
		if _, ok := x.table[iblock+n]; ok {
			break
		}
		n++
	}
	dev := x.next
	for i := range n {
		x.table[iblock+i] = dev + i
	}
	x.next += n
	if r.free > 0 {
		r.free -= n
	}
	bh.Map(x.q, dev)
	bh.Size = int(n) * x.bs
	bh.Set(New)
	return nil
}

// pages returns n locked pages of x's mapping from index first.
func (x *pio) pages(first int64, n int) []*pagecache.Page {
	ps := make([]*pagecache.Page, n)
	for i := range ps {
		ps[i] = x.page(first + int64(i))
	}
	x.t.Cleanup(func() {
		for _, p := range ps {
			if p.Has(pagecache.Locked) {
				p.Unlock()
			}
		}
	})
	return ps
}

// TestNobhWriteBeginPages begins runs of whole pages with a mapper that
// maps runs of blocks: there is one get_block call per contiguous run
// (far fewer than blocks or pages), each page is mapped to disk without
// buffers, and writing each page back through the per-block path puts its
// bytes in the blocks the table gave its file blocks.
func TestNobhWriteBeginPages(t *testing.T) {
	tests := []struct {
		name      string
		bits      uint
		pages     int
		first     int64      // page index of the run
		preset    [][3]int64 // file block, count, device block mapped beforehand
		maxRun    int64
		wantCalls int
	}{
		{"4 KiB blocks, one run", 12, 32, 0, nil, 1 << 20, 1},
		{"1 KiB blocks, one run", 10, 32, 0, nil, 1 << 20, 1},
		{"1 KiB blocks, boundaries every 48 blocks", 10, 32, 0, nil, 48, 3},
		{"run not at the file's start", 10, 16, 5, nil, 1 << 20, 1},
		// Blocks 8-15 exist (device 40-47), 16-17 exist elsewhere
		// (device 60-61): holes 0-7, mapped 8-15, mapped 16-17, holes
		// 18-31.
		{"mapped blocks among holes", 10, 8, 0, [][3]int64{{8, 8, 40}, {16, 2, 60}}, 1 << 20, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := newPio(t, tc.bits)
			x.next = 100 // room for 128 new blocks on the device
			for _, s := range tc.preset {
				x.set(s[0], s[1], s[2])
			}
			r := &runMapper{x: x, maxRun: tc.maxRun, free: -1}
			ps := x.pages(tc.first, tc.pages)
			n, err := NobhWriteBeginPages(ps, r.get)
			if n != tc.pages || err != nil {
				t.Fatalf("NobhWriteBeginPages: got %d, %v, want %d, nil", n, err, tc.pages)
			}
			if r.calls != tc.wantCalls {
				t.Errorf("get_block calls: got %d, want %d (for %d pages)", r.calls, tc.wantCalls, tc.pages)
			}
			perPage := int64(pagecache.PageSize >> tc.bits)
			x.m.SetSize((tc.first + int64(tc.pages)) * pagecache.PageSize)
			for i, p := range ps {
				if HasBuffers(p) || !p.Has(pagecache.MappedToDisk) {
					t.Errorf("page %d: buffers %v, mapped to disk %v; want no buffers, mapped to disk", p.Index, HasBuffers(p), p.Has(pagecache.MappedToDisk))
				}
				for b := p.Index * perPage; b < (p.Index+1)*perPage; b++ {
					if _, ok := x.table[b]; !ok {
						t.Errorf("file block %d of page %d: not allocated, want allocated", b, p.Index)
					}
				}
				copy(p.Data, bytes.Repeat([]byte{byte(0x40 + i)}, pagecache.PageSize))
				p.SetUptodate()
				if err := WriteFullPage(p, x.get, nil); err != nil {
					t.Fatalf("WriteFullPage(page %d): %v", p.Index, err)
				}
				p.WaitWriteback()
			}
			x.q.Wait()
			for i, p := range ps {
				for b := p.Index * perPage; b < (p.Index+1)*perPage; b++ {
					dev := x.table[b]
					got := x.mem.Bytes()[dev*int64(x.bs) : (dev+1)*int64(x.bs)]
					if !bytes.Equal(got, bytes.Repeat([]byte{byte(0x40 + i)}, x.bs)) {
						t.Errorf("device block %d (file block %d): got %#x..., want page %d's bytes %#x", dev, b, got[0], p.Index, 0x40+i)
					}
				}
			}
		})
	}
}

// TestNobhWriteBeginPagesNoSpace runs out of space partway through a
// batch: the pages before the failing page are prepared and counted, the
// failing page's blocks allocated before the failure are zeroed and dirty
// in buffers (as NobhWriteBegin leaves them), and the pages after it are
// untouched.
func TestNobhWriteBeginPagesNoSpace(t *testing.T) {
	tests := []struct {
		name      string
		bits      uint
		free      int64
		wantN     int
		wantFresh int // blocks of page wantN allocated before the failure
	}{
		{"1 KiB blocks, mid-page", 10, 13, 3, 1},
		{"1 KiB blocks, at a page boundary", 10, 12, 3, 0},
		{"4 KiB blocks", 12, 5, 5, 0},
		{"no space at all", 10, 0, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := newPio(t, tc.bits)
			r := &runMapper{x: x, maxRun: 1 << 20, free: tc.free}
			ps := x.pages(0, 8)
			for _, p := range ps {
				copy(p.Data, bytes.Repeat([]byte{0xee}, pagecache.PageSize))
			}
			n, err := NobhWriteBeginPages(ps, r.get)
			if n != tc.wantN || !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("NobhWriteBeginPages: got %d, %v, want %d, ENOSPC", n, err, tc.wantN)
			}
			for _, p := range ps[:n] {
				if HasBuffers(p) || !p.Has(pagecache.MappedToDisk) {
					t.Errorf("prepared page %d: buffers %v, mapped to disk %v; want no buffers, mapped to disk", p.Index, HasBuffers(p), p.Has(pagecache.MappedToDisk))
				}
			}
			failed := ps[n]
			if failed.Has(pagecache.MappedToDisk) {
				t.Errorf("failing page %d is mapped to disk, want not", failed.Index)
			}
			if got := HasBuffers(failed); got != (tc.wantFresh > 0) {
				t.Errorf("failing page %d has buffers %v, want %v", failed.Index, got, tc.wantFresh > 0)
			}
			if tc.wantFresh > 0 {
				bh := Buffers(failed)
				for i := range tc.wantFresh {
					if want := Mapped | Uptodate | Dirty; bh.State()&want != want {
						t.Errorf("buffer %d of the failing page: state %b, want mapped, uptodate, dirty", i, bh.State())
					}
					bh = bh.Next()
				}
				if z := tc.wantFresh * x.bs; !bytes.Equal(failed.Data[:z], make([]byte, z)) {
					t.Errorf("the failing page's new blocks are not zeroed")
				}
			}
			for _, p := range ps[n+1:] {
				if HasBuffers(p) || p.Has(pagecache.MappedToDisk) {
					t.Errorf("page %d after the failing one: buffers %v, mapped to disk %v; want neither", p.Index, HasBuffers(p), p.Has(pagecache.MappedToDisk))
				}
			}
		})
	}
}

// TestNobhWriteBeginPagesStops checks the runs NobhWriteBeginPages
// leaves to the caller: it stops without error at a page with buffers or
// one that does not follow the previous page, and refuses a mapper that
// claims more blocks than it was asked for.
func TestNobhWriteBeginPagesStops(t *testing.T) {
	t.Run("page with buffers", func(t *testing.T) {
		x := newPio(t, 10)
		ps := x.pages(0, 4)
		CreateEmptyBuffers(ps[2], x.bs, 0)
		r := &runMapper{x: x, maxRun: 1 << 20, free: -1}
		if n, err := NobhWriteBeginPages(ps, r.get); n != 2 || err != nil {
			t.Fatalf("NobhWriteBeginPages: got %d, %v, want 2, nil", n, err)
		}
		if _, ok := x.table[8]; ok {
			t.Errorf("block 8 of the page with buffers allocated, want it left to the caller")
		}
	})
	t.Run("gap in the indices", func(t *testing.T) {
		x := newPio(t, 10)
		ps := append(x.pages(0, 2), x.pages(5, 2)...)
		r := &runMapper{x: x, maxRun: 1 << 20, free: -1}
		if n, err := NobhWriteBeginPages(ps, r.get); n != 2 || err != nil {
			t.Fatalf("NobhWriteBeginPages: got %d, %v, want 2, nil", n, err)
		}
	})
	t.Run("mapper claims too much", func(t *testing.T) {
		x := newPio(t, 10)
		ps := x.pages(0, 2)
		greedy := func(iblock int64, bh *Head, create bool) error {
			bh.Map(x.q, 100)
			bh.Size = 64 * x.bs
			return nil
		}
		if n, err := NobhWriteBeginPages(ps, greedy); n != 0 || !errors.Is(err, ErrNoMapping) {
			t.Fatalf("NobhWriteBeginPages: got %d, %v, want 0, ErrNoMapping", n, err)
		}
	})
}

// TestNobhWriteBeginPagesDropsAliases gives newly allocated blocks of a
// batch cached metadata aliases: they leave the cache (and their dirty
// bytes are never written), while cached blocks the batch did not
// allocate stay.
func TestNobhWriteBeginPagesDropsAliases(t *testing.T) {
	x := newPio(t, 10)
	x.next = 100
	x.set(0, 4, 40) // page 0 is mapped already
	c := NewCache(x.q, x.bs, CacheConfig{})
	t.Cleanup(c.Close)
	for _, nr := range []int64{40, 100, 105, 111, 112, 150} {
		bh := c.Getblk(nr)
		bh.Lock()
		clear(bh.Data)
		bh.Set(Uptodate)
		bh.Unlock()
		c.MarkDirty(bh)
		c.Release(bh)
	}
	r := &runMapper{x: x, maxRun: 1 << 20, free: -1}
	ps := x.pages(0, 4) // blocks 0-3 at 40-43, 4-15 new at 100-111
	if n, err := NobhWriteBeginPages(ps, r.get); n != 4 || err != nil {
		t.Fatalf("NobhWriteBeginPages: got %d, %v, want 4, nil", n, err)
	}
	for _, tc := range []struct {
		nr     int64
		cached bool
	}{{40, true}, {100, false}, {105, false}, {111, false}, {112, true}, {150, true}} {
		bh := c.Find(tc.nr)
		if got := bh != nil; got != tc.cached {
			t.Errorf("block %d: cached %v, want %v", tc.nr, got, tc.cached)
		}
		if bh != nil {
			c.Release(bh)
		}
	}
}
