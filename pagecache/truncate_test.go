package pagecache

import (
	"bytes"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestTruncatePages(t *testing.T) {
	data := pattern(8*PageSize, 9)
	c, m, _ := newTestMapping(t, Config{}, data, false)
	buf := make([]byte, len(data))
	if _, err := m.Read(nil, buf, 0); err != nil {
		t.Fatal(err)
	}
	type call struct {
		index  int64
		offset int
	}
	var mu sync.Mutex
	var calls []call
	m.SetInvalidatePage(func(p *Page, offset int) {
		mu.Lock()
		calls = append(calls, call{p.Index, offset})
		mu.Unlock()
		p.Private = nil
	})
	m.Lookup(2).Private = "bh"
	m.Lookup(5).Private = "bh"
	m.Lookup(6).SetDirty()

	from := int64(2*PageSize + 100)
	m.Truncate(from)

	if got, want := m.NrPages(), 3; got != want {
		t.Errorf("NrPages got %d, want %d", got, want)
	}
	if got, want := calls, []call{{5, 0}, {2, 100}}; !slices.Equal(got, want) {
		t.Errorf("invalidate calls got %v, want %v", got, want)
	}
	if st := c.Stats(); st.Dirty != 0 || st.Pages != 3 {
		t.Errorf("got dirty %d pages %d, want 0 and 3", st.Dirty, st.Pages)
	}
	p := m.Lookup(2)
	if !bytes.Equal(p.Data[:100], data[2*PageSize:2*PageSize+100]) || !bytes.Equal(p.Data[100:], make([]byte, PageSize-100)) {
		t.Errorf("partial page got not (kept head, zeroed tail), want it")
	}
	n, err := m.Read(nil, buf, 0)
	if err != nil || int64(n) != from || !bytes.Equal(buf[:n], data[:from]) {
		t.Errorf("Read after truncate got %d bytes err %v, want %d matching", n, err, from)
	}
}

func TestTruncateWaitsForWriteback(t *testing.T) {
	_, m, _ := newTestMapping(t, Config{}, nil, false)
	pages := addPages(t, m, 0, 1, 2)
	pages[2].Lock()
	pages[2].SetWriteback()
	pages[2].Unlock()
	done := make(chan struct{})
	go func() {
		m.TruncatePages(PageSize)
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("TruncatePages returned while a page was under writeback, want it to wait")
	case <-time.After(100 * time.Millisecond):
	}
	pages[2].EndWriteback()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("TruncatePages still waiting after EndWriteback")
	}
	if got := m.NrPages(); got != 1 {
		t.Errorf("NrPages got %d, want 1", got)
	}
	if pages[2].Mapping() != nil || pages[2].Uptodate() {
		t.Errorf("truncated page got mapping=%v uptodate=%v, want neither", pages[2].Mapping() != nil, pages[2].Uptodate())
	}
}

func TestInvalidateClean(t *testing.T) {
	c, m, _ := newTestMapping(t, Config{}, nil, false)
	pages := addPages(t, m, 0, 1, 2, 3, 4, 5)
	pages[1].SetDirty()
	pages[2].Lock()
	pages[3].Lock()
	pages[3].SetWriteback()
	pages[3].Unlock()
	pages[4].Private = "bh"
	pages[5].Private = "bh"
	c.SetReleasePage(func(p *Page) bool {
		if p.Index == 4 {
			return false
		}
		p.Private = nil
		return true
	})
	if n := m.InvalidateClean(); n != 2 {
		t.Errorf("InvalidateClean got %d, want 2", n)
	}
	for i, want := range []bool{false, true, true, true, true, false} {
		if got := pages[i].Mapping() != nil; got != want {
			t.Errorf("page %d in mapping got %v, want %v", i, got, want)
		}
	}
	pages[2].Unlock()
	pages[3].EndWriteback()
}
