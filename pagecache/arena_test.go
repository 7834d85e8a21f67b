package pagecache

import (
	"bytes"
	"testing"
)

// TestWritesReuseFrames writes a file eight times the cache through
// Mapping.Write (the writer writes back itself, no flusher) and checks
// that the file reads back intact, that every cached page's memory is a
// frame of the cache's arena, and that no more frames are taken than
// pages are cached.
func TestWritesReuseFrames(t *testing.T) {
	const limit = 32
	c, m, _ := newTestMapping(t, Config{Limit: limit * PageSize}, nil, false)
	data := pattern(8*limit*PageSize, 9)
	for off := 0; off < len(data); off += 3*PageSize + 1000 {
		end := min(off+3*PageSize+1000, len(data))
		if n, err := m.Write(data[off:end], int64(off)); err != nil || n != end-off {
			t.Fatalf("Write at %d: %d, %v; want %d, nil", off, n, err, end-off)
		}
	}
	syncAll(t, m)
	buf := make([]byte, len(data))
	if n, err := m.Read(nil, buf, 0); err != nil || n != len(data) || !bytes.Equal(buf, data) {
		t.Fatalf("Read back: %d, %v, equal=%v; want %d, nil, true", n, err, bytes.Equal(buf, data), len(data))
	}
	st := c.Stats()
	if st.Evicted == 0 {
		t.Fatalf("Evicted got 0, want > 0 (the test wants frames to be reused)")
	}
	if got := c.arena.inUse(); got != st.Pages {
		t.Errorf("frames in use got %d, want %d (the pages charged)", got, st.Pages)
	}
	idx := int64(0)
	for _, p := range m.LookupRange(&idx, MaxIndex, 1<<20) {
		if p.arena != c.arena {
			t.Errorf("page %d: memory not from the cache's arena", p.Index)
		}
	}
}

// TestRemovedFrameIsReusedZeroed removes a page whose bytes were all
// written and checks that its Data goes, that the next page made takes
// the same frame, and that it comes zeroed.
func TestRemovedFrameIsReusedZeroed(t *testing.T) {
	c, m, _ := newTestMapping(t, Config{Limit: 16 * PageSize}, nil, false)
	p := m.NewPage(0)
	if err := m.AddPage(p); err != nil {
		t.Fatalf("AddPage: %v", err)
	}
	for i := range p.Data {
		p.Data[i] = 0xa5
	}
	frame := p.frame
	m.Remove(p)
	p.Unlock()
	if p.Data != nil {
		t.Errorf("Data of a removed page: got %d bytes, want nil", len(p.Data))
	}
	if got := c.arena.inUse(); got != 0 {
		t.Errorf("frames in use after Remove: got %d, want 0", got)
	}
	q := m.NewPage(1)
	defer q.Release()
	if q.arena != c.arena || q.frame != frame {
		t.Errorf("new page: frame %d of arena %p, want frame %d of %p", q.frame, q.arena, frame, c.arena)
	}
	if !bytes.Equal(q.Data, make([]byte, PageSize)) {
		t.Errorf("new page on a reused frame is not zeroed")
	}
}

// TestRemoveUnderWritebackKeepsFrame removes a page under writeback and
// checks that its memory stays until the writeback ends.
func TestRemoveUnderWritebackKeepsFrame(t *testing.T) {
	c, m, _ := newTestMapping(t, Config{Limit: 16 * PageSize}, nil, false)
	p := m.NewPage(0)
	if err := m.AddPage(p); err != nil {
		t.Fatalf("AddPage: %v", err)
	}
	p.SetWriteback()
	m.Remove(p)
	p.Unlock()
	if p.Data == nil || c.arena.inUse() != 1 {
		t.Fatalf("during writeback: Data nil=%v, frames in use %d; want false, 1", p.Data == nil, c.arena.inUse())
	}
	if q := m.NewPage(1); q.frame == p.frame && q.arena != nil {
		t.Errorf("a new page took the frame of a page under writeback")
	} else {
		q.Release()
	}
	p.EndWriteback()
	if p.Data != nil || c.arena.inUse() != 0 {
		t.Errorf("after writeback: Data nil=%v, frames in use %d; want true, 0", p.Data == nil, c.arena.inUse())
	}
	if p.Flags()&(Writeback|Locked) != 0 {
		t.Errorf("flags after writeback: got %b, want neither writeback nor locked", p.Flags())
	}
}

// TestPartialWritesOverReusedFramesReadZeroes dirties every frame with
// 0xff bytes, lets them be evicted, then writes small pieces into a new
// file and checks that the bytes around them read back as zeroes.
func TestPartialWritesOverReusedFramesReadZeroes(t *testing.T) {
	const limit = 16
	c, m, _ := newTestMapping(t, Config{Limit: limit * PageSize}, nil, false)
	if _, err := m.Write(bytes.Repeat([]byte{0xff}, limit*PageSize), 0); err != nil {
		t.Fatalf("Write: %v", err)
	}
	syncAll(t, m)
	m.TruncatePages(0)

	m2 := c.NewMapping(newMemOps(t, nil, false), 10)
	want := make([]byte, 3*PageSize)
	for _, w := range []struct {
		off int
		s   string
	}{{100, "hello"}, {PageSize + 7, "world"}, {2*PageSize - 3, "straddle"}} {
		if _, err := m2.Write([]byte(w.s), int64(w.off)); err != nil {
			t.Fatalf("Write at %d: %v", w.off, err)
		}
		copy(want[w.off:], w.s)
	}
	want = want[:2*PageSize+5]
	got := make([]byte, len(want)+10)
	n, err := m2.Read(nil, got, 0)
	if err != nil || n != len(want) || !bytes.Equal(got[:n], want) {
		t.Errorf("Read: %d, %v, equal=%v; want %d, nil, true", n, err, bytes.Equal(got[:n], want), len(want))
	}
}

// TestCloseThenAllocate closes a cache and checks that pages can still be
// made (from the Go heap) and that a second Close does nothing.
func TestCloseThenAllocate(t *testing.T) {
	c, m, _ := newTestMapping(t, Config{Limit: 16 * PageSize}, nil, false)
	c.Close()
	c.Close()
	p := m.NewPage(0)
	if len(p.Data) != PageSize || p.arena != nil {
		t.Errorf("page after Close: %d bytes, arena %p; want %d, nil", len(p.Data), p.arena, PageSize)
	}
	p.Release()
}
