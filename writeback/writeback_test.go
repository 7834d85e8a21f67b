package writeback

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpagefs/mpage/pagecache"
)

// fakeOps is a filesystem whose WritePages walks the dirty pages as
// write_cache_pages does and "writes" them to a map, ending writeback on
// another goroutine after delay.
type fakeOps struct {
	delay time.Duration

	mu        sync.Mutex // guards the fields below
	disk      map[int64]byte
	calls     []pagecache.WritebackControl // each call's wbc on entry
	err       error                        // returned by WritePages
	pageErr   int64                        // a page whose write fails, or -1
	mapErr    error                        // if set, pageErr's failure is recorded on the mapping instead
	congested bool                         // report congestion after one page
	inflight  sync.WaitGroup
	seq       *atomic.Int64 // shared call counter, if set
	seqs      []int64       // seq of each call
}

var _ pagecache.Operations = (*fakeOps)(nil)

func newFakeOps(delay time.Duration) *fakeOps {
	return &fakeOps{delay: delay, disk: map[int64]byte{}, pageErr: -1}
}

func (o *fakeOps) ReadPage(p *pagecache.Page) error { p.Unlock(); return nil }
func (o *fakeOps) ReadPages(m *pagecache.Mapping, pages []*pagecache.Page) error {
	return nil
}
func (o *fakeOps) WritePage(p *pagecache.Page, wbc *pagecache.WritebackControl) error {
	p.Unlock()
	return nil
}

func (o *fakeOps) WritePages(m *pagecache.Mapping, wbc *pagecache.WritebackControl) error {
	o.mu.Lock()
	o.calls = append(o.calls, *wbc)
	if o.seq != nil {
		o.seqs = append(o.seqs, o.seq.Add(1))
	}
	err, pageErr, mapErr, congested := o.err, o.pageErr, o.mapErr, o.congested
	o.mu.Unlock()
	if err != nil {
		return err
	}
	start, end := int64(0), int64(1<<50)
	if wbc.RangeCyclic {
		start = m.WritebackIndex()
	} else if wbc.RangeStart != 0 || wbc.RangeEnd != 0 {
		start, end = wbc.RangeStart>>pagecache.PageShift, wbc.RangeEnd>>pagecache.PageShift
	}
	index, wrapped, last := start, !wbc.RangeCyclic || start == 0, start
	for {
		pages := m.LookupTag(&index, end, pagecache.TagDirty, 16)
		if len(pages) == 0 {
			if wrapped {
				break
			}
			wrapped, index, end = true, 0, start-1
			continue
		}
		for _, p := range pages {
			if wbc.SyncMode == pagecache.SyncNone && wbc.NrToWrite <= 0 {
				if wbc.RangeCyclic {
					m.SetWritebackIndex(last)
				}
				return nil
			}
			p.Lock()
			if p.Mapping() != m || !p.Has(pagecache.Dirty) {
				p.Unlock()
				continue
			}
			if p.Has(pagecache.Writeback) {
				if wbc.SyncMode == pagecache.SyncNone {
					p.Unlock()
					continue
				}
				p.WaitWriteback()
			}
			p.ClearDirtyForIO()
			p.SetWriteback()
			v := p.Data[0]
			p.Unlock()
			wbc.NrToWrite--
			wbc.PagesWritten++
			last = p.Index + 1
			o.inflight.Add(1)
			go func() {
				defer o.inflight.Done()
				time.Sleep(o.delay)
				switch {
				case p.Index == pageErr && mapErr != nil:
					m.SetError(mapErr)
				case p.Index == pageErr:
					p.SetError()
				default:
					o.mu.Lock()
					o.disk[p.Index] = v
					o.mu.Unlock()
				}
				p.EndWriteback()
			}()
			if congested && wbc.Nonblocking {
				wbc.EncounteredCongestion = true
				m.SetWritebackIndex(last)
				return nil
			}
		}
	}
	if wbc.RangeCyclic {
		m.SetWritebackIndex(0)
	}
	return nil
}

func (o *fakeOps) onDisk(i int64) (byte, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	v, ok := o.disk[i]
	return v, ok
}

func (o *fakeOps) nWritten() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.disk)
}

func (o *fakeOps) takeCalls() []pagecache.WritebackControl {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := o.calls
	o.calls = nil
	return c
}

// dirtyPages makes pages first..first+n-1 of m dirty with v in their first
// byte.
func dirtyPages(t *testing.T, m *pagecache.Mapping, first, n int64, v byte) {
	t.Helper()
	for i := first; i < first+n; i++ {
		p := m.FindOrCreate(i)
		p.SetUptodate()
		p.Data[0] = v
		p.SetDirty()
		p.Unlock()
	}
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func newFlusher(t *testing.T, cfg Config) (*Flusher, *pagecache.Cache) {
	t.Helper()
	c := pagecache.NewCache(pagecache.Config{Limit: 64 << 20})
	f := New(c, cfg)
	t.Cleanup(f.Stop)
	return f, c
}

func TestFlushOldData(t *testing.T) {
	f, c := newFlusher(t, Config{Interval: 2 * time.Millisecond, Expire: 30 * time.Millisecond, BackgroundDirty: 1 << 20})
	ops := newFakeOps(0)
	m := c.NewMapping(ops, 12)
	t.Cleanup(ops.inflight.Wait)
	f.Register(m)
	f.Start()
	dirtied := time.Now()
	dirtyPages(t, m, 0, 10, 7)
	f.MarkDirty(m)
	waitFor(t, "old data to be written", func() bool { return ops.nWritten() == 10 })
	if age := time.Since(dirtied); age < 30*time.Millisecond {
		t.Errorf("pages written %v after being dirtied, want no sooner than Expire (30ms)", age)
	}
	for i := int64(0); i < 10; i++ {
		if v, ok := ops.onDisk(i); !ok || v != 7 {
			t.Errorf("page %d: got %d, %v, want 7 written", i, v, ok)
		}
	}
	for _, wbc := range ops.takeCalls() {
		if wbc.SyncMode != pagecache.SyncNone || !wbc.RangeCyclic || !wbc.Nonblocking {
			t.Errorf("flusher wbc: got %+v, want SyncNone, RangeCyclic, Nonblocking", wbc)
		}
	}
	if s := f.Stats(); s.ExpiredPages != 10 || s.BackgroundPages != 0 {
		t.Errorf("stats: got %+v, want 10 expired pages and no background pages", s)
	}
}

func TestYoungDataWaits(t *testing.T) {
	f, c := newFlusher(t, Config{Interval: 2 * time.Millisecond, Expire: time.Hour, BackgroundDirty: 1 << 20})
	ops := newFakeOps(0)
	m := c.NewMapping(ops, 12)
	f.Register(m)
	f.Start()
	dirtyPages(t, m, 0, 4, 1)
	waitFor(t, "a few flusher passes", func() bool { return f.Stats().Wakeups >= 10 })
	if n := ops.nWritten(); n != 0 {
		t.Errorf("young data below the threshold: got %d pages written, want 0", n)
	}
}

func TestBackgroundThreshold(t *testing.T) {
	f, c := newFlusher(t, Config{Interval: time.Hour, Expire: time.Hour, ChunkPages: 8, BackgroundDirty: 20})
	ops := newFakeOps(0)
	m := c.NewMapping(ops, 12)
	t.Cleanup(ops.inflight.Wait)
	f.Register(m)
	f.Start()
	dirtyPages(t, m, 0, 100, 3)
	f.Kick()
	waitFor(t, "the cache to fall to its background threshold", func() bool {
		return c.Stats().Dirty <= 20 && f.Stats().BackgroundPages > 0
	})
	ops.inflight.Wait()
	// It stops near the threshold: it writes whole chunks, so at most one
	// chunk below it.
	if d := c.Stats().Dirty; d < 20-8 {
		t.Errorf("dirty pages left: got %d, want at least %d (flusher overshot)", d, 20-8)
	}
	for _, wbc := range ops.takeCalls() {
		if wbc.NrToWrite != 8 {
			t.Errorf("chunk budget: got %d, want 8", wbc.NrToWrite)
		}
	}
}

func TestCyclicChunksDoNotStarve(t *testing.T) {
	f, c := newFlusher(t, Config{Interval: time.Hour, Expire: time.Hour, ChunkPages: 16, BackgroundDirty: 1})
	big, small := newFakeOps(0), newFakeOps(0)
	t.Cleanup(big.inflight.Wait)
	t.Cleanup(small.inflight.Wait)
	mb, ms := c.NewMapping(big, 12), c.NewMapping(small, 12)
	f.Register(mb)
	f.Register(ms)
	dirtyPages(t, mb, 0, 256, 1)
	dirtyPages(t, ms, 0, 4, 2)
	var seq atomic.Int64
	big.seq, small.seq = &seq, &seq
	f.Start()
	f.Kick()
	waitFor(t, "the small mapping to be written", func() bool { return small.nWritten() == 4 })
	waitFor(t, "the big mapping to be written", func() bool { return big.nWritten() >= 255 })
	small.mu.Lock()
	first := small.seqs[0]
	small.mu.Unlock()
	if first > 2 {
		t.Errorf("small mapping: first written by call %d, want one of the first 2 (one chunk of the big one at most before it)", first)
	}
	// The big mapping's chunks start where the previous one ended.
	calls := big.takeCalls()
	if len(calls) < 256/16-1 {
		t.Fatalf("big mapping: got %d chunks, want about %d", len(calls), 256/16)
	}
	for i, wbc := range calls {
		if wbc.NrToWrite != 16 || !wbc.RangeCyclic {
			t.Errorf("chunk %d: got budget %d, cyclic %v, want 16, true", i, wbc.NrToWrite, wbc.RangeCyclic)
		}
	}
}

func TestSyncMappingWaitsForWriteback(t *testing.T) {
	c := pagecache.NewCache(pagecache.Config{})
	ops := newFakeOps(20 * time.Millisecond)
	t.Cleanup(ops.inflight.Wait)
	m := c.NewMapping(ops, 12)
	dirtyPages(t, m, 0, 8, 9)
	// Some pages are already under writeback when the sync starts.
	ops.WritePages(m, &pagecache.WritebackControl{SyncMode: pagecache.SyncNone, NrToWrite: 3, RangeCyclic: true})
	dirtyPages(t, m, 0, 1, 10) // redirty a page under writeback
	if err := SyncMapping(m); err != nil {
		t.Fatalf("SyncMapping: %v", err)
	}
	if m.Tagged(pagecache.TagDirty) || m.Tagged(pagecache.TagWriteback) {
		t.Errorf("after SyncMapping: dirty %v, writeback %v, want neither", m.Tagged(pagecache.TagDirty), m.Tagged(pagecache.TagWriteback))
	}
	for i := int64(0); i < 8; i++ {
		want := byte(9)
		if i == 0 {
			want = 10
		}
		if v, ok := ops.onDisk(i); !ok || v != want {
			t.Errorf("page %d on disk after SyncMapping: got %d, %v, want %d", i, v, ok, want)
		}
	}
	calls := ops.takeCalls()
	if last := calls[len(calls)-1]; last.SyncMode != pagecache.SyncAll || last.RangeCyclic {
		t.Errorf("sync wbc: got %+v, want SyncAll over the whole range", last)
	}
}

func TestSyncErrors(t *testing.T) {
	errDisk := errors.New("disk on fire")
	tests := []struct {
		name    string
		setup   func(o *fakeOps)
		wantErr error
	}{
		{"WritePages fails", func(o *fakeOps) { o.err = errDisk }, errDisk},
		{"a page write fails", func(o *fakeOps) { o.pageErr = 2 }, ErrPageIO},
		{"all good", func(o *fakeOps) {}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := pagecache.NewCache(pagecache.Config{})
			ops := newFakeOps(10 * time.Millisecond)
			t.Cleanup(ops.inflight.Wait)
			tt.setup(ops)
			m := c.NewMapping(ops, 12)
			dirtyPages(t, m, 0, 4, 1)
			err := SyncMapping(m)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("SyncMapping: got %v, want %v", err, tt.wantErr)
			}
			f := New(c, Config{})
			f.Register(m)
			dirtyPages(t, m, 0, 4, 1)
			err = f.SyncAll()
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("SyncAll: got %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestSyncReportsMappingError checks that an error recorded on the mapping
// by a write that ended before the sync looked (AS_EIO) is still reported.
func TestSyncReportsMappingError(t *testing.T) {
	c := pagecache.NewCache(pagecache.Config{})
	ops := newFakeOps(0)
	ops.pageErr, ops.mapErr = 1, errors.New("lost write")
	m := c.NewMapping(ops, 12)
	if _, ok := any(m).(errorChecker); !ok {
		t.Skip("pagecache.Mapping has no CheckErrors")
	}
	dirtyPages(t, m, 0, 4, 1)
	ops.WritePages(m, &pagecache.WritebackControl{SyncMode: pagecache.SyncNone, NrToWrite: 4})
	ops.inflight.Wait() // every write is over before the sync
	if err := SyncMapping(m); err == nil {
		t.Errorf("SyncMapping after a failed write: got nil, want the mapping's error")
	}
	if err := SyncMapping(m); err != nil {
		t.Errorf("second SyncMapping: got %v, want nil (the error is reported once)", err)
	}
}

func TestSyncAllOverlapsMappings(t *testing.T) {
	c := pagecache.NewCache(pagecache.Config{})
	f := New(c, Config{})
	var all []*fakeOps
	for range 4 {
		ops := newFakeOps(30 * time.Millisecond)
		t.Cleanup(ops.inflight.Wait)
		m := c.NewMapping(ops, 12)
		dirtyPages(t, m, 0, 2, 5)
		f.Register(m)
		all = append(all, ops)
	}
	if err := f.SyncAll(); err != nil {
		t.Fatal(err)
	}
	for i, ops := range all {
		if n := ops.nWritten(); n != 2 {
			t.Errorf("mapping %d: got %d pages written, want 2", i, n)
		}
	}
	if d := c.Stats().Dirty; d != 0 {
		t.Errorf("dirty pages after SyncAll: got %d, want 0", d)
	}
}

func TestCongestionStopsPass(t *testing.T) {
	f, c := newFlusher(t, Config{Interval: time.Hour, Expire: time.Hour, ChunkPages: 16, BackgroundDirty: 1})
	ops := newFakeOps(0)
	t.Cleanup(ops.inflight.Wait)
	ops.congested = true
	m := c.NewMapping(ops, 12)
	f.Register(m)
	dirtyPages(t, m, 0, 8, 1)
	f.Start()
	f.Kick()
	// One page per call, then congestion; the flusher comes back soon
	// (not an Interval later) and eventually writes everything.
	waitFor(t, "all pages but the one under the threshold", func() bool { return ops.nWritten() >= 7 })
	if s := f.Stats(); s.Congested == 0 {
		t.Errorf("stats: got %+v, want congested passes counted", s)
	}
}

func TestUnregisterWaitsForPass(t *testing.T) {
	f, c := newFlusher(t, Config{Interval: time.Millisecond, Expire: time.Hour, ChunkPages: 4, BackgroundDirty: 1})
	ops := newFakeOps(0)
	t.Cleanup(ops.inflight.Wait)
	m := c.NewMapping(ops, 12)
	f.Register(m)
	dirtyPages(t, m, 0, 64, 1)
	f.Start()
	waitFor(t, "the flusher to start writing", func() bool { return ops.nWritten() > 0 })
	f.Unregister(m)
	n := len(ops.takeCalls())
	time.Sleep(20 * time.Millisecond)
	if got := len(ops.takeCalls()); got != 0 {
		t.Errorf("WritePages calls after Unregister returned: got %d (after %d before), want 0", got, n)
	}
}

func TestStopLeavesNoGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	c := pagecache.NewCache(pagecache.Config{})
	f := New(c, Config{Interval: time.Millisecond})
	ops := newFakeOps(0)
	m := c.NewMapping(ops, 12)
	f.Register(m)
	f.Start()
	f.Start() // no second goroutine
	dirtyPages(t, m, 0, 4, 1)
	time.Sleep(5 * time.Millisecond)
	f.Stop()
	f.Stop()
	ops.inflight.Wait()
	waitFor(t, "goroutines to settle", func() bool { return runtime.NumGoroutine() <= before })
	// Restart works.
	f.Start()
	f.Stop()
	waitFor(t, "goroutines to settle after restart", func() bool { return runtime.NumGoroutine() <= before })
}
