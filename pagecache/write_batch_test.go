package pagecache

import (
	"bytes"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
)

// TestWriteWholePages writes whole pages over files whose pages are
// partly cached, through the batched path: the bytes read back and on
// disk after a sync are the model's, no page is read for the write, every
// written page is dirty once, and the cache's charge matches its pages.
func TestWriteWholePages(t *testing.T) {
	tests := []struct {
		name   string
		limit  int64   // pages
		disk   int     // pages of the file before the write
		cached []int64 // pages read into the cache before the write
		off    int64   // of the write, in pages
		pages  int     // written
	}{
		{"empty file", 4096, 0, nil, 0, 100},
		{"past end of file", 4096, 3, []int64{1}, 7, 50},
		{"cached pages inside the run", 4096, 80, []int64{0, 5, 17, 31, 32, 33, 79}, 0, 80},
		{"cache smaller than the write", 64, 10, []int64{2, 9}, 0, 300},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			initial := pattern(tc.disk*PageSize, 3)
			c, m, o := newTestMapping(t, Config{Limit: tc.limit * PageSize}, initial, false)
			one := make([]byte, 1)
			for _, i := range tc.cached {
				if _, err := m.Read(NewReadaheadState(-1), one, i*PageSize); err != nil {
					t.Fatal(err)
				}
			}
			readsBefore := o.readPageCalls.Load()
			buf := pattern(tc.pages*PageSize, 9)
			n, err := m.Write(buf, tc.off*PageSize)
			if err != nil || n != len(buf) {
				t.Fatalf("Write got %d, %v, want %d, nil", n, err, len(buf))
			}
			if got := o.readPageCalls.Load() - readsBefore; got != 0 {
				t.Errorf("ReadPage calls for the write got %d, want 0", got)
			}
			model := append([]byte(nil), initial...)
			if end := int((tc.off + int64(tc.pages)) * PageSize); end > len(model) {
				model = append(model, make([]byte, end-len(model))...)
			}
			copy(model[tc.off*PageSize:], buf)
			if got := m.Size(); got != int64(len(model)) {
				t.Errorf("Size got %d, want %d", got, len(model))
			}
			st := c.Stats()
			if tc.limit > int64(tc.pages) {
				if st.Dirty != int64(tc.pages) {
					t.Errorf("dirty pages got %d, want %d", st.Dirty, tc.pages)
				}
			}
			if got := int64(m.NrPages()); st.Pages != got {
				t.Errorf("charged pages got %d, want the %d cached", st.Pages, got)
			}
			if st.PeakPages > tc.limit {
				t.Errorf("peak pages got %d, want at most the limit %d", st.PeakPages, tc.limit)
			}
			got := make([]byte, len(model))
			if n, err := m.Read(nil, got, 0); n != len(model) || err != nil || !bytes.Equal(got, model) {
				t.Errorf("Read after the write: %d bytes, %v, equal %v; want %d, nil, true", n, err, bytes.Equal(got, model), len(model))
			}
			syncAll(t, m)
			o.wg.Wait()
			if disk := o.disk(); len(disk) < len(model) || !bytes.Equal(disk[:len(model)], model) {
				t.Errorf("disk after sync differs from the model")
			}
		})
	}
}

// TestWriteWholePagesNoSpace refuses a page in the middle of a batch of
// whole pages: the pages before it are written and dirty, the refused
// page is neither locked nor dirty, and the batch's pages after it are
// not left in the cache (nor charged).
func TestWriteWholePagesNoSpace(t *testing.T) {
	c := NewCache(Config{})
	ops := &errBeginner{memOps: newMemOps(t, nil, false), failFrom: 10}
	m := c.NewMapping(ops, 10)
	buf := pattern(20*PageSize, 2)
	n, err := m.Write(buf, 0)
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Write err got %v, want ErrNoSpace", err)
	}
	if want := 10 * PageSize; n != want {
		t.Errorf("Write got %d bytes, want %d", n, want)
	}
	if got, want := m.Size(), int64(10*PageSize); got != want {
		t.Errorf("Size got %d, want %d", got, want)
	}
	if got := c.Stats().Dirty; got != 10 {
		t.Errorf("dirty pages got %d, want 10", got)
	}
	if p := m.Lookup(10); p != nil && (p.Has(Locked) || p.Has(Dirty)) {
		t.Errorf("refused page got locked=%v dirty=%v, want neither", p.Has(Locked), p.Has(Dirty))
	}
	for i := int64(11); i < 20; i++ {
		if p := m.Lookup(i); p != nil {
			t.Errorf("page %d after the refused one is cached (flags %v), want it dropped", i, p.Flags())
		}
	}
	if got, want := c.Stats().Pages, int64(m.NrPages()); got != want {
		t.Errorf("charged pages got %d, want the %d cached", got, want)
	}
}

// TestFramesFollowFileOrder writes a file four times the size of the
// cache, in file order: frames freed by eviction are reused first freed,
// first used, so the cached pages of a run in file order sit in adjacent
// frames (one segment for a device call, where a last-freed-first-used
// list handed them out in reverse).
func TestFramesFollowFileOrder(t *testing.T) {
	const limit = 64
	_, m, _ := newTestMapping(t, Config{Limit: limit * PageSize}, nil, false)
	buf := pattern(16*PageSize, 1)
	for off := int64(0); off < 4*limit*PageSize; off += int64(len(buf)) {
		if _, err := m.Write(buf, off); err != nil {
			t.Fatalf("Write at %d: %v", off, err)
		}
	}
	syncAll(t, m)
	var index int64
	pages := m.LookupRange(&index, MaxIndex, 4*limit)
	if len(pages) < limit/2 {
		t.Fatalf("cached pages after the write: got %d, want at least %d", len(pages), limit/2)
	}
	adjacent := 0
	for i := 1; i < len(pages); i++ {
		prev, p := pages[i-1], pages[i]
		p.Lock()
		prev.Lock()
		if p.Index == prev.Index+1 && p.arena != nil && p.frame == prev.frame+1 {
			adjacent++
		}
		prev.Unlock()
		p.Unlock()
	}
	if want := (len(pages) - 1) * 9 / 10; adjacent < want {
		t.Errorf("pages in adjacent frames: got %d of %d pairs, want at least %d", adjacent, len(pages)-1, want)
	}
}

// batchBeginner is a filesystem that begins whole-page batches at once: it
// prepares at most limit pages of each batch (the rest go to WriteBegin)
// and refuses pages from failFrom on, as a full filesystem does.
type batchBeginner struct {
	errBeginner
	limit      int // pages WriteBeginBatch prepares per call; < 0 for all
	batchCalls atomic.Int32
	batchPages atomic.Int32 // pages WriteBeginBatch prepared
	bad        atomic.Value // string: what was wrong with a batch
}

func (b *batchBeginner) WriteBeginBatch(pages []*Page) (int, error) {
	b.batchCalls.Add(1)
	for i, p := range pages {
		switch {
		case !p.Has(Locked):
			b.bad.Store(fmt.Sprintf("page %d unlocked", p.Index))
		case p.Uptodate():
			b.bad.Store(fmt.Sprintf("page %d uptodate before its bytes are in", p.Index))
		case i > 0 && p.Index != pages[i-1].Index+1:
			b.bad.Store(fmt.Sprintf("page %d follows page %d", p.Index, pages[i-1].Index))
		}
	}
	n := len(pages)
	if b.limit >= 0 {
		n = min(n, b.limit)
	}
	for i, p := range pages[:n] {
		if p.Index >= b.failFrom {
			b.batchPages.Add(int32(i))
			return i, fmt.Errorf("ext2: block for page %d: %w", p.Index, ErrNoSpace)
		}
	}
	b.batchPages.Add(int32(n))
	return n, nil
}

// TestWriteBeginBatch writes whole pages into a BatchWriteBeginner: each
// batch is begun with one WriteBeginBatch call, the pages it leaves go to
// WriteBegin one by one, and a refusal in the middle of a batch stops the
// write at that page as WriteBegin's does.
func TestWriteBeginBatch(t *testing.T) {
	tests := []struct {
		name        string
		pages       int
		limit       int
		failFrom    int64
		wantN       int // pages written
		wantBatches int32
		wantBatched int32 // pages prepared by WriteBeginBatch
		wantBegins  int32 // WriteBegin calls
	}{
		{"whole batches", 100, -1, 1 << 40, 100, 4, 100, 0},
		{"filesystem prepares part of each batch", 64, 20, 1 << 40, 64, 2, 40, 24},
		{"no space mid-batch", 100, -1, 45, 45, 2, 45, 0},
		{"no space at a batch's first page", 64, -1, 32, 32, 2, 32, 0},
		{"no space in WriteBegin after a partial batch", 64, 20, 25, 25, 1, 20, 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := NewCache(Config{})
			ops := &batchBeginner{errBeginner: errBeginner{memOps: newMemOps(t, nil, false), failFrom: tc.failFrom}, limit: tc.limit}
			m := c.NewMapping(ops, 10)
			buf := pattern(tc.pages*PageSize, 4)
			n, err := m.Write(buf, 0)
			if want := tc.wantN * PageSize; n != want {
				t.Errorf("Write got %d bytes, want %d", n, want)
			}
			if tc.wantN < tc.pages && !errors.Is(err, ErrNoSpace) {
				t.Errorf("Write err got %v, want ErrNoSpace", err)
			} else if tc.wantN == tc.pages && err != nil {
				t.Errorf("Write err got %v, want nil", err)
			}
			if bad, _ := ops.bad.Load().(string); bad != "" {
				t.Errorf("WriteBeginBatch got a bad batch: %s", bad)
			}
			if got := ops.batchCalls.Load(); got != tc.wantBatches {
				t.Errorf("WriteBeginBatch calls got %d, want %d", got, tc.wantBatches)
			}
			if got := ops.batchPages.Load(); got != tc.wantBatched {
				t.Errorf("pages prepared by WriteBeginBatch got %d, want %d", got, tc.wantBatched)
			}
			if got := ops.calls.Load(); got != tc.wantBegins {
				t.Errorf("WriteBegin calls got %d, want %d", got, tc.wantBegins)
			}
			if got, want := m.Size(), int64(tc.wantN*PageSize); got != want {
				t.Errorf("Size got %d, want %d", got, want)
			}
			if got := c.Stats().Dirty; got != int64(tc.wantN) {
				t.Errorf("dirty pages got %d, want %d", got, tc.wantN)
			}
			if p := m.Lookup(int64(tc.wantN)); p != nil && (p.Has(Locked) || p.Has(Dirty)) {
				t.Errorf("refused page got locked=%v dirty=%v, want neither", p.Has(Locked), p.Has(Dirty))
			}
			if got, want := c.Stats().Pages, int64(m.NrPages()); got != want {
				t.Errorf("charged pages got %d, want the %d cached", got, want)
			}
			got := make([]byte, n)
			if k, _ := m.Read(nil, got, 0); k != n || !bytes.Equal(got, buf[:n]) {
				t.Errorf("Read after the write: %d bytes, equal %v; want %d, true", k, bytes.Equal(got, buf[:n]), n)
			}
		})
	}
}
