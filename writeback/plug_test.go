package writeback

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/pagecache"
)

// bioOps writes a mapping's dirty pages as bios to a real queue, page i
// at device page base+i, and ends the call with UnplugBatch, as
// mpage.WritePages does.
type bioOps struct {
	q    *block.Queue
	base int64
}

func (o *bioOps) ReadPage(p *pagecache.Page) error { p.Unlock(); return nil }
func (o *bioOps) ReadPages(*pagecache.Mapping, []*pagecache.Page) error {
	return nil
}
func (o *bioOps) WritePage(p *pagecache.Page, _ *pagecache.WritebackControl) error {
	p.Unlock()
	return nil
}

func (o *bioOps) WritePages(m *pagecache.Mapping, wbc *pagecache.WritebackControl) error {
	index := int64(0)
	for {
		pages := m.LookupTag(&index, 1<<40, pagecache.TagDirty, 16)
		if len(pages) == 0 {
			break
		}
		for _, p := range pages {
			p.Lock()
			if !p.ClearDirtyForIO() {
				p.Unlock()
				continue
			}
			p.SetWriteback()
			p.Unlock()
			b := o.q.AllocBio(block.Write, (o.base+p.Index)*(pagecache.PageSize>>block.SectorShift), 1)
			b.AddPage(p.Data, p)
			b.EndIO = func(b *block.Bio, _ error) { b.Vecs[0].Page.(*pagecache.Page).EndWriteback() }
			o.q.Submit(b)
			wbc.PagesWritten++
			wbc.NrToWrite--
		}
	}
	o.q.UnplugBatch()
	return nil
}

// TestSyncAllPlug syncs three one-page files whose pages lie one after
// the other on the device: without a Plugger each WritePages call is its
// own device request, with the queue set as Plugger the three merge into
// one request.
func TestSyncAllPlug(t *testing.T) {
	tests := []struct {
		name      string
		plug      bool
		wantCalls int64
	}{
		{name: "no plugger", plug: false, wantCalls: 3},
		{name: "queue as plugger", plug: true, wantCalls: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := block.NewQueue(block.NewMemory(1<<20), block.Config{UnplugDelay: time.Hour, PlugDelay: time.Hour})
			t.Cleanup(func() { q.Close() })
			f, c := newFlusher(t, Config{Interval: time.Hour, Expire: time.Hour, BackgroundDirty: 1 << 20})
			if tc.plug {
				f.SetPlugger(q)
			}
			for i := range int64(3) {
				m := c.NewMapping(&bioOps{q: q, base: i}, 12)
				f.Register(m)
				dirtyPages(t, m, 0, 1, byte(i+1))
				f.MarkDirty(m)
			}
			if err := f.SyncAll(); err != nil {
				t.Fatalf("SyncAll: got %v, want nil", err)
			}
			st := q.Stats()
			if st.WriteCalls != tc.wantCalls || st.BytesWritten != 3*pagecache.PageSize {
				t.Errorf("device writes: got %d calls of %d bytes in all, want %d calls of %d bytes",
					st.WriteCalls, st.BytesWritten, tc.wantCalls, 3*pagecache.PageSize)
			}
		})
	}
}

// TestSyncAllDirtiedOrder checks that SyncAll writes the mappings in the
// order they became dirty, not the order they were registered in (nor a
// registration order scrambled by unregistering), then the clean ones.
func TestSyncAllDirtiedOrder(t *testing.T) {
	f, c := newFlusher(t, Config{Interval: time.Hour, Expire: time.Hour, BackgroundDirty: 1 << 20})
	var seq atomic.Int64
	var ops []*fakeOps
	var maps []*pagecache.Mapping
	for range 5 {
		o := newFakeOps(0)
		o.seq = &seq
		t.Cleanup(o.inflight.Wait)
		m := c.NewMapping(o, 12)
		f.Register(m)
		ops = append(ops, o)
		maps = append(maps, m)
	}
	f.Unregister(maps[0]) // moves the last registered into the first slot
	for _, i := range []int{3, 1, 4, 2} {
		dirtyPages(t, maps[i], 0, 1, byte(i))
		f.MarkDirty(maps[i])
	}
	if err := f.SyncAll(); err != nil {
		t.Fatalf("SyncAll: got %v, want nil", err)
	}
	var got []string
	for _, i := range []int{3, 1, 4, 2} {
		o := ops[i]
		o.mu.Lock()
		got = append(got, fmt.Sprint(o.seqs))
		o.mu.Unlock()
	}
	want := []string{"[1]", "[2]", "[3]", "[4]"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("WritePages call numbers of the mappings in the order they were dirtied: got %v, want %v", got, want)
	}
}

// TestBackgroundWritesChunkAcrossMappings dirties many small mappings
// just over the background threshold: one background pass writes
// ChunkPages pages over as many mappings as it takes before it looks at
// the threshold again, rather than one mapping at a time until the cache
// is just under it.
func TestBackgroundWritesChunkAcrossMappings(t *testing.T) {
	f, c := newFlusher(t, Config{Interval: time.Hour, Expire: time.Hour, ChunkPages: 64, BackgroundDirty: 30})
	var all []*fakeOps
	for i := range 20 {
		o := newFakeOps(0)
		t.Cleanup(o.inflight.Wait)
		m := c.NewMapping(o, 12)
		f.Register(m)
		dirtyPages(t, m, 0, 2, byte(i))
		f.MarkDirty(m)
		all = append(all, o)
	}
	f.writeBackground(make(chan struct{})) // one pass, on this goroutine
	written := 0
	for _, o := range all {
		o.inflight.Wait()
		written += o.nWritten()
	}
	if written != 40 {
		t.Errorf("pages written by the background pass: got %d, want all 40 (under one chunk of 64)", written)
	}
}
