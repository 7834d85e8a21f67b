package pagecache

import (
	"bytes"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"
)

const testLimitPages = 64

// TestEvictionKeepsWithinLimit reads a file 8 times larger than the cache,
// sequentially and at random, and checks the data and that the charged
// pages never passed the limit.
func TestEvictionKeepsWithinLimit(t *testing.T) {
	for _, async := range []bool{false, true} {
		name := "sync reads"
		if async {
			name = "async reads"
		}
		t.Run(name, func(t *testing.T) {
			data := pattern(8*testLimitPages*PageSize, 3)
			c, m, _ := newTestMapping(t, Config{Limit: testLimitPages * PageSize}, data, async)
			ra := NewReadaheadState(0)
			buf := make([]byte, 3*PageSize+100)
			for off := int64(0); off < int64(len(data)); off += int64(len(buf)) {
				n, err := m.Read(ra, buf, off)
				if err != nil {
					t.Fatalf("Read at %d: %v", off, err)
				}
				if want := min(len(buf), len(data)-int(off)); n != want || !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
					t.Fatalf("Read at %d got %d bytes (equal=%v), want %d matching", off, n, bytes.Equal(buf[:n], data[off:off+int64(n)]), want)
				}
			}
			rng := rand.New(rand.NewPCG(5, 6))
			for range 200 {
				off := rng.Int64N(int64(len(data)))
				n, err := m.Read(nil, buf[:1+rng.IntN(len(buf))], off)
				if err != nil || !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
					t.Fatalf("random Read at %d: n=%d err=%v, data equal=%v", off, n, err, bytes.Equal(buf[:n], data[off:off+int64(n)]))
				}
			}
			st := c.Stats()
			if st.PeakPages > testLimitPages {
				t.Errorf("PeakPages got %d, want <= %d", st.PeakPages, testLimitPages)
			}
			if st.Evicted == 0 {
				t.Errorf("Evicted got 0, want > 0")
			}
			if got := int64(m.NrPages()); got > testLimitPages || got != st.Pages {
				t.Errorf("NrPages got %d, want <= %d and == Stats.Pages %d", got, testLimitPages, st.Pages)
			}
		})
	}
}

// fillCache makes n clean, uptodate pages 0..n-1 and clears their grace
// bit, so eviction order is plain LRU order.
func fillCache(t *testing.T, m *Mapping, n int) []*Page {
	t.Helper()
	var idx []int64
	for i := range n {
		idx = append(idx, int64(i))
	}
	pages := addPages(t, m, idx...)
	for _, p := range pages {
		p.clear(Referenced)
	}
	return pages
}

func TestEvictionOrder(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(pages []*Page)
		release func(*Page) bool
		evicted int64 // the page the next allocation must evict
	}{
		{"oldest first", func([]*Page) {}, nil, 0},
		{"referenced gets a second chance", func(ps []*Page) { ps[0].set(Referenced) }, nil, 1},
		{"dirty stays", func(ps []*Page) { ps[0].SetDirty() }, nil, 1},
		{"locked stays", func(ps []*Page) { ps[0].Lock() }, nil, 1},
		{"writeback stays", func(ps []*Page) { ps[0].Lock(); ps[0].SetWriteback(); ps[0].Unlock() }, nil, 1},
		{"private without releaser stays", func(ps []*Page) { ps[0].Private = "bh" }, nil, 1},
		{"private with refusing releaser stays", func(ps []*Page) { ps[0].Private = "bh" },
			func(*Page) bool { return false }, 1},
		{"private with releaser goes", func(ps []*Page) { ps[0].Private = "bh" },
			func(p *Page) bool { p.Private = nil; return true }, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, m, _ := newTestMapping(t, Config{Limit: minLimitPages * PageSize}, nil, false)
			c.SetReleasePage(tc.release)
			pages := fillCache(t, m, minLimitPages)
			tc.prepare(pages)
			p := m.NewPage(1000)
			defer p.Release()
			for i, q := range pages {
				gone := q.Mapping() == nil
				if want := int64(i) == tc.evicted; gone != want {
					t.Errorf("page %d evicted got %v, want %v", i, gone, want)
				}
			}
			if st := c.Stats(); st.Pages != minLimitPages {
				t.Errorf("Pages got %d, want %d", st.Pages, minLimitPages)
			}
		})
	}
}

// TestAllocationWaitsForWriteback fills the cache with dirty pages: an
// allocation must kick writeback, wait, and go on once the flusher has
// cleaned pages, without passing the limit.
func TestAllocationWaitsForWriteback(t *testing.T) {
	c, m, o := newTestMapping(t, Config{Limit: minLimitPages * PageSize}, nil, true)
	for _, p := range fillCache(t, m, minLimitPages) {
		p.SetDirty()
	}
	release := make(chan struct{})
	kicks := make(chan struct{}, 100)
	c.SetWritebackKick(func() {
		select {
		case kicks <- struct{}{}:
		default:
		}
	})
	got := make(chan *Page)
	go func() { got <- m.NewPage(500) }()
	select {
	case <-kicks:
	case <-time.After(10 * time.Second):
		t.Fatal("allocation never kicked writeback")
	}
	select {
	case <-got:
		t.Fatal("allocation succeeded with every page dirty, want it to wait")
	case <-time.After(100 * time.Millisecond):
	}
	o.mu.Lock()
	o.holdWB = release
	o.mu.Unlock()
	if err := o.WritePages(m, &WritebackControl{SyncMode: SyncNone, NrToWrite: 4}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
		t.Fatal("allocation succeeded while writeback was in flight, want it to wait")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	select {
	case p := <-got:
		p.Release()
	case <-time.After(10 * time.Second):
		t.Fatal("allocation still waiting after writeback completed")
	}
	if st := c.Stats(); st.PeakPages > minLimitPages || st.AllocWaits == 0 {
		t.Errorf("got peak %d waits %d, want peak <= %d and waits > 0", st.PeakPages, st.AllocWaits, minLimitPages)
	}
}

func TestBalanceDirty(t *testing.T) {
	const limit = 100 // pages: background 10, throttle 20
	t.Run("thresholds", func(t *testing.T) {
		c := NewCache(Config{Limit: limit * PageSize})
		if bg, hard := c.DirtyThresholds(); bg != 10 || hard != 20 {
			t.Errorf("got background %d dirty %d, want 10 and 20", bg, hard)
		}
	})
	t.Run("background", func(t *testing.T) {
		c, m, _ := newTestMapping(t, Config{Limit: limit * PageSize}, nil, false)
		var kicks atomic.Int32
		c.SetWritebackKick(func() { kicks.Add(1) })
		pages := fillCache(t, m, 11)
		for _, p := range pages[:10] {
			p.SetDirty()
		}
		if c.OverBackgroundThreshold() {
			t.Errorf("at 10 dirty got over background, want not")
		}
		c.BalanceDirty()
		if kicks.Load() != 0 {
			t.Errorf("at 10 dirty got %d kicks, want 0", kicks.Load())
		}
		pages[10].SetDirty()
		if !c.OverBackgroundThreshold() {
			t.Errorf("at 11 dirty got under background, want over")
		}
		c.BalanceDirty() // must not block: under the dirty threshold
		if kicks.Load() == 0 {
			t.Errorf("at 11 dirty got no kick, want one")
		}
	})
	t.Run("throttles until flusher cleans", func(t *testing.T) {
		c, m, o := newTestMapping(t, Config{Limit: limit * PageSize}, nil, true)
		kicks := make(chan struct{}, 1)
		c.SetWritebackKick(func() {
			select {
			case kicks <- struct{}{}:
			default:
			}
		})
		for _, p := range fillCache(t, m, 25) {
			p.SetDirty()
		}
		done := make(chan struct{})
		go func() { c.BalanceDirty(); close(done) }()
		<-kicks
		select {
		case <-done:
			t.Fatal("BalanceDirty returned with 25 dirty pages, want it to block")
		case <-time.After(100 * time.Millisecond):
		}
		if err := o.WritePages(m, &WritebackControl{SyncMode: SyncNone, NrToWrite: 10}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("BalanceDirty still blocked after writeback cleaned pages")
		}
		if st := c.Stats(); st.Throttled == 0 {
			t.Errorf("Throttled got 0, want > 0")
		}
	})
	t.Run("throttled writer is not woken by every page", func(t *testing.T) {
		c, m, _ := newTestMapping(t, Config{Limit: limit * PageSize}, nil, false)
		kicks := make(chan struct{}, 1)
		c.SetWritebackKick(func() {
			select {
			case kicks <- struct{}{}:
			default:
			}
		})
		pages := fillCache(t, m, 25)
		for _, p := range pages {
			p.SetDirty()
		}
		done := make(chan struct{})
		go func() { c.BalanceDirty(); close(done) }()
		<-kicks
		// What a flusher does to ten pages: lock, clear dirty for I/O,
		// start writeback, unlock; then the I/O ends page by page. Only
		// the last completion brings dirty+writeback (25 → 15) to the
		// writer's resume point, 5 pages below the threshold of 20.
		for _, p := range pages[:10] {
			p.Lock()
			p.ClearDirtyForIO()
			p.SetWriteback()
			p.Unlock()
		}
		for i, p := range pages[:10] {
			select {
			case <-done:
				t.Fatalf("BalanceDirty returned with %d dirty+writeback pages, want it to sleep until 15", 25-i)
			default:
			}
			p.EndWriteback()
			time.Sleep(2 * time.Millisecond)
		}
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("BalanceDirty still blocked at 15 dirty+writeback pages")
		}
		// One sleep, plus at most a couple of waitRecheck rounds on a
		// slow machine; not one wake-up per unlock or completion.
		if st := c.Stats(); st.Throttled < 1 || st.Throttled > 3 {
			t.Errorf("Throttled got %d, want 1 to 3 (woken once, at the resume point)", st.Throttled)
		}
	})
	t.Run("no flusher: writer writes back itself", func(t *testing.T) {
		c, m, o := newTestMapping(t, Config{Limit: limit * PageSize}, nil, false)
		for _, p := range fillCache(t, m, 25) {
			p.SetDirty()
		}
		c.BalanceDirty()
		if st := c.Stats(); st.Dirty+st.Writeback > 20 {
			t.Errorf("got dirty+writeback %d, want <= 20", st.Dirty+st.Writeback)
		}
		if len(o.disk()) == 0 {
			t.Errorf("nothing reached the disk, want pages written")
		}
	})
}
