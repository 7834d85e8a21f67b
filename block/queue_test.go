package block_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mpagefs/mpage/block"
)

// never is an unplug delay that does not fire during a test.
const never = time.Hour

// tracer records the device calls of a queue.
type tracer struct {
	mu   sync.Mutex
	reqs []block.Request
}

func (tr *tracer) record(r block.Request) {
	tr.mu.Lock()
	tr.reqs = append(tr.reqs, r)
	tr.mu.Unlock()
}

func (tr *tracer) get() []block.Request {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]block.Request(nil), tr.reqs...)
}

func newQueue(t *testing.T, dev block.Device, cfg block.Config) (*block.Queue, *tracer) {
	t.Helper()
	q := block.NewQueue(dev, cfg)
	tr := &tracer{}
	q.SetTrace(tr.record)
	t.Cleanup(func() { q.Close() })
	return q, tr
}

// limited gives a device limits of its own.
type limited struct {
	block.Device
	lim block.Limits
}

func (l limited) Limits() block.Limits { return l.lim }

// bioSpec describes a bio: op, first sector, and segment sizes in sectors.
type bioSpec struct {
	op     block.Op
	sector int64
	segs   []int
}

// fill is the content a test writes at sector s.
func fill(sector int64, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(sector + int64(i>>9)*7 + int64(i))
	}
	return b
}

// makeBio allocates spec's bio with buffers holding fill(spec.sector) for
// writes, zeros for reads. done is called from EndIO.
func makeBio(t *testing.T, q *block.Queue, spec bioSpec, done func(*block.Bio, error)) *block.Bio {
	t.Helper()
	b := q.AllocBio(spec.op, spec.sector, len(spec.segs))
	if b == nil {
		t.Fatalf("AllocBio(%d vecs) = nil", len(spec.segs))
	}
	n := 0
	for _, s := range spec.segs {
		n += s << block.SectorShift
	}
	data := make([]byte, n)
	if spec.op == block.Write {
		data = fill(spec.sector, n)
	}
	for _, s := range spec.segs {
		k := s << block.SectorShift
		if !b.AddPage(data[:k:k], nil) {
			t.Fatalf("AddPage(%d bytes) refused", k)
		}
		data = data[k:]
	}
	b.EndIO = done
	return b
}

// submitAll submits the bios and returns a WaitGroup done when all of them
// completed and the errors they completed with, by index.
func submitAll(t *testing.T, q *block.Queue, specs []bioSpec) (*sync.WaitGroup, []error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(specs))
	for i, s := range specs {
		wg.Add(1)
		q.Submit(makeBio(t, q, s, func(_ *block.Bio, err error) {
			errs[i] = err
			wg.Done()
		}))
	}
	return &wg, errs
}

func waitTimeout(t *testing.T, wg *sync.WaitGroup, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: bios did not complete within 10s", what)
	}
}

func sameRequests(got, want []block.Request) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		g := got[i]
		g.Err = nil
		if g != want[i] {
			return false
		}
	}
	return true
}

func W(sector int64, segs ...int) bioSpec { return bioSpec{block.Write, sector, segs} }
func R(sector int64, segs ...int) bioSpec { return bioSpec{block.Read, sector, segs} }

func TestQueueMerging(t *testing.T) {
	const wr, rd = block.Write, block.Read
	tests := []struct {
		name       string
		limits     block.Limits // zero: the default
		cfg        block.Config
		bios       []bioSpec
		want       []block.Request
		wantMerges int64
		overlap    bool // bios overlap: the device's final bytes are not defined
	}{
		{
			name:       "back merges",
			bios:       []bioSpec{W(0, 8), W(8, 8), W(16, 1, 7)},
			want:       []block.Request{{Op: wr, Sector: 0, Bytes: 12288, Bios: 3}},
			wantMerges: 2,
		},
		{
			name:       "front merges",
			bios:       []bioSpec{W(16, 8), W(8, 8), W(0, 8)},
			want:       []block.Request{{Op: wr, Sector: 0, Bytes: 12288, Bios: 3}},
			wantMerges: 2,
		},
		{
			name:       "read back merges",
			bios:       []bioSpec{R(64, 8), R(72, 8)},
			want:       []block.Request{{Op: rd, Sector: 64, Bytes: 8192, Bios: 2}},
			wantMerges: 1,
		},
		{
			name:       "bio filling a gap joins both neighbours",
			bios:       []bioSpec{W(0, 8), W(16, 8), W(8, 8)},
			want:       []block.Request{{Op: wr, Sector: 0, Bytes: 12288, Bios: 3}},
			wantMerges: 1,
		},
		{
			name: "no merge across op",
			bios: []bioSpec{W(0, 8), R(8, 8), W(16, 8)},
			want: []block.Request{
				{Op: wr, Sector: 0, Bytes: 4096, Bios: 1},
				{Op: rd, Sector: 8, Bytes: 4096, Bios: 1},
				{Op: wr, Sector: 16, Bytes: 4096, Bios: 1},
			},
		},
		{
			name: "no merge across a gap",
			bios: []bioSpec{W(0, 8), W(9, 8)},
			want: []block.Request{
				{Op: wr, Sector: 0, Bytes: 4096, Bios: 1},
				{Op: wr, Sector: 9, Bytes: 4096, Bios: 1},
			},
		},
		{
			name:    "no merge with an overlapping bio",
			overlap: true,
			bios:    []bioSpec{W(0, 8), W(4, 8)},
			want: []block.Request{
				{Op: wr, Sector: 0, Bytes: 4096, Bios: 1},
				{Op: wr, Sector: 4, Bytes: 4096, Bios: 1},
			},
		},
		{
			name: "MaxRequestBytes splits",
			cfg:  block.Config{MaxRequestBytes: 8192},
			bios: []bioSpec{W(0, 8), W(8, 8), W(16, 8), W(24, 4)},
			want: []block.Request{
				{Op: wr, Sector: 0, Bytes: 8192, Bios: 2},
				{Op: wr, Sector: 16, Bytes: 6144, Bios: 2},
			},
			wantMerges: 2,
		},
		{
			name:   "MaxSegments splits",
			limits: block.Limits{MaxRequestBytes: 1 << 20, MaxSegments: 3},
			bios:   []bioSpec{W(0, 1, 1), W(2, 1), W(3, 1), W(4, 1, 1)},
			want: []block.Request{
				{Op: wr, Sector: 0, Bytes: 1536, Bios: 2},
				{Op: wr, Sector: 3, Bytes: 1536, Bios: 2},
			},
			wantMerges: 2,
		},
		{
			name: "FIFO order of unmergeable requests",
			bios: []bioSpec{W(100, 8), W(0, 8), R(50, 8), W(300, 8), R(200, 8)},
			want: []block.Request{
				{Op: wr, Sector: 100, Bytes: 4096, Bios: 1},
				{Op: wr, Sector: 0, Bytes: 4096, Bios: 1},
				{Op: rd, Sector: 50, Bytes: 4096, Bios: 1},
				{Op: wr, Sector: 300, Bytes: 4096, Bios: 1},
				{Op: rd, Sector: 200, Bytes: 4096, Bios: 1},
			},
		},
		{
			name:       "merged request dispatches at its first bio's place",
			bios:       []bioSpec{W(40, 8), W(100, 8), W(48, 8), W(0, 8)},
			wantMerges: 1,
			want: []block.Request{
				{Op: wr, Sector: 40, Bytes: 8192, Bios: 2},
				{Op: wr, Sector: 100, Bytes: 4096, Bios: 1},
				{Op: wr, Sector: 0, Bytes: 4096, Bios: 1},
			},
		},
		{
			name:       "front merge keeps the place of the request's first bio",
			bios:       []bioSpec{W(100, 8), W(50, 8), W(92, 8)},
			wantMerges: 1,
			want: []block.Request{
				{Op: wr, Sector: 92, Bytes: 8192, Bios: 2},
				{Op: wr, Sector: 50, Bytes: 4096, Bios: 1},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem := block.NewMemory(1 << 20)
			var dev block.Device = mem
			if tc.limits != (block.Limits{}) {
				dev = limited{mem, tc.limits}
			}
			cfg := tc.cfg
			cfg.UnplugThreshold, cfg.UnplugDelay = 100, never
			q, tr := newQueue(t, dev, cfg)
			wg, errs := submitAll(t, q, tc.bios)
			q.Unplug()
			waitTimeout(t, wg, tc.name)
			for i, err := range errs {
				if err != nil {
					t.Errorf("bio %d: EndIO error %v, want nil", i, err)
				}
			}
			if got := tr.get(); !sameRequests(got, tc.want) {
				t.Errorf("device calls:\n got %+v\nwant %+v", got, tc.want)
			}
			st := q.Stats()
			if st.Merges != tc.wantMerges {
				t.Errorf("Stats.Merges = %d, want %d", st.Merges, tc.wantMerges)
			}
			if calls := st.ReadCalls + st.WriteCalls; calls != int64(len(tc.want)) {
				t.Errorf("Stats calls = %d, want %d", calls, len(tc.want))
			}
			for _, s := range tc.bios {
				if s.op != block.Write || tc.overlap {
					continue
				}
				n := 0
				for _, k := range s.segs {
					n += k << block.SectorShift
				}
				off := s.sector << block.SectorShift
				if got, want := mem.Bytes()[off:off+int64(n)], fill(s.sector, n); !bytes.Equal(got, want) {
					t.Errorf("write bio at sector %d: device holds other bytes", s.sector)
				}
			}
		})
	}
}

// TestQueueReadMergedIntoBuffers checks that a merged read request fills
// each bio's own buffers.
func TestQueueReadMergedIntoBuffers(t *testing.T) {
	mem := block.NewMemory(1 << 20)
	copy(mem.Bytes()[0:], fill(0, 32<<10))
	q, tr := newQueue(t, mem, block.Config{UnplugThreshold: 100, UnplugDelay: never})
	var wg sync.WaitGroup
	var bios []*block.Bio
	for _, s := range []bioSpec{R(16, 4, 4), R(0, 8), R(8, 1, 7), R(24, 16)} {
		wg.Add(1)
		b := makeBio(t, q, s, func(*block.Bio, error) { wg.Done() })
		bios = append(bios, b)
		q.Submit(b)
	}
	q.Unplug()
	waitTimeout(t, &wg, "reads")
	if got := tr.get(); len(got) != 1 || got[0].Bytes != 20480 || got[0].Bios != 4 {
		t.Fatalf("device calls %+v, want one read of 20480 bytes from 4 bios", got)
	}
	for _, b := range bios {
		var got []byte
		for _, v := range b.Vecs {
			got = append(got, v.Buf...)
		}
		off := b.Sector << block.SectorShift
		if want := mem.Bytes()[off : off+int64(len(got))]; !bytes.Equal(got, want) {
			t.Errorf("read bio at sector %d got other bytes than the device holds", b.Sector)
		}
	}
}

func TestQueueUnplugTriggers(t *testing.T) {
	tests := []struct {
		name      string
		cfg       block.Config
		before    []bioSpec // submitted first: must stay queued
		after     []bioSpec // submitted next: must unplug by themselves
		unplug    bool      // call Unplug after the second batch
		wantCalls int
	}{
		{
			name:      "threshold",
			cfg:       block.Config{UnplugThreshold: 3, UnplugDelay: never},
			before:    []bioSpec{W(0, 8), W(100, 8), W(8, 8)}, // the merge adds no request
			after:     []bioSpec{W(200, 8)},
			wantCalls: 3,
		},
		{
			name:      "timer",
			cfg:       block.Config{UnplugThreshold: 100, UnplugDelay: 5 * time.Millisecond},
			after:     []bioSpec{W(0, 8), W(100, 8)},
			wantCalls: 2,
		},
		{
			name:      "explicit Unplug",
			cfg:       block.Config{UnplugThreshold: 100, UnplugDelay: never},
			before:    []bioSpec{W(0, 8), W(100, 8)},
			unplug:    true,
			wantCalls: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, tr := newQueue(t, block.NewMemory(1<<20), tc.cfg)
			wg1, _ := submitAll(t, q, tc.before)
			time.Sleep(30 * time.Millisecond)
			if got := tr.get(); len(got) != 0 {
				t.Fatalf("device calls before the unplug trigger: %+v, want none", got)
			}
			wg2, _ := submitAll(t, q, tc.after)
			if tc.unplug {
				q.Unplug()
			}
			waitTimeout(t, wg1, "first batch")
			waitTimeout(t, wg2, "second batch")
			if got := tr.get(); len(got) != tc.wantCalls {
				t.Errorf("device calls %+v, want %d", got, tc.wantCalls)
			}
		})
	}
}

// TestQueueCompletesOffSubmitter completes bios through every path with an
// EndIO that hands off over an unbuffered channel to the submitting
// goroutine: if EndIO ran inside Submit or Unplug, the hand-off could not
// happen before they returned.
func TestQueueCompletesOffSubmitter(t *testing.T) {
	tests := []struct {
		name    string
		cfg     block.Config
		spec    bioSpec
		close   bool
		wantErr error
	}{
		{name: "explicit unplug", cfg: block.Config{UnplugThreshold: 100, UnplugDelay: never}, spec: W(0, 8)},
		{name: "threshold unplug inside Submit", cfg: block.Config{UnplugThreshold: 1, UnplugDelay: never}, spec: R(0, 8)},
		{name: "beyond the end", spec: W(2048, 8), wantErr: block.ErrOutOfRange},
		{name: "after Close", spec: W(0, 8), close: true, wantErr: block.ErrClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := block.NewQueue(block.NewMemory(1<<20), tc.cfg)
			if tc.close {
				if err := q.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
			} else {
				t.Cleanup(func() { q.Close() })
			}
			handoff := make(chan error)
			inline := make(chan struct{}, 1)
			b := makeBio(t, q, tc.spec, func(_ *block.Bio, err error) {
				select {
				case handoff <- err:
				case <-time.After(2 * time.Second):
					inline <- struct{}{} // nobody received: we are inside Submit or Unplug
				}
			})
			q.Submit(b)
			q.Unplug()
			select {
			case err := <-handoff:
				if !errors.Is(err, tc.wantErr) && err != tc.wantErr {
					t.Errorf("EndIO error %v, want %v", err, tc.wantErr)
				}
			case <-inline:
				t.Fatal("EndIO ran on the submitting goroutine")
			case <-time.After(10 * time.Second):
				t.Fatal("EndIO never ran")
			}
		})
	}
}

func TestQueueErrorReachesEveryMergedBio(t *testing.T) {
	dev := block.NewFaulty(block.NewMemory(1 << 20))
	dev.Inject(block.Fault{Op: block.Write, FromSector: 10, ToSector: 11})
	q, tr := newQueue(t, dev, block.Config{UnplugThreshold: 100, UnplugDelay: never})
	specs := []bioSpec{W(0, 8), W(8, 8), W(16, 8), W(64, 8)}
	wg, errs := submitAll(t, q, specs)
	q.Unplug()
	waitTimeout(t, wg, "writes")
	for i, err := range errs[:3] {
		if !errors.Is(err, block.ErrIO) {
			t.Errorf("bio %d of the failed request: EndIO error %v, want ErrIO", i, err)
			continue
		}
		for _, want := range []string{"write", "12288 bytes", "sector 0"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("bio %d: error %q does not name %q", i, err, want)
			}
		}
	}
	if errs[3] != nil {
		t.Errorf("bio of the other request: EndIO error %v, want nil", errs[3])
	}
	reqs := tr.get()
	if len(reqs) != 2 || reqs[0].Err == nil || reqs[1].Err != nil {
		t.Errorf("traced requests %+v, want a failed one of 3 bios then a good one", reqs)
	}
	if got := q.Stats().Errors; got != 1 {
		t.Errorf("Stats.Errors = %d, want 1", got)
	}
}

func TestQueueRejectsBadBios(t *testing.T) {
	tests := []struct {
		name  string
		build func(q *block.Queue) *block.Bio
		want  error
	}{
		{"empty", func(q *block.Queue) *block.Bio { return q.AllocBio(block.Write, 0, 1) }, block.ErrInvalid},
		{"unaligned segment", func(q *block.Queue) *block.Bio {
			b := q.AllocBio(block.Write, 0, 1)
			b.Vecs = append(b.Vecs, block.Vec{Buf: make([]byte, 700)})
			return b
		}, block.ErrInvalid},
		{"across the end", func(q *block.Queue) *block.Bio {
			b := q.AllocBio(block.Read, 2040, 1)
			b.AddPage(make([]byte, 8192), nil)
			return b
		}, block.ErrOutOfRange},
		{"negative sector", func(q *block.Queue) *block.Bio {
			b := q.AllocBio(block.Read, -8, 1)
			b.AddPage(make([]byte, 4096), nil)
			return b
		}, block.ErrOutOfRange},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, tr := newQueue(t, block.NewMemory(1<<20), block.Config{})
			if err := q.SubmitWait(tc.build(q)); !errors.Is(err, tc.want) {
				t.Errorf("SubmitWait = %v, want %v", err, tc.want)
			}
			if got := tr.get(); len(got) != 0 {
				t.Errorf("device calls %+v, want none", got)
			}
		})
	}
}

// gate is a device whose writes wait for a token each. If waiting is not
// nil, a write sends on it (when there is room) before it waits.
type gate struct {
	block.Device
	tokens  chan struct{}
	waiting chan struct{}
}

func (g *gate) WriteVecAt(bufs [][]byte, off int64) error {
	if g.waiting != nil {
		select {
		case g.waiting <- struct{}{}:
		default:
		}
	}
	<-g.tokens
	return g.Device.WriteVecAt(bufs, off)
}

func TestQueueCongestion(t *testing.T) {
	g := &gate{Device: block.NewMemory(1 << 20), tokens: make(chan struct{}, 10)}
	q, _ := newQueue(t, g, block.Config{
		UnplugThreshold: 100, UnplugDelay: never, InFlight: 1,
		CongestionOn: 3, CongestionOff: 2,
	})
	done := make(chan error, 10)
	submit := func(s bioSpec) {
		q.Submit(makeBio(t, q, s, func(_ *block.Bio, err error) { done <- err }))
	}
	check := func(step string, wantW, wantR bool) {
		t.Helper()
		if got := q.WriteCongested(); got != wantW {
			t.Errorf("%s: WriteCongested() = %v, want %v", step, got, wantW)
		}
		if got := q.ReadCongested(); got != wantR {
			t.Errorf("%s: ReadCongested() = %v, want %v", step, got, wantR)
		}
	}
	// Reads: not gated.
	submit(R(300, 8))
	submit(R(400, 8))
	check("two read requests queued", false, false)
	submit(R(500, 8))
	check("three read requests queued", false, true)
	q.Unplug()
	for range 3 {
		if err := <-done; err != nil {
			t.Fatalf("read: %v", err)
		}
	}
	check("reads completed", false, false)

	submit(W(0, 8))
	submit(W(100, 8))
	submit(W(8, 8)) // merges: still two requests
	check("two write requests queued", false, false)
	submit(W(200, 8))
	check("three write requests queued", true, false)
	q.Unplug()
	check("writes in flight", true, false)
	g.tokens <- struct{}{}
	for range 2 { // the merged request has two bios
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	check("two write requests left (not below off)", true, false)
	g.tokens <- struct{}{}
	<-done
	check("one write request left", false, false)
	g.tokens <- struct{}{}
	<-done
}

func TestQueueCongestionDefaults(t *testing.T) {
	// blk_queue_congestion_threshold() with nr_requests 16: on at 15.
	q, _ := newQueue(t, block.NewMemory(1<<20), block.Config{NrRequests: 16, UnplugThreshold: 100, UnplugDelay: never})
	var wg sync.WaitGroup
	for i := range 15 {
		if q.WriteCongested() {
			t.Fatalf("WriteCongested with %d requests queued, want false below 15", i)
		}
		wg.Add(1)
		q.Submit(makeBio(t, q, W(int64(i)*16, 8), func(*block.Bio, error) { wg.Done() }))
	}
	if !q.WriteCongested() {
		t.Errorf("WriteCongested with 15 requests queued = false, want true")
	}
	q.Unplug()
	waitTimeout(t, &wg, "writes")
	if q.WriteCongested() {
		t.Errorf("WriteCongested after all completed = true, want false")
	}
}

func TestQueueBioBudget(t *testing.T) {
	q, _ := newQueue(t, block.NewMemory(1<<20), block.Config{BioVecBudget: 8})
	a := q.AllocBio(block.Write, 0, 4)
	b := q.AllocBio(block.Write, 8, 4)
	if a == nil || b == nil {
		t.Fatalf("AllocBio within the budget returned nil")
	}
	if c := q.AllocBio(block.Write, 16, 1); c != nil {
		t.Fatalf("AllocBio past the budget = %p, want nil", c)
	}
	a.AddPage(make([]byte, 4096), nil)
	if err := q.SubmitWait(a); err != nil {
		t.Fatal(err)
	}
	if c := q.AllocBio(block.Write, 16, 4); c == nil {
		t.Errorf("AllocBio after a bio completed = nil, want a bio")
	}
	if c := q.AllocBio(block.Write, 16, 1); c != nil {
		t.Errorf("AllocBio past the budget again = %p, want nil", c)
	}
}

func TestQueueHooks(t *testing.T) {
	q, _ := newQueue(t, block.NewMemory(1<<20), block.Config{})
	q.SetAllocFault(func(n int) bool { return n > 2 })
	if b := q.AllocBio(block.Read, 0, 3); b != nil {
		t.Errorf("AllocBio(3) with a fault hook refusing > 2 = %p, want nil", b)
	}
	b := q.AllocBio(block.Read, 0, 2)
	if b == nil {
		t.Fatal("AllocBio(2) = nil, want a bio")
	}
	q.SetAddPageRefuse(func(b *block.Bio, n int) bool { return b.Size() >= 4096 })
	if !b.AddPage(make([]byte, 4096), nil) {
		t.Errorf("first AddPage refused")
	}
	if b.AddPage(make([]byte, 4096), nil) {
		t.Errorf("second AddPage accepted, want the hook to refuse it")
	}
	if b.Size() != 4096 || len(b.Vecs) != 1 {
		t.Errorf("bio after a refused AddPage: size %d, %d vecs, want 4096 and 1", b.Size(), len(b.Vecs))
	}
}

func TestQueueClose(t *testing.T) {
	mem := block.NewMemory(1 << 20)
	q := block.NewQueue(mem, block.Config{UnplugThreshold: 100, UnplugDelay: never})
	wg, errs := submitAll(t, q, []bioSpec{W(0, 8), W(64, 8)})
	if err := q.Close(); err != nil {
		t.Fatalf("Close = %v, want nil", err)
	}
	// Close drained the plugged bios before returning.
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("bio %d queued before Close: error %v, want nil", i, err)
		}
	}
	if !bytes.Equal(mem.Bytes()[64<<9:72<<9], fill(64, 4096)) {
		t.Errorf("data of a bio queued before Close is not on the device")
	}
	b := q.AllocBio(block.Write, 0, 1)
	b.AddPage(make([]byte, 512), nil)
	if err := q.SubmitWait(b); !errors.Is(err, block.ErrClosed) {
		t.Errorf("SubmitWait after Close = %v, want ErrClosed", err)
	}
	if err := q.Flush(); !errors.Is(err, block.ErrClosed) {
		t.Errorf("Flush after Close = %v, want ErrClosed", err)
	}
	if err := q.Close(); !errors.Is(err, block.ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}
	q.Wait() // must not hang
}

func TestQueueFlush(t *testing.T) {
	dev := block.NewFaulty(block.NewMemory(1 << 20))
	q, _ := newQueue(t, dev, block.Config{UnplugThreshold: 100, UnplugDelay: never})
	wg, _ := submitAll(t, q, []bioSpec{W(0, 8), W(8, 8)})
	if err := q.Flush(); err != nil {
		t.Fatalf("Flush = %v", err)
	}
	waitTimeout(t, wg, "flushed bios") // already done: Flush waited
	wg2, _ := submitAll(t, q, []bioSpec{W(100, 8)})
	q.Wait()
	waitTimeout(t, wg2, "unflushed bio")
	if got := q.Stats().Flushes; got != 1 {
		t.Errorf("Stats.Flushes = %d, want 1", got)
	}
	crashed, err := dev.Crash()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(crashed.Bytes()[:8192], append(fill(0, 4096), fill(8, 4096)...)) {
		t.Errorf("flushed writes lost in a crash")
	}
	if !bytes.Equal(crashed.Bytes()[100<<9:108<<9], make([]byte, 4096)) {
		t.Errorf("write after the last flush survived a crash")
	}
}

// TestQueueConcurrentSubmitters writes a device from many goroutines in
// interleaved stripes through a queue that stays plugged until Wait, so
// that bios of different goroutines merge, then reads it back from many
// goroutines through a second queue that plugs and unplugs all the time,
// and checks every byte.
func TestQueueConcurrentSubmitters(t *testing.T) {
	const (
		size     = 4 << 20
		writers  = 8
		stripe   = 4096
		nStripes = size / stripe
	)
	mem := block.NewMemory(size)
	q, _ := newQueue(t, mem, block.Config{InFlight: 3, MaxRequestBytes: 64 << 10, UnplugThreshold: 1 << 20, UnplugDelay: never})
	content := func(i int) []byte { return fill(int64(i)*3+1, stripe) }
	var wg sync.WaitGroup
	errc := make(chan error, nStripes)
	for w := range writers {
		wg.Go(func() {
			for i := w; i < nStripes; i += writers {
				b := q.AllocBio(block.Write, int64(i*stripe>>block.SectorShift), 2)
				buf := content(i)
				b.AddPage(buf[:1024], nil)
				b.AddPage(buf[1024:], nil)
				b.EndIO = func(_ *block.Bio, err error) {
					if err != nil {
						errc <- err
					}
				}
				q.Submit(b)
			}
		})
	}
	wg.Wait()
	q.Wait()
	close(errc)
	for err := range errc {
		t.Fatalf("write: %v", err)
	}
	st := q.Stats()
	if st.WriteBios != nStripes || st.BytesWritten != size {
		t.Errorf("Stats: %d write bios, %d bytes written, want %d and %d", st.WriteBios, st.BytesWritten, nStripes, size)
	}
	for i := range nStripes {
		if got := mem.Bytes()[i*stripe : (i+1)*stripe]; !bytes.Equal(got, content(i)) {
			t.Fatalf("stripe %d on the device differs from what was written", i)
		}
	}

	if st.Merges == 0 {
		t.Errorf("Stats.Merges = 0 after adjacent writes queued together, want merges")
	}

	// Read back through another queue, again from many goroutines.
	q, _ = newQueue(t, mem, block.Config{InFlight: 3})
	bufs := make([][]byte, nStripes)
	rerr := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			var done sync.WaitGroup
			for i := w; i < nStripes; i += writers {
				bufs[i] = make([]byte, stripe)
				b := q.AllocBio(block.Read, int64(i*stripe>>block.SectorShift), 1)
				b.AddPage(bufs[i], nil)
				done.Add(1)
				b.EndIO = func(_ *block.Bio, err error) {
					if err != nil {
						rerr <- fmt.Errorf("read of stripe %d: %w", i, err)
					}
					done.Done()
				}
				q.Submit(b)
			}
			q.Unplug()
			done.Wait()
		})
	}
	wg.Wait()
	close(rerr)
	for err := range rerr {
		t.Fatal(err)
	}
	for i := range nStripes {
		if !bytes.Equal(bufs[i], content(i)) {
			t.Fatalf("stripe %d read through the queue differs from what was written", i)
		}
	}
}
