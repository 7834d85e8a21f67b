package pagecache

import (
	"math"
	"sync"
	"sync/atomic"
	"testing"
)

// memOps is an in-memory backing store for one mapping: ReadPage and
// ReadPages fill pages from data, WritePage copies them back. With async
// set, reads and writes complete on another goroutine, as bio completions
// do.
type memOps struct {
	async bool

	mu       sync.Mutex // guards the fields below
	data     []byte     // the file's bytes on "disk"
	batches  []int      // len of each ReadPages call
	failRead map[int64]bool
	holdWB   chan struct{} // if set, write completions wait for it to close

	readPageCalls atomic.Int64
	wg            sync.WaitGroup
}

var _ Operations = (*memOps)(nil)

func newMemOps(t *testing.T, data []byte, async bool) *memOps {
	t.Helper()
	o := &memOps{async: async, data: append([]byte(nil), data...)}
	t.Cleanup(o.wg.Wait)
	return o
}

func (o *memOps) run(f func()) {
	if !o.async {
		f()
		return
	}
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		f()
	}()
}

// complete fills p from the store and unlocks it, as a read's end_io.
func (o *memOps) complete(p *Page) {
	o.mu.Lock()
	fail := o.failRead[p.Index]
	clear(p.Data)
	if off := p.Index << PageShift; off < int64(len(o.data)) {
		copy(p.Data, o.data[off:])
	}
	o.mu.Unlock()
	if fail {
		p.SetError()
	} else {
		p.SetUptodate()
	}
	p.Unlock()
}

func (o *memOps) ReadPage(p *Page) error {
	o.readPageCalls.Add(1)
	o.run(func() { o.complete(p) })
	return nil
}

func (o *memOps) ReadPages(m *Mapping, pages []*Page) error {
	o.mu.Lock()
	o.batches = append(o.batches, len(pages))
	o.mu.Unlock()
	for _, p := range pages {
		if m.AddPage(p) != nil {
			continue
		}
		o.run(func() { o.complete(p) })
	}
	return nil
}

func (o *memOps) WritePage(p *Page, wbc *WritebackControl) error {
	p.SetWriteback()
	p.Unlock()
	o.mu.Lock()
	hold := o.holdWB
	o.mu.Unlock()
	o.run(func() {
		if hold != nil {
			<-hold
		}
		o.mu.Lock()
		off := p.Index << PageShift
		if need := off + PageSize; need > int64(len(o.data)) {
			o.data = append(o.data, make([]byte, need-int64(len(o.data)))...)
		}
		copy(o.data[off:], p.Data)
		o.mu.Unlock()
		p.EndWriteback()
	})
	wbc.PagesWritten++
	return nil
}

// WritePages is a small write_cache_pages: dirty (or, for SyncAll, the
// towrite-tagged) pages in index order.
func (o *memOps) WritePages(m *Mapping, wbc *WritebackControl) error {
	return o.writePagesWith(m, wbc, o.WritePage)
}

// writePagesWith is WritePages writing each page with writePage.
func (o *memOps) writePagesWith(m *Mapping, wbc *WritebackControl, writePage func(*Page, *WritebackControl) error) error {
	start, end := int64(0), int64(math.MaxInt64)
	if !wbc.RangeCyclic && (wbc.RangeStart != 0 || wbc.RangeEnd != 0) {
		start, end = wbc.RangeStart>>PageShift, wbc.RangeEnd>>PageShift
	}
	tag := TagDirty
	if wbc.SyncMode == SyncAll {
		m.TagToWrite(start, end)
		tag = TagToWrite
	}
	idx := start
	for {
		pages := m.LookupTag(&idx, end, tag, 16)
		if len(pages) == 0 {
			return nil
		}
		for _, p := range pages {
			p.Lock()
			if p.Mapping() != m || !p.Has(Dirty) {
				p.Unlock()
				continue
			}
			if p.Has(Writeback) {
				if wbc.SyncMode == SyncNone {
					p.Unlock()
					continue
				}
				p.WaitWriteback()
			}
			if !p.ClearDirtyForIO() {
				p.Unlock()
				continue
			}
			if err := writePage(p, wbc); err != nil {
				return err
			}
			wbc.NrToWrite--
			if wbc.SyncMode == SyncNone && wbc.NrToWrite <= 0 {
				return nil
			}
		}
	}
}

// disk returns a copy of the store.
func (o *memOps) disk() []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]byte(nil), o.data...)
}

func (o *memOps) readBatches() []int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]int(nil), o.batches...)
}

// syncAll writes every dirty page of m and waits for the writes.
func syncAll(t *testing.T, m *Mapping) {
	t.Helper()
	wbc := &WritebackControl{SyncMode: SyncAll}
	if err := m.Ops().WritePages(m, wbc); err != nil {
		t.Fatalf("WritePages: %v", err)
	}
	idx := int64(0)
	for {
		pages := m.LookupTag(&idx, MaxIndex, TagWriteback, 16)
		if len(pages) == 0 {
			break
		}
		for _, p := range pages {
			p.WaitWriteback()
		}
	}
}

// pattern returns n bytes that differ from page to page and from seed to
// seed.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7+i>>12) ^ seed
	}
	return b
}

// addPages puts uptodate, unlocked pages at the given indices.
func addPages(t *testing.T, m *Mapping, idx ...int64) []*Page {
	t.Helper()
	var out []*Page
	for _, i := range idx {
		p := m.FindOrCreate(i)
		if p == nil {
			t.Fatalf("FindOrCreate(%d) = nil", i)
		}
		p.SetUptodate()
		p.Unlock()
		out = append(out, p)
	}
	return out
}
