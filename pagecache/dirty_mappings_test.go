package pagecache

import (
	"slices"
	"testing"
)

// idleOps is a filesystem that is never asked to read or write.
type idleOps struct{}

func (idleOps) ReadPage(p *Page) error                       { p.Unlock(); return nil }
func (idleOps) ReadPages(*Mapping, []*Page) error            { return nil }
func (idleOps) WritePage(p *Page, _ *WritebackControl) error { p.Unlock(); return nil }
func (idleOps) WritePages(*Mapping, *WritebackControl) error { return nil }

func TestDirtyMappings(t *testing.T) {
	c := NewCache(Config{Limit: 1 << 20})
	ops := idleOps{}
	a, b, clean := c.NewMapping(ops, 12), c.NewMapping(ops, 12), c.NewMapping(ops, 12)
	for _, m := range []*Mapping{a, b, clean} {
		p := m.FindOrCreate(0)
		p.SetUptodate()
		if m != clean {
			p.SetDirty()
		}
		p.Unlock()
	}
	got := c.DirtyMappings(nil)
	if len(got) != 2 || !slices.Contains(got, a) || !slices.Contains(got, b) {
		t.Errorf("DirtyMappings: got %d mappings (a %v, b %v, clean %v), want a and b", len(got),
			slices.Contains(got, a), slices.Contains(got, b), slices.Contains(got, clean))
	}
	// a comes clean when its page is handed to I/O.
	p := a.FindOrCreate(0)
	p.ClearDirtyForIO()
	p.SetWriteback()
	p.Unlock()
	p.EndWriteback()
	got = c.DirtyMappings(got[:0])
	if len(got) != 1 || got[0] != b {
		t.Errorf("DirtyMappings after a's page went to disk: got %d mappings, want only b", len(got))
	}
}
