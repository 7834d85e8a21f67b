package buffer

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"

	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/pagecache"
)

// pio is the page I/O test setup: a 1 KiB-block file over a Memory device
// whose block n is filled with byte n, and a table mapper.
type pio struct {
	t   *testing.T
	bs  int
	mem *block.Memory
	q   *block.Queue
	m   *pagecache.Mapping

	mu       sync.Mutex // guards the fields below
	table    map[int64]int64
	fail     map[int64]error
	next     int64
	allocErr error
	trace    []block.Request
}

const pioBlocks = 256

func newPio(t *testing.T, bits uint) *pio {
	t.Helper()
	bs := 1 << bits
	mem := block.NewMemory(pioBlocks * int64(bs))
	for n := range int64(pioBlocks) {
		copy(mem.Bytes()[n*int64(bs):], bytes.Repeat([]byte{byte(n)}, bs))
	}
	x := &pio{t: t, bs: bs, mem: mem, table: map[int64]int64{}, fail: map[int64]error{}, next: 200}
	x.q = block.NewQueue(mem, block.Config{UnplugThreshold: 1, InFlight: 1})
	x.q.SetTrace(func(r block.Request) {
		x.mu.Lock()
		x.trace = append(x.trace, r)
		x.mu.Unlock()
	})
	x.m = pagecache.NewCache(pagecache.Config{}).NewMapping(nil, bits)
	t.Cleanup(func() { x.q.Close() })
	return x
}

func (x *pio) get(iblock int64, bh *Head, create bool) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.fail[iblock]; err != nil {
		return err
	}
	dev, ok := x.table[iblock]
	if !ok {
		if !create {
			return nil
		}
		if x.allocErr != nil {
			return x.allocErr
		}
		dev = x.next
		x.next++
		x.table[iblock] = dev
		bh.Set(New)
	}
	bh.Map(x.q, dev)
	return nil
}

func (x *pio) set(from, n, dev int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for i := range n {
		x.table[from+i] = dev + i
	}
}

// blk is the expected content of device block n before any write.
func (x *pio) blk(n int64) []byte { return bytes.Repeat([]byte{byte(n)}, x.bs) }

func (x *pio) zero() []byte { return make([]byte, x.bs) }

// calls waits for the I/O and returns the device calls as strings.
func (x *pio) calls() []string {
	x.q.Wait()
	x.mu.Lock()
	defer x.mu.Unlock()
	var s []string
	for _, r := range x.trace {
		s = append(s, fmt.Sprintf("%s %d+%d", r.Op, r.Sector*512/int64(x.bs), r.Bytes/x.bs))
	}
	x.trace = nil
	return s
}

func (x *pio) wantCalls(want ...string) {
	x.t.Helper()
	if got := x.calls(); fmt.Sprint(got) != fmt.Sprint(want) {
		x.t.Errorf("device calls (op block+count): got %q, want %q", got, want)
	}
}

func (x *pio) page(index int64) *pagecache.Page {
	p := x.m.FindOrCreate(index)
	return p
}

func pageData(blocks ...[]byte) []byte { return bytes.Join(blocks, nil) }

func TestReadFullPage(t *testing.T) {
	x := newPio(t, 10)
	x.m.SetSize(pagecache.PageSize + 1500) // page 1: blocks 4, 5 in the file
	x.set(0, 1, 10)
	x.set(2, 2, 30) // block 1 a hole
	x.set(4, 2, 50)
	t.Run("hole in the middle", func(t *testing.T) {
		p := x.page(0)
		if err := ReadFullPage(p, x.get); err != nil {
			t.Fatalf("ReadFullPage: got %v, want nil", err)
		}
		p.WaitUnlocked()
		x.wantCalls("read 10+1", "read 30+1", "read 31+1")
		if !p.Uptodate() || p.Has(pagecache.Error) {
			t.Errorf("flags: got %b, want uptodate, no error", p.Flags())
		}
		if want := pageData(x.blk(10), x.zero(), x.blk(30), x.blk(31)); !bytes.Equal(p.Data, want) {
			t.Errorf("data differs from the blocks with a zeroed hole")
		}
		if p.Has(pagecache.MappedToDisk) {
			t.Errorf("page with a hole marked MappedToDisk")
		}
	})
	t.Run("end of file", func(t *testing.T) {
		p := x.page(1)
		ReadFullPage(p, x.get)
		p.WaitUnlocked()
		x.wantCalls("read 50+1", "read 51+1")
		if want := pageData(x.blk(50), x.blk(51), x.zero(), x.zero()); !p.Uptodate() || !bytes.Equal(p.Data, want) {
			t.Errorf("uptodate %v, data as expected %v; want both", p.Uptodate(), bytes.Equal(p.Data, want))
		}
	})
	t.Run("again reads nothing", func(t *testing.T) {
		p := x.page(1)
		p.ClearUptodate()
		ReadFullPage(p, x.get)
		p.WaitUnlocked()
		x.wantCalls()
		if !p.Uptodate() {
			t.Errorf("page with all buffers uptodate: not uptodate")
		}
	})
	t.Run("mapper error", func(t *testing.T) {
		x.mu.Lock()
		x.fail[9] = errors.New("bad indirect block")
		x.mu.Unlock()
		x.m.SetSize(3 * pagecache.PageSize)
		x.set(8, 1, 80)
		x.set(10, 2, 90)
		p := x.page(2)
		if err := ReadFullPage(p, x.get); err == nil {
			t.Errorf("ReadFullPage: got nil, want the mapper's error")
		}
		p.WaitUnlocked()
		x.wantCalls("read 80+1", "read 90+1", "read 91+1")
		if p.Uptodate() || !p.Has(pagecache.Error) {
			t.Errorf("flags: got %b, want error, not uptodate", p.Flags())
		}
	})
}

// Concurrent completions of one page's buffers unlock it exactly once, and
// only after the last one.
func TestReadFullPageConcurrentCompletions(t *testing.T) {
	mem := block.NewMemory(pioBlocks * 1024)
	q := block.NewQueue(mem, block.Config{UnplugThreshold: 1, InFlight: 4})
	t.Cleanup(func() { q.Close() })
	m := pagecache.NewCache(pagecache.Config{}).NewMapping(nil, 10)
	m.SetSize(64 * pagecache.PageSize)
	for i := range 64 {
		copy(mem.Bytes()[i*1024:], bytes.Repeat([]byte{byte(i)}, 1024))
	}
	get := func(iblock int64, bh *Head, create bool) error {
		bh.Map(q, (iblock*7)%64) // scattered: every block its own bio
		return nil
	}
	for idx := range int64(16) {
		p := m.FindOrCreate(idx)
		ReadFullPage(p, get)
		p.WaitUnlocked()
		if !p.Uptodate() {
			t.Fatalf("page %d: not uptodate after unlock", idx)
		}
		for b := range int64(4) {
			want := byte(((idx*4 + b) * 7) % 64)
			if got := p.Data[b*1024]; got != want {
				t.Fatalf("page %d block %d: got byte %d, want %d", idx, b, got, want)
			}
		}
	}
}

func TestWriteFullPage(t *testing.T) {
	t.Run("inside the file", func(t *testing.T) {
		x := newPio(t, 10)
		x.m.SetSize(2 * pagecache.PageSize)
		x.set(0, 4, 10)
		p := x.page(0)
		copy(p.Data, bytes.Repeat([]byte{0xaa}, pagecache.PageSize))
		if err := WriteFullPage(p, x.get, nil); err != nil {
			t.Fatalf("WriteFullPage: got %v, want nil", err)
		}
		p.WaitWriteback()
		x.wantCalls("write 10+1", "write 11+1", "write 12+1", "write 13+1")
		if !bytes.Equal(x.mem.Bytes()[10*1024:14*1024], p.Data) {
			t.Errorf("device blocks 10..13 differ from the page")
		}
		if p.Has(pagecache.Locked) || p.Has(pagecache.Writeback) {
			t.Errorf("flags after write: %b, want unlocked, writeback ended", p.Flags())
		}
	})
	t.Run("straddling end of file", func(t *testing.T) {
		x := newPio(t, 10)
		x.m.SetSize(1500)
		p := x.page(0)
		copy(p.Data, bytes.Repeat([]byte{0xbb}, pagecache.PageSize))
		WriteFullPage(p, x.get, nil)
		p.WaitWriteback()
		// Blocks 0 and 1 are allocated (200, 201); 2 and 3 are past EOF.
		x.wantCalls("write 200+1", "write 201+1")
		want := append(bytes.Repeat([]byte{0xbb}, 1500), make([]byte, 2048-1500)...)
		if !bytes.Equal(x.mem.Bytes()[200*1024:202*1024], want) {
			t.Errorf("device blocks 200, 201: the tail past end of file is not zeroed")
		}
	})
	t.Run("past end of file", func(t *testing.T) {
		x := newPio(t, 10)
		x.m.SetSize(pagecache.PageSize)
		p := x.page(1)
		CreateEmptyBuffers(p, 1024, Dirty|Uptodate)
		if err := WriteFullPage(p, x.get, nil); err != nil {
			t.Fatalf("WriteFullPage: got %v, want nil", err)
		}
		x.wantCalls()
		if p.Has(pagecache.Locked) || p.Has(pagecache.Writeback) || HasBuffers(p) {
			t.Errorf("flags %b, buffers %v: want unlocked, no writeback, buffers dropped", p.Flags(), HasBuffers(p))
		}
	})
	t.Run("out of space", func(t *testing.T) {
		x := newPio(t, 10)
		since := x.m.SampleErr()
		x.m.SetSize(pagecache.PageSize)
		x.set(0, 2, 10)
		x.allocErr = fmt.Errorf("balloc: %w", syscall.ENOSPC)
		p := x.page(0)
		copy(p.Data, bytes.Repeat([]byte{0xcc}, pagecache.PageSize))
		err := WriteFullPage(p, x.get, nil)
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("WriteFullPage: got %v, want ENOSPC", err)
		}
		p.WaitWriteback()
		x.wantCalls("write 10+1", "write 11+1")
		if !p.Has(pagecache.Error|pagecache.Dirty) || p.Has(pagecache.Locked) {
			t.Errorf("flags: got %b, want error and dirty, unlocked", p.Flags())
		}
		if err := x.m.CheckErr(since); !errors.Is(err, pagecache.ErrNoSpace) {
			t.Errorf("mapping error: got %v, want ErrNoSpace", err)
		}
		bh := Buffers(p).Next().Next()
		if !bh.Has(Dirty) || bh.Has(Mapped) {
			t.Errorf("unallocated buffer: state %b, want dirty, unmapped (kept for a retry)", bh.State())
		}
	})
}

func TestBlockWriteBegin(t *testing.T) {
	x := newPio(t, 10)
	x.m.SetSize(2 * pagecache.PageSize)
	x.set(0, 4, 10)
	t.Run("partial blocks read", func(t *testing.T) {
		p := x.page(0)
		defer p.Unlock()
		// Bytes 1000..2100 touch blocks 0, 1 and 2, partly 0 and 2.
		if err := BlockWriteBegin(p, 1000, 2100, x.get); err != nil {
			t.Fatalf("BlockWriteBegin: got %v, want nil", err)
		}
		x.wantCalls("read 10+1", "read 12+1")
		if !bytes.Equal(p.Data[:1000], x.blk(10)[:1000]) || !bytes.Equal(p.Data[2100:3072], x.blk(12)[52:]) {
			t.Errorf("the parts of blocks 0 and 2 outside the write were not read")
		}
		states := []State{}
		for bh, i := Buffers(p), 0; i < 4; bh, i = bh.Next(), i+1 {
			states = append(states, bh.State()&(Dirty|Uptodate))
		}
		if want := []State{Dirty | Uptodate, Dirty | Uptodate, Dirty | Uptodate, 0}; fmt.Sprint(states) != fmt.Sprint(want) {
			t.Errorf("buffer states: got %v, want %v", states, want)
		}
		if !p.Has(pagecache.Dirty) || p.Uptodate() {
			t.Errorf("page flags: got %b, want dirty, not yet uptodate (block 3 unread)", p.Flags())
		}
	})
	t.Run("new block zeroed", func(t *testing.T) {
		p := x.page(1)
		defer p.Unlock()
		copy(p.Data, bytes.Repeat([]byte{0xee}, pagecache.PageSize))
		if err := BlockWriteBegin(p, 100, 200, x.get); err != nil {
			t.Fatalf("BlockWriteBegin: got %v, want nil", err)
		}
		x.wantCalls()
		if !bytes.Equal(p.Data[:100], make([]byte, 100)) || !bytes.Equal(p.Data[200:1024], make([]byte, 824)) {
			t.Errorf("new block: the parts outside [100, 200) are not zeroed")
		}
		if got := Buffers(p).Blocknr; got != 200 {
			t.Errorf("allocated block: got %d, want 200", got)
		}
	})
	t.Run("bad range", func(t *testing.T) {
		p := x.page(0)
		defer p.Unlock()
		if err := BlockWriteBegin(p, 10, pagecache.PageSize+1, x.get); !errors.Is(err, ErrRange) {
			t.Errorf("BlockWriteBegin: got %v, want %v", err, ErrRange)
		}
	})
}

func TestFreeAndInvalidate(t *testing.T) {
	x := newPio(t, 10)
	p := x.page(0)
	defer p.Unlock()
	head := CreateEmptyBuffers(p, 1024, Uptodate)
	for bh, i := head, int64(0); i < 4; bh, i = bh.Next(), i+1 {
		bh.Map(x.q, 10+i)
	}
	head.Next().Next().Set(Dirty)
	if TryToFreeBuffers(p) {
		t.Fatalf("TryToFreeBuffers with a dirty buffer: got true, want false")
	}
	InvalidatePage(p, 2048)
	if !HasBuffers(p) {
		t.Fatalf("InvalidatePage at 2048 dropped the buffers")
	}
	for bh, i := head, 0; i < 4; bh, i = bh.Next(), i+1 {
		if got, want := bh.Has(Mapped), i < 2; got != want {
			t.Errorf("buffer %d: mapped %v, want %v", i, got, want)
		}
		if bh.Has(Dirty) {
			t.Errorf("buffer %d: still dirty", i)
		}
	}
	InvalidatePage(p, 0)
	if HasBuffers(p) {
		t.Errorf("InvalidatePage at 0: buffers kept")
	}
}

func TestBlockTruncatePage(t *testing.T) {
	x := newPio(t, 10)
	x.m.SetSize(2 * pagecache.PageSize)
	x.set(4, 4, 40)
	if err := BlockTruncatePage(x.m, pagecache.PageSize+1024+300, x.get); err != nil {
		t.Fatalf("BlockTruncatePage: got %v, want nil", err)
	}
	x.wantCalls("read 41+1")
	p := x.m.Lookup(1)
	bh := Buffers(p).Next()
	want := append(x.blk(41)[:300], make([]byte, 724)...)
	if !bytes.Equal(bh.Data, want) || !bh.Has(Dirty) || !p.Has(pagecache.Dirty) {
		t.Errorf("block 5: zeroed past 300 %v, buffer dirty %v, page dirty %v; want all true",
			bytes.Equal(bh.Data, want), bh.Has(Dirty), p.Has(pagecache.Dirty))
	}
	if err := BlockTruncatePage(x.m, 2048, x.get); err != nil {
		t.Errorf("BlockTruncatePage on a block boundary: got %v, want nil", err)
	}
	x.wantCalls()
}
