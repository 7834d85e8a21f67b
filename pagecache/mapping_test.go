package pagecache

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

func newTestMapping(t *testing.T, cfg Config, data []byte, async bool) (*Cache, *Mapping, *memOps) {
	t.Helper()
	c := NewCache(cfg)
	o := newMemOps(t, data, async)
	m := c.NewMapping(o, 10)
	m.SetSize(int64(len(data)))
	return c, m, o
}

func indices(pages []*Page) []int64 {
	out := make([]int64, len(pages))
	for i, p := range pages {
		out[i] = p.Index
	}
	return out
}

// collectTag pages through LookupTag in batches of batch.
func collectTag(m *Mapping, start, end int64, tag Tag, batch int) []int64 {
	var out []int64
	idx := start
	for {
		pages := m.LookupTag(&idx, end, tag, batch)
		if len(pages) == 0 {
			return out
		}
		out = append(out, indices(pages)...)
	}
}

func TestLookupTagOrderAndRange(t *testing.T) {
	_, m, _ := newTestMapping(t, Config{}, nil, false)
	all := []int64{0, 1, 5, 63, 64, 65, 4095, 4096, 1 << 20, 1<<40 + 3, MaxIndex}
	pages := addPages(t, m, all...)
	dirty := []int64{1, 63, 64, 4096, 1<<40 + 3, MaxIndex}
	for _, p := range pages {
		if slices.Contains(dirty, p.Index) {
			p.SetDirty()
		}
	}
	tests := []struct {
		name       string
		start, end int64
		tag        Tag
		batch      int
		want       []int64
	}{
		{"all dirty", 0, MaxIndex, TagDirty, 16, dirty},
		{"all dirty one at a time", 0, MaxIndex, TagDirty, 1, dirty},
		{"range inside", 2, 4096, TagDirty, 2, []int64{63, 64, 4096}},
		{"range end excludes", 2, 4095, TagDirty, 16, []int64{63, 64}},
		{"start past last", MaxIndex - 1, MaxIndex, TagDirty, 4, []int64{MaxIndex}},
		{"no writeback", 0, MaxIndex, TagWriteback, 16, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := collectTag(m, tc.start, tc.end, tc.tag, tc.batch)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("range lookup", func(t *testing.T) {
		idx := int64(5)
		var got []int64
		for {
			ps := m.LookupRange(&idx, 1<<20, 3)
			if len(ps) == 0 {
				break
			}
			got = append(got, indices(ps)...)
		}
		want := []int64{5, 63, 64, 65, 4095, 4096, 1 << 20}
		if !slices.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
	if got := m.NrPages(); got != len(all) {
		t.Errorf("NrPages got %d, want %d", got, len(all))
	}
}

// TestLookupTagCyclic walks the dirty pages from the writeback index to
// the end and then from 0, as range_cyclic writeback does, and must see
// each page once.
func TestLookupTagCyclic(t *testing.T) {
	_, m, _ := newTestMapping(t, Config{}, nil, false)
	var want []int64
	for i := int64(0); i < 300; i += 3 {
		addPages(t, m, i)[0].SetDirty()
		want = append(want, i)
	}
	m.SetWritebackIndex(150)
	wbi := m.WritebackIndex()
	got := collectTag(m, wbi, MaxIndex, TagDirty, 7)
	got = append(got, collectTag(m, 0, wbi-1, TagDirty, 7)...)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("cyclic walk got %v, want %v", got, want)
	}
}

// TestTreeAgainstModel applies random inserts, deletes and tag changes to
// a mapping and compares every lookup with a map model.
func TestTreeAgainstModel(t *testing.T) {
	c, m, _ := newTestMapping(t, Config{}, nil, false)
	rng := rand.New(rand.NewPCG(1, 2))
	present := map[int64]*Page{}
	tagged := map[int64]bool{}
	pick := func() int64 {
		switch rng.IntN(3) {
		case 0:
			return rng.Int64N(200)
		case 1:
			return 1<<30 + rng.Int64N(200)
		}
		return rng.Int64N(MaxIndex)
	}
	for step := 0; step < 4000; step++ {
		i := pick()
		switch rng.IntN(4) {
		case 0, 1:
			if present[i] == nil {
				present[i] = addPages(t, m, i)[0]
			}
		case 2:
			if p := present[i]; p != nil {
				p.Lock()
				m.Remove(p)
				p.Unlock()
				delete(present, i)
				delete(tagged, i)
			}
		case 3:
			if p := present[i]; p != nil {
				p.Lock()
				if tagged[i] {
					p.ClearDirtyForIO()
					delete(tagged, i)
				} else {
					p.SetDirty()
					tagged[i] = true
				}
				p.Unlock()
			}
		}
	}
	var wantAll, wantTagged []int64
	for i := range present {
		wantAll = append(wantAll, i)
		if tagged[i] {
			wantTagged = append(wantTagged, i)
		}
	}
	slices.Sort(wantAll)
	slices.Sort(wantTagged)
	var gotAll []int64
	idx := int64(0)
	for {
		ps := m.LookupRange(&idx, MaxIndex, 10)
		if len(ps) == 0 {
			break
		}
		gotAll = append(gotAll, indices(ps)...)
	}
	if !slices.Equal(gotAll, wantAll) {
		t.Errorf("LookupRange got %d pages, want %d", len(gotAll), len(wantAll))
	}
	if got := collectTag(m, 0, MaxIndex, TagDirty, 10); !slices.Equal(got, wantTagged) {
		t.Errorf("LookupTag got %d pages, want %d", len(got), len(wantTagged))
	}
	for i, p := range present {
		if got := m.Lookup(i); got != p {
			t.Fatalf("Lookup(%d) got %p, want %p", i, got, p)
		}
		if got := m.HasTag(i, TagDirty); got != tagged[i] {
			t.Fatalf("HasTag(%d) got %v, want %v", i, got, tagged[i])
		}
	}
	if got, want := m.NrPages(), len(present); got != want {
		t.Errorf("NrPages got %d, want %d", got, want)
	}
	st := c.Stats()
	if st.Pages != int64(len(present)) || st.Dirty != int64(len(wantTagged)) {
		t.Errorf("Stats got pages %d dirty %d, want %d and %d", st.Pages, st.Dirty, len(present), len(wantTagged))
	}
	if got, want := m.Tagged(TagDirty), len(wantTagged) > 0; got != want {
		t.Errorf("Tagged got %v, want %v", got, want)
	}
}

func TestTagToWrite(t *testing.T) {
	_, m, _ := newTestMapping(t, Config{}, nil, false)
	pages := addPages(t, m, 0, 1, 2, 3, 4, 5)
	for _, p := range pages[:4] {
		p.SetDirty()
	}
	if n := m.TagToWrite(1, 4); n != 3 {
		t.Errorf("TagToWrite got %d, want 3", n)
	}
	// Dirtied after the sync began: not to be written by it.
	pages[4].SetDirty()
	if got, want := collectTag(m, 0, MaxIndex, TagToWrite, 16), []int64{1, 2, 3}; !slices.Equal(got, want) {
		t.Errorf("towrite got %v, want %v", got, want)
	}
	pages[2].Lock()
	pages[2].ClearDirtyForIO()
	pages[2].SetWriteback()
	pages[2].Unlock()
	if got, want := collectTag(m, 0, MaxIndex, TagToWrite, 16), []int64{1, 3}; !slices.Equal(got, want) {
		t.Errorf("towrite after writing page 2 got %v, want %v", got, want)
	}
	if got, want := collectTag(m, 0, MaxIndex, TagWriteback, 16), []int64{2}; !slices.Equal(got, want) {
		t.Errorf("writeback got %v, want %v", got, want)
	}
	pages[2].EndWriteback()
	if m.Tagged(TagWriteback) {
		t.Errorf("Tagged(TagWriteback) after EndWriteback got true, want false")
	}
}

func TestAddPage(t *testing.T) {
	c, m, _ := newTestMapping(t, Config{}, nil, false)
	other := c.NewMapping(newMemOps(t, nil, false), 10)

	p := m.NewPage(7)
	if err := m.AddPage(p); err != nil {
		t.Fatalf("AddPage: %v", err)
	}
	if !p.Has(Locked) || p.Mapping() != m {
		t.Fatalf("after AddPage got locked=%v mapping ok=%v, want both", p.Has(Locked), p.Mapping() == m)
	}
	p.Unlock()

	t.Run("taken index", func(t *testing.T) {
		before := c.Stats().Pages
		q := m.NewPage(7)
		if err := m.AddPage(q); !errors.Is(err, ErrExist) {
			t.Fatalf("got %v, want ErrExist", err)
		}
		if q.Has(Locked) || q.Mapping() != nil {
			t.Errorf("got locked=%v in mapping=%v, want neither", q.Has(Locked), q.Mapping() != nil)
		}
		if got := c.Stats().Pages; got != before {
			t.Errorf("Pages got %d, want %d (charge given back)", got, before)
		}
	})
	t.Run("caller locked", func(t *testing.T) {
		q := m.NewPage(8)
		q.Lock()
		if err := m.AddPage(q); err != nil {
			t.Fatalf("AddPage of a caller-locked page: %v", err)
		}
		if !q.Has(Locked) {
			t.Errorf("page got unlocked, want still locked")
		}
		q.Unlock()
	})
	t.Run("bad index", func(t *testing.T) {
		for _, i := range []int64{-1, MaxIndex + 1} {
			if err := m.AddPage(NewPage(i)); !errors.Is(err, ErrInvalid) {
				t.Errorf("index %d: got %v, want ErrInvalid", i, err)
			}
		}
	})
	t.Run("in another mapping", func(t *testing.T) {
		if err := other.AddPage(p); !errors.Is(err, ErrInvalid) {
			t.Errorf("got %v, want ErrInvalid", err)
		}
	})
	t.Run("accounting", func(t *testing.T) {
		before := c.Stats().Pages
		q := m.NewPage(100)
		if got := c.Stats().Pages; got != before+1 {
			t.Errorf("after NewPage got %d pages, want %d", got, before+1)
		}
		q.Release()
		q.Release()
		if got := c.Stats().Pages; got != before {
			t.Errorf("after Release got %d pages, want %d", got, before)
		}
		r := m.FindOrCreate(101)
		m.Remove(r)
		m.Remove(r)
		r.Unlock()
		r.Release()
		if got := c.Stats().Pages; got != before {
			t.Errorf("after Remove got %d pages, want %d", got, before)
		}
		if got := m.NrPages(); got != 2 {
			t.Errorf("NrPages got %d, want 2", got)
		}
	})
}

func TestDirtyAccounting(t *testing.T) {
	c, m, _ := newTestMapping(t, Config{}, nil, false)
	p := addPages(t, m, 3)[0]
	if !p.SetDirty() || p.SetDirty() {
		t.Fatalf("SetDirty twice got (clean, clean), want (true, false)")
	}
	if st := c.Stats(); st.Dirty != 1 {
		t.Errorf("Dirty got %d, want 1", st.Dirty)
	}
	p.Lock()
	p.ClearDirtyForIO()
	p.SetWriteback()
	p.SetWriteback() // a second set is a no-op, not a crash
	p.Unlock()
	if st := c.Stats(); st.Dirty != 0 || st.Writeback != 1 {
		t.Errorf("got dirty %d writeback %d, want 0 and 1", st.Dirty, st.Writeback)
	}
	p.EndWriteback()
	if st := c.Stats(); st.Writeback != 0 {
		t.Errorf("Writeback got %d, want 0", st.Writeback)
	}
}
