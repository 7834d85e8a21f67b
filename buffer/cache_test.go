package buffer

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mpagefs/mpage/block"
)

// faultDev is a block.Device over memory that fails transfers touching
// chosen sectors and can slow reads down, for the bad days.
type faultDev struct {
	*block.Memory

	mu        sync.Mutex // guards the fields below
	failRead  map[int64]bool
	failWrite map[int64]bool
	readDelay time.Duration
}

var _ block.Device = (*faultDev)(nil)

func newFaultDev(size int64) *faultDev {
	return &faultDev{Memory: block.NewMemory(size), failRead: map[int64]bool{}, failWrite: map[int64]bool{}}
}

func (d *faultDev) failing(set map[int64]bool, bufs [][]byte, off int64) bool {
	n := int64(0)
	for _, b := range bufs {
		n += int64(len(b))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for s := off >> block.SectorShift; s < (off+n)>>block.SectorShift; s++ {
		if set[s] {
			return true
		}
	}
	return false
}

func (d *faultDev) ReadVecAt(bufs [][]byte, off int64) error {
	d.mu.Lock()
	delay := d.readDelay
	d.mu.Unlock()
	time.Sleep(delay)
	if d.failing(d.failRead, bufs, off) {
		return block.ErrIO
	}
	return d.Memory.ReadVecAt(bufs, off)
}

func (d *faultDev) WriteVecAt(bufs [][]byte, off int64) error {
	if d.failing(d.failWrite, bufs, off) {
		return block.ErrIO
	}
	return d.Memory.WriteVecAt(bufs, off)
}

// setFault makes reads (write=false) or writes of the first sector of
// block n of bs-byte blocks fail, or succeed again.
func (d *faultDev) setFault(write bool, n int64, bs int, fail bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	set := d.failRead
	if write {
		set = d.failWrite
	}
	set[n*int64(bs)>>block.SectorShift] = fail
}

// tracer records the device calls of a queue.
type tracer struct {
	mu   sync.Mutex
	reqs []block.Request
}

func (tr *tracer) record(r block.Request) {
	tr.mu.Lock()
	tr.reqs = append(tr.reqs, r)
	tr.mu.Unlock()
}

// calls returns the recorded calls of op and forgets all recorded calls.
func (tr *tracer) take(op block.Op) []block.Request {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []block.Request
	for _, r := range tr.reqs {
		if r.Op == op {
			out = append(out, r)
		}
	}
	tr.reqs = nil
	return out
}

type fixture struct {
	dev *faultDev
	q   *block.Queue
	c   *Cache
	tr  *tracer
	bs  int
}

const testBlocks = 64

func newFixture(t *testing.T, bs int, limit int64) *fixture {
	t.Helper()
	f := &fixture{dev: newFaultDev(testBlocks * int64(bs)), tr: &tracer{}, bs: bs}
	f.q = block.NewQueue(f.dev, block.Config{})
	f.q.SetTrace(f.tr.record)
	f.c = NewCache(f.q, bs, CacheConfig{Limit: limit})
	t.Cleanup(func() {
		f.c.Close()
		f.q.Close()
	})
	// Recognizable contents: every byte of block n is n+1.
	for n := int64(0); n < testBlocks; n++ {
		copy(f.disk(n), bytes.Repeat([]byte{byte(n + 1)}, bs))
	}
	return f
}

// disk is block n on the device.
func (f *fixture) disk(n int64) []byte {
	return f.dev.Bytes()[n*int64(f.bs) : (n+1)*int64(f.bs)]
}

// dirty reads block n, fills it with v and marks it dirty.
func (f *fixture) dirty(t *testing.T, n int64, v byte) {
	t.Helper()
	bh, err := f.c.Bread(n)
	if err != nil {
		t.Fatalf("Bread(%d): %v", n, err)
	}
	bh.Lock()
	for i := range bh.Data {
		bh.Data[i] = v
	}
	f.c.MarkDirty(bh)
	bh.Unlock()
	f.c.Release(bh)
}

func allBytes(b []byte, v byte) bool { return bytes.Count(b, []byte{v}) == len(b) }

func TestBreadModifySync(t *testing.T) {
	for _, bs := range []int{1024, 4096} {
		t.Run(fmt.Sprint(bs), func(t *testing.T) {
			f := newFixture(t, bs, 0)
			bh, err := f.c.Bread(3)
			if err != nil {
				t.Fatalf("Bread(3): %v", err)
			}
			if !allBytes(bh.Data, 4) || !bh.Has(Uptodate|Mapped) || bh.Blocknr != 3 {
				t.Fatalf("Bread(3): got data[0]=%d state %b blocknr %d, want 4, uptodate+mapped, 3", bh.Data[0], bh.State(), bh.Blocknr)
			}
			bh.Lock()
			copy(bh.Data, "hello")
			f.c.MarkDirty(bh)
			bh.Unlock()
			f.c.Release(bh)
			if !allBytes(f.disk(3), 4) {
				t.Fatalf("device changed before Sync")
			}
			if err := f.c.Sync(); err != nil {
				t.Fatalf("Sync: %v", err)
			}
			if got := string(f.disk(3)[:5]); got != "hello" {
				t.Errorf("device block 3 after Sync: got %q, want %q", got, "hello")
			}
			if !allBytes(f.disk(3)[5:], 4) || !allBytes(f.disk(2), 3) || !allBytes(f.disk(4), 5) {
				t.Errorf("Sync wrote more than block 3")
			}
			bh, _ = f.c.Bread(3)
			defer f.c.Release(bh)
			if bh.Has(Dirty) {
				t.Errorf("buffer still dirty after Sync")
			}
			if s := f.c.Stats(); s.Reads != 1 || s.Writes != 1 || s.Hits != 1 || s.Misses != 1 {
				t.Errorf("stats: got %+v, want 1 read, 1 write, 1 hit, 1 miss", s)
			}
		})
	}
}

func TestSyncMergesAdjacent(t *testing.T) {
	const bs = 1024
	f := newFixture(t, bs, 0)
	for _, n := range []int64{7, 10, 5, 6, 12} {
		f.dirty(t, n, 0xee)
	}
	f.tr.take(block.Read)
	if err := f.c.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	type call struct {
		sector int64
		bytes  int
	}
	var got []call
	for _, r := range f.tr.take(block.Write) {
		got = append(got, call{r.Sector, r.Bytes})
		if r.Bios != 1 {
			t.Errorf("write at sector %d: got %d bios, want the cache to build 1", r.Sector, r.Bios)
		}
	}
	want := []call{{5 * bs / 512, 3 * bs}, {10 * bs / 512, bs}, {12 * bs / 512, bs}}
	if !slices.Equal(got, want) {
		t.Errorf("device writes: got %v, want %v", got, want)
	}
	for _, n := range []int64{5, 6, 7, 10, 12} {
		if !allBytes(f.disk(n), 0xee) {
			t.Errorf("block %d not written", n)
		}
	}
	if err := f.c.Sync(); err != nil {
		t.Fatalf("second Sync: %v", err)
	}
	if w := f.tr.take(block.Write); len(w) != 0 {
		t.Errorf("second Sync with nothing dirty: got %d writes, want 0", len(w))
	}
}

func TestEviction(t *testing.T) {
	const bs = 1024
	f := newFixture(t, bs, 4*bs)
	held, err := f.c.Bread(0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.c.Release(held)
	f.dirty(t, 1, 0xaa)
	for n := int64(2); n < 20; n++ {
		bh, err := f.c.Bread(n)
		if err != nil {
			t.Fatalf("Bread(%d): %v", n, err)
		}
		f.c.Release(bh)
	}
	s := f.c.Stats()
	if s.LRUBytes > 4*bs {
		t.Errorf("LRU bytes: got %d, want at most %d", s.LRUBytes, 4*bs)
	}
	if s.Evictions != 18-4 {
		t.Errorf("evictions: got %d, want %d", s.Evictions, 18-4)
	}
	if bh := f.c.Find(0); bh != held {
		t.Errorf("referenced block 0 was evicted")
	} else {
		f.c.Release(bh)
	}
	if bh := f.c.Find(1); bh == nil || !bh.Has(Dirty) || !allBytes(bh.Data, 0xaa) {
		t.Errorf("dirty block 1 was evicted or lost its data")
	} else {
		f.c.Release(bh)
	}
	if bh := f.c.Find(19); bh == nil {
		t.Errorf("newest block 19 was evicted")
	} else {
		f.c.Release(bh)
	}
	if bh := f.c.Find(2); bh != nil {
		t.Errorf("oldest clean block 2 was not evicted")
		f.c.Release(bh)
	}
	// Once written, block 1 is clean and may go too.
	if err := f.c.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := f.c.Stats().LRUBytes; got > 4*bs {
		t.Errorf("LRU bytes after Sync: got %d, want at most %d", got, 4*bs)
	}
}

func TestConcurrentBreadReadsOnce(t *testing.T) {
	f := newFixture(t, 4096, 0)
	f.dev.readDelay = 5 * time.Millisecond
	const n = 16
	heads := make([]*Head, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { heads[i], errs[i] = f.c.Bread(9) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Bread %d: %v", i, errs[i])
		}
		if heads[i] != heads[0] || !allBytes(heads[i].Data, 10) {
			t.Errorf("Bread %d: got another buffer or wrong data", i)
		}
		f.c.Release(heads[i])
	}
	if got := len(f.tr.take(block.Read)); got != 1 {
		t.Errorf("device reads: got %d, want 1", got)
	}
}

func TestForgetDropsDirty(t *testing.T) {
	f := newFixture(t, 1024, 0)
	f.dirty(t, 4, 0x55)
	f.c.Forget(4)
	if err := f.c.Sync(); err != nil {
		t.Fatal(err)
	}
	if w := f.tr.take(block.Write); len(w) != 0 {
		t.Errorf("writes after Forget: got %v, want none", w)
	}
	if !allBytes(f.disk(4), 5) {
		t.Errorf("forgotten block reached the device")
	}
	if bh := f.c.Find(4); bh != nil {
		t.Errorf("forgotten unreferenced block still cached")
		f.c.Release(bh)
	}
	bh, err := f.c.Bread(4)
	if err != nil {
		t.Fatal(err)
	}
	defer f.c.Release(bh)
	if !allBytes(bh.Data, 5) {
		t.Errorf("Bread after Forget: got byte %#x, want the device's 0x05", bh.Data[0])
	}
}

func TestUnmapUnderlyingMetadata(t *testing.T) {
	const bs = 1024
	f := newFixture(t, bs, 0)
	f.dirty(t, 4, 0x55) // a stale indirect block, freed without bforget
	// The block is reallocated for file data, which goes to the device
	// through the page cache, not through this buffer.
	UnmapUnderlyingMetadata(f.q, 4)
	copy(f.disk(4), bytes.Repeat([]byte{0xda}, bs))
	if err := f.c.Sync(); err != nil {
		t.Fatal(err)
	}
	if !allBytes(f.disk(4), 0xda) {
		t.Errorf("Sync overwrote the data block with its stale metadata alias")
	}
	if bh := f.c.Find(4); bh != nil {
		t.Errorf("alias still cached")
		f.c.Release(bh)
	}
	// No cache, or no buffer: nothing happens.
	UnmapUnderlyingMetadata(f.q, 30)
	UnmapUnderlyingMetadata(block.NewQueue(block.NewMemory(4096), block.Config{}), 0)
}

func TestWriteBoundaryBlock(t *testing.T) {
	const bs = 1024
	tests := []struct {
		name      string
		dirty     bool
		size      int
		wantWrite bool
	}{
		{"dirty next block", true, bs, true},
		{"clean next block", false, bs, false},
		{"other block size", true, 4096, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, bs, 0)
			if tt.dirty {
				f.dirty(t, 8, 0x77)
			} else {
				bh, _ := f.c.Bread(8)
				f.c.Release(bh)
			}
			f.dirty(t, 7, 0x66) // the boundary block itself is not written
			f.tr.take(block.Read)
			WriteBoundaryBlock(f.q, 7, tt.size)
			f.q.Wait()
			w := f.tr.take(block.Write)
			if got := len(w) == 1 && w[0].Sector == 8*bs/512 && w[0].Bytes == bs; got != tt.wantWrite {
				t.Fatalf("writes: got %v, want block 8 written: %v", w, tt.wantWrite)
			}
			if tt.wantWrite {
				if !allBytes(f.disk(8), 0x77) {
					t.Errorf("device block 8 not written")
				}
				bh := f.c.Find(8)
				if bh.Has(Dirty) {
					t.Errorf("block 8 still dirty")
				}
				f.c.Release(bh)
			}
			if !allBytes(f.disk(7), 8) {
				t.Errorf("block 7 written")
			}
		})
	}
}

func TestReadError(t *testing.T) {
	const bs = 1024
	f := newFixture(t, bs, 0)
	f.dev.setFault(false, 2, bs, true)
	bh, err := f.c.Bread(2)
	if err == nil {
		f.c.Release(bh)
		t.Fatal("Bread of a failing block: got no error")
	}
	var be *BlockError
	if !errors.As(err, &be) || be.Block != 2 || be.Op != "read" {
		t.Errorf("error %v: want a *BlockError of read of block 2", err)
	}
	if !errors.Is(err, block.ErrIO) || !strings.Contains(err.Error(), "block 2") {
		t.Errorf("error %q: want it to wrap block.ErrIO and name block 2", err)
	}
	if bh := f.c.Find(2); bh != nil {
		t.Errorf("failed buffer stays cached (uptodate %v)", bh.Has(Uptodate))
		f.c.Release(bh)
	}
	f.dev.setFault(false, 2, bs, false)
	bh, err = f.c.Bread(2)
	if err != nil {
		t.Fatalf("Bread after the fault cleared: %v", err)
	}
	defer f.c.Release(bh)
	if !allBytes(bh.Data, 3) {
		t.Errorf("data after retry: got %#x, want 0x03", bh.Data[0])
	}
}

func TestWriteErrorRetried(t *testing.T) {
	const bs = 1024
	f := newFixture(t, bs, 0)
	f.dirty(t, 2, 0x22)
	f.dirty(t, 5, 0x55)
	f.dev.setFault(true, 5, bs, true)
	for pass := 1; pass <= 2; pass++ {
		err := f.c.Sync()
		var be *BlockError
		if !errors.As(err, &be) || be.Block != 5 || be.Op != "write" || !errors.Is(err, block.ErrIO) {
			t.Fatalf("Sync pass %d: got %v, want a write error of block 5 wrapping block.ErrIO", pass, err)
		}
		bh := f.c.Find(5)
		if bh == nil || !bh.Has(Dirty|WriteIOError) || !allBytes(bh.Data, 0x55) {
			t.Fatalf("pass %d: failed buffer lost, clean, or without WriteIOError", pass)
		}
		f.c.Release(bh)
	}
	if !allBytes(f.disk(2), 0x22) {
		t.Errorf("block 2 not written beside the failing block")
	}
	f.dev.setFault(true, 5, bs, false)
	if err := f.c.Sync(); err != nil {
		t.Fatalf("Sync after the fault cleared: %v", err)
	}
	if !allBytes(f.disk(5), 0x55) {
		t.Errorf("block 5 not written by the retry")
	}
	bh := f.c.Find(5)
	defer f.c.Release(bh)
	if bh.Has(WriteIOError) || bh.Has(Dirty) {
		t.Errorf("state after successful retry: got %b, want neither dirty nor WriteIOError", bh.State())
	}
	if got := f.c.Stats().WriteErrors; got != 2 {
		t.Errorf("WriteErrors: got %d, want 2", got)
	}
}

func TestWriteSync(t *testing.T) {
	const bs = 1024
	f := newFixture(t, bs, 0)
	bh := f.c.Getblk(11)
	if bh.Has(Uptodate) {
		t.Fatalf("Getblk of an uncached block is uptodate")
	}
	bh.Lock()
	copy(bh.Data, bytes.Repeat([]byte{0x11}, bs))
	f.c.MarkDirty(bh)
	bh.Unlock()
	f.dev.setFault(true, 11, bs, true)
	if err := f.c.WriteSync(bh); err == nil || !strings.Contains(err.Error(), "block 11") {
		t.Fatalf("WriteSync to a failing sector: got %v, want an error naming block 11", err)
	}
	f.dev.setFault(true, 11, bs, false)
	if err := f.c.WriteSync(bh); err != nil {
		t.Fatalf("WriteSync: %v", err)
	}
	f.c.Release(bh)
	if !allBytes(f.disk(11), 0x11) {
		t.Errorf("WriteSync did not reach the device")
	}
	if reads := f.tr.take(block.Read); len(reads) != 0 {
		t.Errorf("Getblk read the device: %v", reads)
	}
}

func TestReadahead(t *testing.T) {
	const bs = 1024
	f := newFixture(t, bs, 0)
	f.c.Readahead([]int64{3, 1, 2, 7, 2, -1, testBlocks})
	f.q.Wait()
	type call struct {
		sector int64
		bytes  int
	}
	var got []call
	for _, r := range f.tr.take(block.Read) {
		got = append(got, call{r.Sector, r.Bytes})
	}
	want := []call{{1 * bs / 512, 3 * bs}, {7 * bs / 512, bs}}
	if !slices.Equal(got, want) {
		t.Errorf("readahead reads: got %v, want %v", got, want)
	}
	for _, n := range []int64{1, 2, 3, 7} {
		bh, err := f.c.Bread(n)
		if err != nil {
			t.Fatal(err)
		}
		if !allBytes(bh.Data, byte(n+1)) {
			t.Errorf("block %d: got %#x, want %#x", n, bh.Data[0], n+1)
		}
		f.c.Release(bh)
	}
	if r := f.tr.take(block.Read); len(r) != 0 {
		t.Errorf("Bread after readahead read again: %v", r)
	}
	// Already cached blocks are not read again.
	f.c.Readahead([]int64{1, 2})
	f.q.Wait()
	if r := f.tr.take(block.Read); len(r) != 0 {
		t.Errorf("readahead of cached blocks read: %v", r)
	}
}

func TestRegistryAndBadInput(t *testing.T) {
	f := newFixture(t, 1024, 0)
	if got := CacheFor(f.q); got != f.c {
		t.Errorf("CacheFor: got %p, want %p", got, f.c)
	}
	tests := []struct {
		name string
		c    *Cache
		n    int64
		want error
	}{
		{"negative block", f.c, -1, ErrBlockRange},
		{"past the end", f.c, testBlocks, ErrBlockRange},
		{"bad block size", NewCache(block.NewQueue(block.NewMemory(4096), block.Config{}), 1000, CacheConfig{}), 0, ErrBlockSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bh, err := tt.c.Bread(tt.n)
			if !errors.Is(err, tt.want) || bh != nil {
				t.Errorf("Bread(%d): got %v, %v, want nil, %v", tt.n, bh, err, tt.want)
			}
		})
	}
	f.c.Close()
	if got := CacheFor(f.q); got != nil {
		t.Errorf("CacheFor after Close: got %p, want nil", got)
	}
	f.c.Release(nil) // ignored
}

// TestConcurrentUpdatesAndSync changes blocks from several goroutines while
// others Sync; in the end the device holds every last update.
func TestConcurrentUpdatesAndSync(t *testing.T) {
	const bs = 1024
	f := newFixture(t, bs, 8*bs)
	const workers, rounds = 4, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				n := int64(w*8 + r%8)
				bh, err := f.c.Bread(n)
				if err != nil {
					t.Error(err)
					return
				}
				bh.Lock()
				bh.Data[0] = byte(r)
				f.c.MarkDirty(bh)
				bh.Unlock()
				f.c.Release(bh)
				if r%10 == 0 {
					if err := f.c.Sync(); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	if err := f.c.Sync(); err != nil {
		t.Fatal(err)
	}
	for w := range workers {
		for k := range 8 {
			n := int64(w*8 + k)
			last := byte((rounds-1-k)/8*8 + k) // last round r with r%8 == k
			if got := f.disk(n)[0]; got != last {
				t.Errorf("block %d: got %d, want %d", n, got, last)
			}
		}
	}
	if s := f.c.Stats(); s.Dirty != 0 {
		t.Errorf("dirty after final Sync: got %d, want 0", s.Dirty)
	}
}
