package pagecache

import (
	"testing"
)

// discardOps writes pages nowhere: WritePage ends writeback at once. It
// isolates the page cache's own cost per page.
type discardOps struct{ memOps }

func (o *discardOps) WritePage(p *Page, wbc *WritebackControl) error {
	p.SetWriteback()
	p.Unlock()
	p.EndWriteback()
	wbc.PagesWritten++
	return nil
}

func (o *discardOps) WritePages(m *Mapping, wbc *WritebackControl) error {
	return o.memOps.writePagesWith(m, wbc, o.WritePage)
}

// BenchmarkWriteSequential writes a file of four times a 16 MiB cache in
// 1 MiB writes, the writer writing back itself into ops that discard the
// data: the cost of the page cache alone (allocation, copy, tagging,
// eviction) per byte. Run with -benchmem: allocations per op are per
// 1 MiB write.
func BenchmarkWriteSequential(b *testing.B) {
	const limit = 16 << 20
	c := NewCache(Config{Limit: limit})
	b.Cleanup(c.Close)
	o := &discardOps{}
	m := c.NewMapping(o, 12)
	buf := make([]byte, 1<<20)
	fileSize := int64(4 * limit)
	b.SetBytes(int64(len(buf)))
	off := int64(0)
	b.ResetTimer()
	for b.Loop() {
		if _, err := m.Write(buf, off); err != nil {
			b.Fatal(err)
		}
		off = (off + int64(len(buf))) % fileSize
	}
}
