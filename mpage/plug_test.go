package mpage

import (
	"testing"
	"time"

	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/pagecache"
)

// TestWritePagesUnderPlug writes two small files whose blocks are adjacent
// on the device, one WritePages call each, as a sync pass over two inodes
// does. Without a held block.Plug each call dispatches its own bio (a
// lone fsync must not wait for a timer); under one, the two bios stay
// queued until the plug finishes and reach the device as one call.
func TestWritePagesUnderPlug(t *testing.T) {
	tests := []struct {
		name string
		plug bool
	}{
		{name: "no plug", plug: false},
		{name: "held plug", plug: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A queue that merges and waits for an unplug: no threshold
			// or timer dispatches by itself during the test.
			e := newEnv(t, 12, func(c *block.Config) {
				c.UnplugThreshold = 64
				c.UnplugDelay = time.Hour
				c.PlugDelay = time.Hour
			})
			// File a at device block 40, file b at 41.
			e.m.SetSize(pagecache.PageSize)
			e.mp.set(0, 1, 40)
			e.dirtyPage(0, fill('a'))
			mp2 := &mapper{q: e.q, bs: e.bs, table: map[int64]entry{}}
			mp2.set(0, 1, 41)
			m2 := pagecache.NewCache(pagecache.Config{}).NewMapping(ops{mp2}, e.bits)
			m2.SetSize(pagecache.PageSize)
			p := m2.FindOrCreate(0)
			copy(p.Data, fill('b'))
			p.SetUptodate()
			p.SetDirty()
			p.Unlock()

			var plug *block.Plug
			if tc.plug {
				plug = e.q.StartPlug()
			}
			f := &fallback{e: e}
			if err := WritePages(e.m, syncAll(), e.mp.get, f.writepage); err != nil {
				t.Fatalf("WritePages a: got %v, want nil", err)
			}
			if err := WritePages(m2, syncAll(), mp2.get, f.writepage); err != nil {
				t.Fatalf("WritePages b: got %v, want nil", err)
			}
			if tc.plug {
				time.Sleep(20 * time.Millisecond)
				e.mu.Lock()
				n := len(e.trace)
				e.mu.Unlock()
				if n != 0 {
					t.Errorf("device calls before the plug finished: got %d, want 0", n)
				}
				plug.Finish()
				e.checkTrace(e.wr(40, 2))
			} else {
				e.checkTrace(e.wr(40, 1), e.wr(41, 1))
			}
			e.wantDevPage(40, fill('a'))
			e.wantDevPage(41, fill('b'))
		})
	}
}
