package mpage

import (
	"sync/atomic"
	"testing"

	"github.com/mpagefs/mpage/pagecache"
)

// countingOps are the test's operations with the FallbackCounter
// ability.
type countingOps struct {
	ops
	reads, writes atomic.Int64
}

func (c *countingOps) FallbackRead()  { c.reads.Add(1) }
func (c *countingOps) FallbackWrite() { c.writes.Add(1) }

var _ FallbackCounter = (*countingOps)(nil)

// countingMapping gives e a mapping over its mapper whose operations
// count the pages that leave the multi-page path.
func countingMapping(e *env) (*pagecache.Mapping, *countingOps) {
	c := &countingOps{ops: ops{e.mp}}
	m := pagecache.NewCache(pagecache.Config{}).NewMapping(c, e.bits)
	m.SetSize(2 * pagecache.PageSize)
	return m, c
}

func TestFallbackCounter(t *testing.T) {
	tests := []struct {
		name       string
		page1      []int64 // device blocks of page 1 (page 0 is at 60..63)
		wantReads  int64
		wantWrites int64
	}{
		{"contiguous", []int64{64, 65, 66, 67}, 0, 0},
		{"non-contiguous", []int64{80, 82, 81, 83}, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name+" read", func(t *testing.T) {
			e := newEnv(t, 10)
			m, c := countingMapping(e)
			e.mp.set(0, 4, 60)
			for i, d := range tt.page1 {
				e.mp.set(4+int64(i), 1, d)
			}
			pages := []*pagecache.Page{m.NewPage(0), m.NewPage(1)}
			if err := ReadPages(m, pages, e.mp.get); err != nil {
				t.Fatalf("ReadPages: got %v, want nil", err)
			}
			e.waitIO()
			wantPage(t, pages[1], up, locked, e.pageOf(tt.page1...))
			if got := c.reads.Load(); got != tt.wantReads {
				t.Errorf("fallback reads: got %d, want %d", got, tt.wantReads)
			}
			if got := c.writes.Load(); got != 0 {
				t.Errorf("fallback writes after reading: got %d, want 0", got)
			}
		})
		t.Run(tt.name+" write", func(t *testing.T) {
			e := newEnv(t, 10)
			m, c := countingMapping(e)
			e.mp.set(0, 4, 60)
			for i, d := range tt.page1 {
				e.mp.set(4+int64(i), 1, d)
			}
			for i := range int64(2) {
				p := m.FindOrCreate(i)
				copy(p.Data, fill(byte('a'+i)))
				p.SetUptodate()
				p.SetDirty()
				p.Unlock()
			}
			if err := WritePages(m, syncAll(), e.mp.get, c.WritePage); err != nil {
				t.Fatalf("WritePages: got %v, want nil", err)
			}
			e.waitIO()
			if got := c.writes.Load(); got != tt.wantWrites {
				t.Errorf("fallback writes: got %d, want %d", got, tt.wantWrites)
			}
			if got := c.reads.Load(); got != 0 {
				t.Errorf("fallback reads after writing: got %d, want 0", got)
			}
		})
	}
}
