package writeback

import (
	"sync"
	"testing"
	"time"

	"github.com/mpagefs/mpage/pagecache"
)

// TestUnregisterKeepsOthers unregisters mappings from the front, middle
// and end of the registered set and checks that SyncAll still writes
// exactly the ones left.
func TestUnregisterKeepsOthers(t *testing.T) {
	c := pagecache.NewCache(pagecache.Config{Limit: 64 << 20})
	f := New(c, Config{})
	const n = 6
	var ops [n]*fakeOps
	var ms [n]*pagecache.Mapping
	for i := range n {
		ops[i] = newFakeOps(0)
		t.Cleanup(ops[i].inflight.Wait)
		ms[i] = c.NewMapping(ops[i], 12)
		f.Register(ms[i])
		dirtyPages(t, ms[i], 0, 2, byte(i+1))
	}
	gone := map[int]bool{0: true, 3: true, n - 1: true}
	for i := range gone {
		f.Unregister(ms[i])
	}
	f.Unregister(ms[0]) // twice does nothing
	if err := f.SyncAll(); err != nil {
		t.Fatalf("SyncAll: %v", err)
	}
	for i := range n {
		ops[i].inflight.Wait()
		got, want := ops[i].nWritten(), 2
		if gone[i] {
			want = 0
		}
		if got != want {
			t.Errorf("mapping %d (unregistered %v): got %d pages written, want %d", i, gone[i], got, want)
		}
	}
}

// TestDirtyAgeRestartsAfterClean checks that a mapping written clean by
// someone else (an fsync) and dirtied again is not written by the
// periodic pass before Expire has passed since the second dirtying.
func TestDirtyAgeRestartsAfterClean(t *testing.T) {
	const expire = 150 * time.Millisecond
	f, c := newFlusher(t, Config{Interval: 5 * time.Millisecond, Expire: expire, BackgroundDirty: 1 << 20})
	ops := newFakeOps(0)
	t.Cleanup(ops.inflight.Wait)
	m := c.NewMapping(ops, 12)
	f.Register(m)
	f.Start()
	dirtyPages(t, m, 0, 1, 1)
	waitFor(t, "the flusher to see the mapping dirty", func() bool { return f.Stats().Wakeups >= 3 })
	if err := SyncMapping(m); err != nil {
		t.Fatalf("SyncMapping: %v", err)
	}
	// Let the flusher notice that the mapping came clean.
	w := f.Stats().Wakeups
	waitFor(t, "two more passes", func() bool { return f.Stats().Wakeups >= w+2 })
	time.Sleep(expire / 2)
	redirtied := time.Now()
	dirtyPages(t, m, 1, 1, 2)
	waitFor(t, "the redirtied page to be written", func() bool {
		v, ok := ops.onDisk(1)
		return ok && v == 2
	})
	if age := time.Since(redirtied); age < expire {
		t.Errorf("redirtied page written %v after it was dirtied, want no sooner than Expire (%v)", age, expire)
	}
}

// onFirstWrite is a fakeOps that calls hook at its first WritePages.
type onFirstWrite struct {
	*fakeOps
	once sync.Once
	hook func()
}

func (o *onFirstWrite) WritePages(m *pagecache.Mapping, wbc *pagecache.WritebackControl) error {
	o.once.Do(o.hook)
	return o.fakeOps.WritePages(m, wbc)
}

// TestBackgroundFindsMappingsDirtiedDuringPass checks that background
// writeback, kicked once, also writes a mapping that got dirty after the
// pass began (here: while it wrote the first chunk of another).
func TestBackgroundFindsMappingsDirtiedDuringPass(t *testing.T) {
	f, c := newFlusher(t, Config{Interval: time.Hour, Expire: time.Hour, ChunkPages: 4, BackgroundDirty: 1})
	first, late := newFakeOps(0), newFakeOps(0)
	t.Cleanup(first.inflight.Wait)
	t.Cleanup(late.inflight.Wait)
	m2 := c.NewMapping(late, 12)
	m1 := c.NewMapping(&onFirstWrite{fakeOps: first, hook: func() { dirtyPages(t, m2, 0, 8, 2) }}, 12)
	f.Register(m1)
	f.Register(m2)
	dirtyPages(t, m1, 0, 8, 1)
	f.Start()
	f.Kick()
	waitFor(t, "the late mapping to be written down to the threshold", func() bool {
		return first.nWritten() == 8 && late.nWritten() >= 7
	})
	if s := f.Stats(); s.Wakeups != 1 {
		t.Errorf("flusher passes: got %d, want 1 (kicked once)", s.Wakeups)
	}
}

// BenchmarkRefreshDirty is the flusher's bookkeeping at each wake-up with
// 4,096 registered mappings (the inode cache's default size), each with a
// cached page, of which 16 are dirty.
func BenchmarkRefreshDirty(b *testing.B) {
	c := pagecache.NewCache(pagecache.Config{Limit: 64 << 20})
	f := New(c, Config{})
	ops := newFakeOps(0)
	for i := range 4096 {
		m := c.NewMapping(ops, 12)
		f.Register(m)
		p := m.FindOrCreate(0)
		p.SetUptodate()
		if i%256 == 0 {
			p.SetDirty()
		}
		p.Unlock()
	}
	now := time.Now()
	for b.Loop() {
		f.refreshDirty(now)
	}
}
