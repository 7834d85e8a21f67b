package pagecache

import (
	"bytes"
	"slices"
	"testing"
)

func TestRASizes(t *testing.T) {
	tests := []struct {
		name           string
		req, max, want int
		next           bool
	}{
		{"init 1 page", 1, 128, 4, false},
		{"init 3 pages", 3, 128, 16, false},
		{"init 8 pages", 8, 128, 16, false},
		{"init 32 pages", 32, 128, 64, false},
		{"init 33 pages", 33, 128, 128, false},
		{"next small x4", 4, 128, 16, true},
		{"next mid x2", 16, 128, 32, true},
		{"next half x2", 64, 128, 128, true},
		{"next capped", 128, 128, 128, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := initRASize
			if tc.next {
				f = nextRASize
			}
			if got := f(tc.req, tc.max); got != tc.want {
				t.Errorf("got %d, want %d", got, tc.want)
			}
		})
	}
}

// TestReadaheadSequentialRamp reads a file page by page and checks that
// the windows ReadPages gets grow as Linux's on-demand readahead grows
// them: 4, then x4 while small, then x2, up to the maximum. The marker of
// the first full window then pipelines the stream (see ondemandLocked):
// a short window up to the next multiple of the maximum, and full windows
// from there.
func TestReadaheadSequentialRamp(t *testing.T) {
	tests := []struct {
		name    string
		max     int
		reqSize int // bytes per read
		want    []int
	}{
		{"max 128, page reads", 128, PageSize, []int{4, 16, 32, 64, 128, 12, 128, 128}},
		{"max 512, page reads", 512, PageSize, []int{4, 16, 64, 128, 256, 512, 44, 512}},
		{"max 128, 16-page reads", 128, 16 * PageSize, []int{32, 64, 128, 32, 128, 128}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const pages = 2000
			_, m, o := newTestMapping(t, Config{MaxReadahead: tc.max}, pattern(pages*PageSize, 1), false)
			ra := NewReadaheadState(0)
			buf := make([]byte, tc.reqSize)
			for off := int64(0); off < pages*PageSize; off += int64(len(buf)) {
				if _, err := m.Read(ra, buf, off); err != nil {
					t.Fatal(err)
				}
			}
			got := o.readBatches()
			if len(got) < len(tc.want) || !slices.Equal(got[:len(tc.want)], tc.want) {
				t.Errorf("ReadPages batches got %v, want prefix %v", got, tc.want)
			}
			total := 0
			for _, n := range got {
				total += n
			}
			if total != pages {
				t.Errorf("pages read ahead got %d, want %d (each once)", total, pages)
			}
			if n := o.readPageCalls.Load(); n != 0 {
				t.Errorf("single-page reads got %d, want 0", n)
			}
		})
	}
}

func TestReadaheadMarker(t *testing.T) {
	_, m, o := newTestMapping(t, Config{}, pattern(100*PageSize, 1), false)
	ra := NewReadaheadState(0)
	m.PageCacheSyncReadahead(ra, 0, 1)
	w := ra.Window()
	if w.Start != 0 || w.Size != 4 || w.AsyncSize != 3 {
		t.Errorf("window got %+v, want start 0 size 4 async 3", w)
	}
	for i := int64(0); i < 4; i++ {
		p := m.Lookup(i)
		if p == nil {
			t.Fatalf("page %d not read ahead", i)
		}
		if got, want := p.Has(Readahead), i == 1; got != want {
			t.Errorf("page %d marker got %v, want %v", i, got, want)
		}
	}
	m.PageCacheAsyncReadahead(ra, m.Lookup(1), 1, 1)
	w = ra.Window()
	if w.Start != 4 || w.Size != 16 || w.AsyncSize != 16 {
		t.Errorf("window after marker got %+v, want start 4 size 16 async 16", w)
	}
	if !m.Lookup(4).Has(Readahead) || m.Lookup(1).Has(Readahead) {
		t.Errorf("got marker on page 4=%v, on page 1=%v, want true and false", m.Lookup(4).Has(Readahead), m.Lookup(1).Has(Readahead))
	}
	if got, want := o.readBatches(), []int{4, 16}; !slices.Equal(got, want) {
		t.Errorf("batches got %v, want %v", got, want)
	}
}

// TestReadaheadRandom reads single pages at scattered places: no window
// opens, and only the pages asked for are read.
func TestReadaheadRandom(t *testing.T) {
	_, m, o := newTestMapping(t, Config{}, pattern(1000*PageSize, 1), false)
	ra := NewReadaheadState(0)
	buf := make([]byte, 100)
	at := []int64{500, 100, 300, 7, 250, 900, 42}
	for _, i := range at {
		if _, err := m.Read(ra, buf, i*PageSize+10); err != nil {
			t.Fatal(err)
		}
	}
	if w := ra.Window(); w.Size != 0 {
		t.Errorf("window got %+v, want size 0", w)
	}
	if got := m.NrPages(); got != len(at) {
		t.Errorf("NrPages got %d, want %d", got, len(at))
	}
	for _, n := range o.readBatches() {
		if n != 1 {
			t.Errorf("batches got %v, want all 1", o.readBatches())
			break
		}
	}
}

func TestReadaheadOff(t *testing.T) {
	_, m, o := newTestMapping(t, Config{}, pattern(20*PageSize, 1), false)
	ra := NewReadaheadState(-1)
	buf := make([]byte, 20*PageSize)
	if n, err := m.Read(ra, buf, 0); err != nil || n != len(buf) {
		t.Fatalf("Read got %d, %v, want %d, nil", n, err, len(buf))
	}
	if got := len(o.readBatches()); got != 0 {
		t.Errorf("ReadPages calls got %d, want 0", got)
	}
	if got := o.readPageCalls.Load(); got != 20 {
		t.Errorf("ReadPage calls got %d, want 20", got)
	}
}

func TestReadaheadStopsAtEOF(t *testing.T) {
	_, m, o := newTestMapping(t, Config{}, pattern(2*PageSize+1, 1), false)
	buf := make([]byte, 10)
	if _, err := m.Read(nil, buf, 0); err != nil {
		t.Fatal(err)
	}
	if got, want := o.readBatches(), []int{3}; !slices.Equal(got, want) {
		t.Errorf("batches got %v, want %v", got, want)
	}
}

// TestDefaultMaxReadahead checks the default window (1024 pages, one full
// request of a block.File) and its cap at a quarter of the cache.
func TestDefaultMaxReadahead(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		want  int
		ramp  []int // ReadPages batches of a cold read in 256-page reads
		pages int
	}{
		// From the third window on, the stream is pipelined: two windows
		// at once, the first ending at a multiple of 1024 pages.
		{"default cache", Config{}, 1024, []int{512, 1024, 512, 1024, 1024}, 5000},
		{"16 MiB cache", Config{Limit: 16 << 20}, 1024, []int{512, 1024, 1024}, 3000},
		{"1 MiB cache", Config{Limit: 1 << 20}, 64, []int{64, 64, 64}, 300},
		{"asked 4096, capped", Config{MaxReadahead: 4096}, MaxReadaheadLimit, nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, m, o := newTestMapping(t, tc.cfg, pattern(max(tc.pages, 1)*PageSize, 1), false)
			if got := c.MaxReadahead(); got != tc.want {
				t.Errorf("MaxReadahead got %d, want %d", got, tc.want)
			}
			if tc.ramp == nil {
				return
			}
			ra := NewReadaheadState(0)
			buf := make([]byte, 256*PageSize)
			for off := int64(0); off < int64(tc.pages)*PageSize; off += int64(len(buf)) {
				if _, err := m.Read(ra, buf, off); err != nil {
					t.Fatal(err)
				}
			}
			got := o.readBatches()
			if len(got) < len(tc.ramp) || !slices.Equal(got[:len(tc.ramp)], tc.ramp) {
				t.Errorf("ReadPages batches got %v, want prefix %v", got, tc.ramp)
			}
		})
	}
}

// TestReadaheadPipelined reads a file sequentially and checks, after each
// read, how far beyond the page just read the cache holds pages (read or
// being read). Once the stream runs at the full window with a cache large
// enough for three windows in half of it, the reader finds the two windows
// after its current one already requested, and windows end on multiples
// of the largest window; with a smaller cache it finds one, as in Linux.
// Either way no page is read twice or alone, and the bytes are the file's.
func TestReadaheadPipelined(t *testing.T) {
	const max = 64
	tests := []struct {
		name      string
		cfg       Config
		reqPages  int
		pipelined bool
	}{
		{"pipelined, 12-page reads", Config{MaxReadahead: max}, 12, true},
		{"pipelined, 1-page reads", Config{MaxReadahead: max}, 1, true},
		{"pipelined, 100-page reads", Config{MaxReadahead: max}, 100, true},
		{"1 MiB cache, 12-page reads", Config{Limit: 1 << 20}, 12, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const pages = 1500
			data := pattern(pages*PageSize, 3)
			c, m, o := newTestMapping(t, tc.cfg, data, false)
			if got := c.MaxReadahead(); got != max {
				t.Fatalf("MaxReadahead got %d, want %d", got, max)
			}
			ra := NewReadaheadState(0)
			buf := make([]byte, tc.reqPages*PageSize)
			for off := int64(0); off < pages*PageSize; off += int64(len(buf)) {
				n, err := m.Read(ra, buf, off)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
					t.Fatalf("Read at page %d: bytes differ from the file's", off>>PageShift)
				}
				last := (off + int64(n) - 1) >> PageShift // last page read
				hi := last + 1                            // first page not cached
				for hi < pages && m.lookup(hi) != nil {
					hi++
				}
				if last < 4*max || hi == pages {
					continue // ramping up, or at end of file
				}
				windowEnd := (last/max + 1) * max
				if tc.pipelined {
					if hi < windowEnd+2*max || hi%max != 0 {
						t.Fatalf("after reading page %d: pages cached up to %d, want a multiple of %d, at least %d", last, hi, max, windowEnd+2*max)
					}
				}
				if limit := last + 1 + int64(max)*map[bool]int64{true: 3, false: 2}[tc.pipelined]; hi > limit {
					t.Fatalf("after reading page %d: pages cached up to %d, want at most %d", last, hi, limit)
				}
			}
			total := 0
			for _, n := range o.readBatches() {
				total += n
			}
			if total != pages {
				t.Errorf("pages read ahead got %d, want %d (each once)", total, pages)
			}
			if n := o.readPageCalls.Load(); n != 0 {
				t.Errorf("single-page reads got %d, want 0", n)
			}
		})
	}
}
