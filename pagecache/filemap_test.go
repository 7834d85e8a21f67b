package pagecache

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
)

// TestReadWriteRoundTrip writes and reads random ranges, compares every
// read with a []byte model, then syncs and compares the disk.
func TestReadWriteRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		limit int64 // pages
		async bool
	}{
		{"roomy cache", 4096, false},
		{"roomy cache async I/O", 4096, true},
		{"small cache evicts", 32, false},
		{"small cache async I/O", 32, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			initial := pattern(37*PageSize+123, 4)
			_, m, o := newTestMapping(t, Config{Limit: tc.limit * PageSize}, initial, tc.async)
			model := append([]byte(nil), initial...)
			rng := rand.New(rand.NewPCG(7, uint64(tc.limit)))
			ra := NewReadaheadState(0)
			for step := range 400 {
				off := rng.Int64N(int64(len(model)) + 3*PageSize)
				n := 1 + rng.IntN(3*PageSize)
				if rng.IntN(2) == 0 {
					b := pattern(n, byte(step))
					got, err := m.Write(b, off)
					if err != nil || got != n {
						t.Fatalf("step %d: Write(%d bytes at %d) got %d, %v", step, n, off, got, err)
					}
					if end := off + int64(n); end > int64(len(model)) {
						model = append(model, make([]byte, end-int64(len(model)))...)
					}
					copy(model[off:], b)
					continue
				}
				buf := make([]byte, n)
				got, err := m.Read(ra, buf, off)
				if err != nil {
					t.Fatalf("step %d: Read at %d: %v", step, off, err)
				}
				want := 0
				if off < int64(len(model)) {
					want = min(n, len(model)-int(off))
				}
				if got != want {
					t.Fatalf("step %d: Read(%d at %d) got %d bytes, want %d (size %d)", step, n, off, got, want, m.Size())
				}
				if got > 0 && !bytes.Equal(buf[:got], model[off:off+int64(got)]) {
					t.Fatalf("step %d: Read(%d at %d) got bytes that differ from the model", step, n, off)
				}
			}
			if got := m.Size(); got != int64(len(model)) {
				t.Errorf("Size got %d, want %d", got, len(model))
			}
			syncAll(t, m)
			o.wg.Wait()
			disk := o.disk()
			if len(disk) < len(model) || !bytes.Equal(disk[:len(model)], model) {
				t.Errorf("disk after sync differs from the model (len %d, want >= %d)", len(disk), len(model))
			}
		})
	}
}

// errBeginner refuses blocks from one page on, as a full filesystem does.
type errBeginner struct {
	*memOps
	failFrom int64
	calls    atomic.Int32
}

func (e *errBeginner) WriteBegin(p *Page, from, to int) error {
	e.calls.Add(1)
	if !p.Has(Locked) {
		return errors.New("WriteBegin called with the page unlocked")
	}
	if p.Index >= e.failFrom {
		return fmt.Errorf("ext2: block for page %d: %w", p.Index, ErrNoSpace)
	}
	return nil
}

func TestWriteBeginNoSpace(t *testing.T) {
	c := NewCache(Config{})
	ops := &errBeginner{memOps: newMemOps(t, nil, false), failFrom: 3}
	m := c.NewMapping(ops, 10)
	buf := pattern(5*PageSize, 2)
	n, err := m.Write(buf[100:], 100)
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Write err got %v, want ErrNoSpace", err)
	}
	if want := 3*PageSize - 100; n != want {
		t.Errorf("Write got %d bytes, want %d", n, want)
	}
	if got, want := m.Size(), int64(3*PageSize); got != want {
		t.Errorf("Size got %d, want %d", got, want)
	}
	if got := c.Stats().Dirty; got != 3 {
		t.Errorf("dirty pages got %d, want 3", got)
	}
	if p := m.Lookup(3); p != nil && (p.Has(Locked) || p.Has(Dirty)) {
		t.Errorf("refused page got locked=%v dirty=%v, want neither", p.Has(Locked), p.Has(Dirty))
	}
}

func TestReadIOError(t *testing.T) {
	_, m, o := newTestMapping(t, Config{}, pattern(10*PageSize, 1), false)
	o.failRead = map[int64]bool{6: true}
	buf := make([]byte, 10*PageSize)
	n, err := m.Read(NewReadaheadState(-1), buf, 0)
	var pe *PageError
	if !errors.As(err, &pe) || !errors.Is(err, ErrIO) || pe.Index != 6 {
		t.Fatalf("Read err got %v, want a PageError for page 6 wrapping ErrIO", err)
	}
	if n != 6*PageSize {
		t.Errorf("Read got %d bytes, want %d", n, 6*PageSize)
	}
}

// TestPartialWriteReadsPage writes a few bytes into an uncached page of a
// file: the rest of the page must come from disk, not be zeroed.
func TestPartialWriteReadsPage(t *testing.T) {
	data := pattern(3*PageSize, 5)
	_, m, o := newTestMapping(t, Config{}, data, false)
	if _, err := m.Write([]byte("hello"), PageSize+10); err != nil {
		t.Fatal(err)
	}
	copy(data[PageSize+10:], "hello")
	buf := make([]byte, len(data))
	if _, err := m.Read(nil, buf, 0); err != nil || !bytes.Equal(buf, data) {
		t.Errorf("Read after partial write: err %v, equal %v, want nil and true", err, bytes.Equal(buf, data))
	}
	if got := o.readPageCalls.Load(); got != 1 {
		t.Errorf("ReadPage calls got %d, want 1", got)
	}
}

// TestConcurrentReadWriteTruncate runs writers on their own ranges,
// readers over the whole file, a flusher, and a truncator cutting pages
// past the writers' ranges, on one mapping with a small cache. No write
// below the truncation point may be lost; bytes past it are either what
// the tail writer wrote or zero.
func TestConcurrentReadWriteTruncate(t *testing.T) {
	const (
		writers      = 3
		regionPages  = 12
		tailStart    = writers * regionPages * PageSize
		tailPages    = 8
		rounds       = 60
		limitPages   = 48
		readersCount = 2
	)
	c, m, o := newTestMapping(t, Config{Limit: limitPages * PageSize}, nil, true)
	m.SetSize(tailStart + tailPages*PageSize)
	model := make([]byte, tailStart)
	var wg sync.WaitGroup
	var stop atomic.Bool
	errs := make(chan error, 100)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			base := int64(w * regionPages * PageSize)
			for r := range rounds {
				off := rng.Int64N(regionPages*PageSize - 1)
				n := 1 + rng.IntN(int(regionPages*PageSize-off))
				n = min(n, 2*PageSize)
				b := pattern(n, byte(r+w*64))
				if _, err := m.Write(b, base+off); err != nil {
					errs <- err
					return
				}
				copy(model[base+off:], b) // each writer owns its region of the model
			}
		}()
	}
	tailByte := func(pos int64) byte { return byte(pos%251) | 1 }
	var bg sync.WaitGroup
	bg.Add(1)
	go func() { // tail writer
		defer bg.Done()
		for !stop.Load() {
			b := make([]byte, PageSize)
			off := int64(tailStart + rand.IntN(tailPages)*PageSize)
			for i := range b {
				b[i] = tailByte(off + int64(i))
			}
			if _, err := m.Write(b, off); err != nil {
				errs <- err
				return
			}
		}
	}()
	bg.Add(1)
	go func() { // truncator
		defer bg.Done()
		for !stop.Load() {
			m.TruncatePages(tailStart)
		}
	}()
	bg.Add(1)
	go func() { // flusher
		defer bg.Done()
		for !stop.Load() {
			o.WritePages(m, &WritebackControl{SyncMode: SyncNone, NrToWrite: 16})
		}
	}()
	for range readersCount {
		bg.Add(1)
		go func() {
			defer bg.Done()
			ra := NewReadaheadState(0)
			buf := make([]byte, 5*PageSize)
			for !stop.Load() {
				off := rand.Int64N(tailStart + tailPages*PageSize)
				n, err := m.Read(ra, buf, off)
				if err != nil {
					errs <- err
					return
				}
				for i := 0; i < n; i++ {
					if pos := off + int64(i); pos >= tailStart && buf[i] != 0 && buf[i] != tailByte(pos) {
						errs <- fmt.Errorf("tail byte at %d got %#x, want 0 or %#x", pos, buf[i], tailByte(pos))
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	stop.Store(true)
	bg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got := make([]byte, tailStart)
	if n, err := m.Read(nil, got, 0); err != nil || n != tailStart {
		t.Fatalf("final Read got %d, %v", n, err)
	}
	if !bytes.Equal(got, model) {
		t.Errorf("final contents differ from the model: a write was lost")
	}
	syncAll(t, m)
	o.wg.Wait()
	if disk := o.disk(); !bytes.Equal(disk[:tailStart], model) {
		t.Errorf("disk differs from the model after sync")
	}
	if st := c.Stats(); st.PeakPages > limitPages {
		t.Errorf("PeakPages got %d, want <= %d", st.PeakPages, limitPages)
	}
}

// BenchmarkReadSequential reads a cached-then-evicted 8 MiB file through a
// 2 MiB cache in 64 KiB reads.
func BenchmarkReadSequential(b *testing.B) {
	data := pattern(8<<20, 1)
	c := NewCache(Config{Limit: 2 << 20})
	o := &memOps{data: data}
	m := c.NewMapping(o, 10)
	m.SetSize(int64(len(data)))
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		ra := NewReadaheadState(0)
		for off := int64(0); off < int64(len(data)); off += int64(len(buf)) {
			if _, err := m.Read(ra, buf, off); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkLookupTag finds 64 dirty pages spread among 65536 clean ones.
func BenchmarkLookupTag(b *testing.B) {
	c := NewCache(Config{})
	m := c.NewMapping(&memOps{}, 10)
	for i := int64(0); i < 1<<16; i++ {
		p := m.FindOrCreate(i)
		if i%1024 == 0 {
			p.SetDirty()
		}
		p.Unlock()
	}
	for b.Loop() {
		idx := int64(0)
		n := 0
		for {
			pages := m.LookupTag(&idx, MaxIndex, TagDirty, 16)
			if len(pages) == 0 {
				break
			}
			n += len(pages)
		}
		if n != 64 {
			b.Fatalf("got %d dirty pages, want 64", n)
		}
	}
}
