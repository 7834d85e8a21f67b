package mpage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/buffer"
	"github.com/mpagefs/mpage/pagecache"
)

// devBlocks is the size of the test device in blocks of the file's size.
const devBlocks = 512

// pattern is the known content of device block n: 8-byte records, each
// the block number and the record's offset in the block, so that a wrong
// block or a shifted copy is told apart.
func pattern(n int64, bs int) []byte {
	b := make([]byte, bs)
	for off := 0; off < bs; off += 8 {
		binary.LittleEndian.PutUint32(b[off:], uint32(n))
		binary.LittleEndian.PutUint32(b[off+4:], uint32(off))
	}
	return b
}

// entry is one row of the scripted mapper's table.
type entry struct {
	dev      int64 // device block
	err      error // returned by the mapper for this block
	boundary bool  // BH_Boundary: mapping the next block needs I/O
	isNew    bool  // BH_New on the next mapping (then cleared)
	uptodate bool  // the mapper fills the block itself and sets Uptodate
}

// call records one call of the mapper.
type call struct {
	iblock int64
	create bool
}

// mapper is a scripted block mapper: a table from file block to device
// block, error or (absent) hole. With create a hole gets the next free
// device block, marked New, or allocErr.
type mapper struct {
	q  *block.Queue
	bs int

	mu       sync.Mutex // guards the fields below
	table    map[int64]entry
	next     int64 // next device block handed out for a hole
	allocErr error // returned instead of allocating
	calls    []call
	hook     func(iblock int64) // called before mapping, under mu
}

func (mp *mapper) get(iblock int64, bh *buffer.Head, create bool) error {
	mp.mu.Lock()
	defer mp.mu.Unlock()
	mp.calls = append(mp.calls, call{iblock, create})
	if mp.hook != nil {
		mp.hook(iblock)
	}
	e, ok := mp.table[iblock]
	if e.err != nil {
		return e.err
	}
	if !ok {
		if !create {
			return nil // a hole
		}
		if mp.allocErr != nil {
			return mp.allocErr
		}
		e = entry{dev: mp.next, isNew: true}
		mp.next++
	}
	bh.Map(mp.q, e.dev)
	if e.boundary {
		bh.Set(buffer.Boundary)
	}
	if e.isNew {
		bh.Set(buffer.New)
		e.isNew = false
	}
	if e.uptodate {
		copy(bh.Data, pattern(e.dev, mp.bs))
		bh.Set(buffer.Uptodate)
	}
	mp.table[iblock] = e
	return nil
}

// set maps file blocks from.. to device blocks dev.. .
func (mp *mapper) set(from, n, dev int64) {
	mp.mu.Lock()
	defer mp.mu.Unlock()
	for i := int64(0); i < n; i++ {
		mp.table[from+i] = entry{dev: dev + i}
	}
}

// edit changes the entry of one file block.
func (mp *mapper) edit(iblock int64, f func(e *entry)) {
	mp.mu.Lock()
	defer mp.mu.Unlock()
	e := mp.table[iblock]
	f(&e)
	mp.table[iblock] = e
}

func (mp *mapper) callList() []call {
	mp.mu.Lock()
	defer mp.mu.Unlock()
	return append([]call(nil), mp.calls...)
}

// ops are address-space operations over the scripted mapper, so that the
// mapping is complete; the tests call the mpage functions directly.
type ops struct{ mp *mapper }

func (o ops) ReadPage(p *pagecache.Page) error { return ReadPage(p, o.mp.get) }
func (o ops) ReadPages(m *pagecache.Mapping, pages []*pagecache.Page) error {
	return ReadPages(m, pages, o.mp.get)
}
func (o ops) WritePage(p *pagecache.Page, wbc *pagecache.WritebackControl) error {
	return buffer.WriteFullPage(p, o.mp.get, wbc)
}
func (o ops) WritePages(m *pagecache.Mapping, wbc *pagecache.WritebackControl) error {
	return WritePages(m, wbc, o.mp.get, o.WritePage)
}

var _ pagecache.Operations = ops{}

// faultDev wraps a device: writes touching a chosen sector fail, and
// writes can be held at a gate until released.
type faultDev struct {
	block.Device
	failSector atomic.Int64 // a write covering this sector fails; -1: none
	gate       atomic.Pointer[chan struct{}]
	entered    chan struct{} // receives once per write held at the gate
}

func (d *faultDev) WriteVecAt(bufs [][]byte, off int64) error {
	n := int64(0)
	for _, b := range bufs {
		n += int64(len(b))
	}
	if s := d.failSector.Load(); s >= 0 && s<<block.SectorShift >= off && s<<block.SectorShift < off+n {
		return fmt.Errorf("faultDev: write at %d: %w", off, block.ErrIO)
	}
	if g := d.gate.Load(); g != nil {
		d.entered <- struct{}{}
		<-*g
	}
	return d.Device.WriteVecAt(bufs, off)
}

// backing is a BackingDev whose congestion the test sets.
type backing struct{ congested atomic.Bool }

func (b *backing) WriteCongested() bool { return b.congested.Load() }

// env is one test setup: a Memory device whose blocks hold pattern(n),
// behind a queue that dispatches every bio as its own device call in
// submission order (so the trace is the bio stream), and a mapping with
// the scripted mapper.
type env struct {
	t    *testing.T
	bs   int
	bits uint
	mem  *block.Memory
	dev  *faultDev
	q    *block.Queue
	m    *pagecache.Mapping
	mp   *mapper
	bdi  *backing

	mu    sync.Mutex
	trace []block.Request
}

type envOption func(*block.Config)

func newEnv(t *testing.T, bits uint, opts ...envOption) *env {
	t.Helper()
	bs := 1 << bits
	mem := block.NewMemory(int64(devBlocks * bs))
	for n := int64(0); n < devBlocks; n++ {
		copy(mem.Bytes()[n*int64(bs):], pattern(n, bs))
	}
	dev := &faultDev{Device: mem, entered: make(chan struct{}, 16)}
	dev.failSector.Store(-1)
	// UnplugThreshold 1 and one worker: each bio is dispatched alone, in
	// submission order, so the trace is the stream of bios.
	cfg := block.Config{UnplugThreshold: 1, InFlight: 1}
	for _, o := range opts {
		o(&cfg)
	}
	q := block.NewQueue(dev, cfg)
	e := &env{t: t, bs: bs, bits: bits, mem: mem, dev: dev, q: q, bdi: &backing{}}
	q.SetTrace(func(r block.Request) {
		e.mu.Lock()
		e.trace = append(e.trace, r)
		e.mu.Unlock()
	})
	e.mp = &mapper{q: q, bs: bs, table: map[int64]entry{}, next: devBlocks / 2}
	e.m = pagecache.NewCache(pagecache.Config{}).NewMapping(ops{e.mp}, bits)
	e.m.SetBacking(e.bdi)
	t.Cleanup(func() {
		if g := dev.gate.Load(); g != nil {
			close(*g)
		}
		q.Close()
	})
	return e
}

// bpp is the number of blocks per page.
func (e *env) bpp() int64 { return pagecache.PageSize / int64(e.bs) }

// newPages makes unlocked pages for indexes, not in the cache.
func (e *env) newPages(indexes ...int64) []*pagecache.Page {
	var ps []*pagecache.Page
	for _, i := range indexes {
		ps = append(ps, e.m.NewPage(i))
	}
	return ps
}

// dirtyPage puts an uptodate dirty page at index holding data.
func (e *env) dirtyPage(index int64, data []byte) *pagecache.Page {
	e.t.Helper()
	p := e.m.FindOrCreate(index)
	copy(p.Data, data)
	p.SetUptodate()
	p.SetDirty()
	p.Unlock()
	return p
}

// fill is a page of one repeated byte.
func fill(c byte) []byte { return bytes.Repeat([]byte{c}, pagecache.PageSize) }

// req is a wanted device call: op on n blocks from device block dev.
func (e *env) req(op block.Op, dev int64, nBytes int) block.Request {
	return block.Request{Op: op, Sector: dev * int64(e.bs) >> block.SectorShift, Bytes: nBytes}
}

// rd and wr are wanted calls of whole blocks.
func (e *env) rd(dev, n int64) block.Request { return e.req(block.Read, dev, int(n)*e.bs) }
func (e *env) wr(dev, n int64) block.Request { return e.req(block.Write, dev, int(n)*e.bs) }

// waitIO waits until every submitted bio has completed.
func (e *env) waitIO() { e.q.Wait() }

// checkTrace waits for the I/O and compares the device calls with want,
// in order.
func (e *env) checkTrace(want ...block.Request) {
	e.t.Helper()
	e.waitIO()
	e.mu.Lock()
	got := make([]string, len(e.trace))
	for i, r := range e.trace {
		got[i] = fmt.Sprintf("%s sector %d, %d bytes", r.Op, r.Sector, r.Bytes)
	}
	e.mu.Unlock()
	w := make([]string, len(want))
	for i, r := range want {
		w[i] = fmt.Sprintf("%s sector %d, %d bytes", r.Op, r.Sector, r.Bytes)
	}
	if fmt.Sprint(got) != fmt.Sprint(w) {
		e.t.Errorf("device calls:\n got  %q\n want %q", got, w)
	}
}

// resetTrace forgets the device calls so far.
func (e *env) resetTrace() {
	e.waitIO()
	e.mu.Lock()
	e.trace = nil
	e.mu.Unlock()
}

// devBlock returns the device's bytes of block n.
func (e *env) devBlock(n int64) []byte {
	return e.mem.Bytes()[n*int64(e.bs) : (n+1)*int64(e.bs)]
}

// wantPage checks a page after its read: unlocked, the flags in want set,
// those in not clear, and its data equal to data.
func wantPage(t *testing.T, p *pagecache.Page, want, not pagecache.Flags, data []byte) {
	t.Helper()
	p.WaitUnlocked()
	if !p.Has(want) {
		t.Errorf("page %d: flags %b, want %b set", p.Index, p.Flags(), want)
	}
	if p.Flags()&not != 0 {
		t.Errorf("page %d: flags %b, want %b clear", p.Index, p.Flags(), not)
	}
	if data != nil && !bytes.Equal(p.Data, data) {
		t.Errorf("page %d: data differs from the expected at byte %d", p.Index, firstDiff(p.Data, data))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// pageOf builds the expected contents of a page from per-block device
// numbers; -1 is a zeroed block.
func (e *env) pageOf(devs ...int64) []byte {
	var b []byte
	for _, d := range devs {
		if d < 0 {
			b = append(b, make([]byte, e.bs)...)
		} else {
			b = append(b, pattern(d, e.bs)...)
		}
	}
	return b
}

// run returns devs[0]..devs[0]+n-1.
func run(dev, n int64) []int64 {
	r := make([]int64, n)
	for i := range r {
		r[i] = dev + int64(i)
	}
	return r
}

// mappingErr returns the error recorded on the mapping since it was
// made, if the page cache can report it.
func mappingErr(t *testing.T, m *pagecache.Mapping) (error, bool) {
	t.Helper()
	type checker interface{ CheckErrors() error }
	c, ok := any(m).(checker)
	if !ok {
		return nil, false
	}
	return c.CheckErrors(), true
}

var errMapper = errors.New("mapper: injected failure")

var blockSizes = []struct {
	name string
	bits uint
}{{"1KiB", 10}, {"2KiB", 11}, {"4KiB", 12}}
