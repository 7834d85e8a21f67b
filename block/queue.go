package block

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Config tunes a request queue. Zero values take the defaults.
type Config struct {
	// MaxRequestBytes caps one merged device request (max_sectors); at
	// most the device's own limit. Default: the device's limit.
	MaxRequestBytes int
	// UnplugThreshold is the number of queued requests that unplugs the
	// queue by itself (q->unplug_thresh, 4 in Linux).
	UnplugThreshold int
	// UnplugDelay is the plug timer (q->unplug_delay, 3 ms in Linux).
	// Default: 1 ms.
	UnplugDelay time.Duration
	// InFlight bounds the device calls in progress at once. Default: 4.
	InFlight int
	// BioVecBudget bounds the vector slots of bios allocated and not yet
	// completed, a stand-in for the bio mempool: AllocBio fails past it.
	// Zero means unlimited.
	BioVecBudget int

	// NrRequests is the size of the request pool per direction
	// (q->nr_requests, BLKDEV_MAX_RQ = 128). It only sets the default
	// congestion thresholds: submitters are never put to sleep.
	NrRequests int
	// CongestionOn is the number of queued plus in-flight requests of one
	// direction at which that direction becomes congested
	// (q->nr_congestion_on). Default: derived from NrRequests as
	// blk_queue_congestion_threshold() does (113 of 128).
	CongestionOn int
	// CongestionOff is the number of requests below which a congested
	// direction is no longer congested (q->nr_congestion_off). Default:
	// derived from NrRequests (103 of 128). At most CongestionOn.
	CongestionOff int

	// PlugRequests is the number of queued requests that unplugs the
	// queue by itself while a Plug is held, in place of
	// UnplugThreshold. Default: DefaultPlugRequests, at most
	// CongestionOn-1 so that a held plug alone never congests the queue.
	PlugRequests int
	// PlugBytes is the number of queued bytes that unplugs the queue by
	// itself while a Plug is held. Default: DefaultPlugBytes.
	PlugBytes int
	// PlugDelay is the plug timer while a Plug is held, in place of
	// UnplugDelay: the longest a queued request waits for the holder
	// (the 3 ms unplug_delay of 2.6.12). Default: DefaultPlugDelay.
	PlugDelay time.Duration
}

// Request describes one device call, for tracing.
type Request struct {
	Op     Op
	Sector int64
	Bytes  int
	Bios   int   // bios merged into this call
	Err    error // the device call's error, wrapped as EndIO sees it
}

// Stats are the counters of a queue. Every tool prints these.
type Stats struct {
	ReadBios, WriteBios     int64 // bios submitted
	ReadPages, WritePages   int64 // vector segments submitted
	Merges                  int64 // bios merged into an existing request
	ReadCalls, WriteCalls   int64 // device calls
	BytesRead, BytesWritten int64
	LargestRequest          int64 // bytes in the largest device call
	Flushes                 int64
	Errors                  int64 // failed device calls and rejected bios
	PolledCalls             int64 // device calls made by the submitter of a Polled bio
}

// request is one device call in the making (struct request): a run of
// contiguous sectors built from one or more bios, in sector order.
type request struct {
	op     Op
	sector int64 // first sector
	bytes  int
	segs   int
	bios   []*Bio
	seq    uint64 // FIFO position: submission number of its first bio
	dseq   uint64 // dispatch number, given when a worker takes it
	polled bool   // issued by the submitter of its Polled bio
}

func (rq *request) endSector() int64 { return rq.sector + int64(rq.bytes>>SectorShift) }

// requests holds requests whose device call and completions are over, for
// Submit (the request free list of ll_rw_blk.c's get_request and
// blk_put_request).
var requests sync.Pool

// newRequest returns an empty request, whose bios slice may have room.
func newRequest() *request {
	if rq, ok := requests.Get().(*request); ok {
		return rq
	}
	return new(request)
}

// freeRequest returns rq to the free list once nothing refers to it: its
// call is over, its bios completed, and it is on no list of the queue.
func freeRequest(rq *request) {
	clear(rq.bios)
	*rq = request{bios: rq.bios[:0]}
	requests.Put(rq)
}

// Queue is the request queue of one device (struct request_queue). Bios are
// submitted to it; it merges adjacent bios into device requests while
// plugged and dispatches them to the device.
//
// The elevator is Linux's noop elevator (drivers/block/noop-iosched.c):
// requests dispatch first in, first out, and a bio merges into a queued
// request it is sector-adjacent to. Dispatched requests are taken by up to
// Config.InFlight worker goroutines, each request being one device call;
// bios complete on those workers. A Polled bio on an idle queue is the
// exception: its submitter makes the call and completes it (see Submit).
type Queue struct {
	// Never change after NewQueue.
	dev    Device
	limits Limits
	cfg    Config
	devEnd int64 // device size in sectors

	// Test hooks, set before use and never changed after.
	refuse    func(b *Bio, n int) bool
	allocFail func(nrVecs int) bool
	trace     func(Request)

	// nrPending mirrors len(pending) so that Unplug can test for an empty
	// queue without the lock (elv_queue_empty). Written under mu.
	nrPending atomic.Int64
	// congested mirrors the congestion state per Op (the BDI_write_congested
	// and BDI_read_congested bits). Written under mu.
	congested [2]atomic.Bool

	mu        sync.Mutex // guards the fields below
	stats     Stats
	closed    bool
	vecsOut   int        // vector slots allocated and not completed
	pending   []*request // plugged requests, in FIFO order (the elevator queue)
	lastMerge *request   // q->last_merge: the request merged into last
	plugGen   uint64     // bumped at every unplug; a stale timer sees a different value
	timer     *time.Timer
	dispatch  []*request // unplugged, waiting for a worker (q->queue_head)
	workers   int        // worker goroutines running, idle ones included
	idleWork  int        // workers waiting on work for a request
	work      *sync.Cond // on mu: dispatch grew, or the queue closed
	nrRq      [2]int     // queued plus in-flight requests per Op (rl->count)
	seq       uint64     // bios submitted, numbering FIFO positions
	dseqNext  uint64     // next dispatch number to give out
	traceNext uint64     // dispatch number whose trace is due next
	turn      *sync.Cond // on mu: traceNext changed
	inflight  int        // bios submitted and not completed
	idle      *sync.Cond // on mu: inflight dropped to zero
	waiters   int        // goroutines in Wait; while any, Submit does not plug
	plugs     int        // Plugs held (StartPlug not yet Finished)
	queued    int        // bytes in pending
	running   int        // device calls running on workers
	polling   int        // device calls running on the submitters of Polled bios
}

// NewQueue makes the request queue of dev (blk_init_queue).
func NewQueue(dev Device, cfg Config) *Queue {
	lim := DefaultLimits
	if l, ok := dev.(Limiter); ok {
		lim = l.Limits()
	}
	if lim.MaxRequestBytes < SectorSize {
		lim.MaxRequestBytes = DefaultLimits.MaxRequestBytes
	}
	if lim.MaxSegments < 1 {
		lim.MaxSegments = DefaultLimits.MaxSegments
	}
	if cfg.MaxRequestBytes > 0 && cfg.MaxRequestBytes < lim.MaxRequestBytes {
		lim.MaxRequestBytes = cfg.MaxRequestBytes
	}
	if cfg.UnplugThreshold <= 0 {
		cfg.UnplugThreshold = 4
	}
	if cfg.UnplugDelay <= 0 {
		cfg.UnplugDelay = time.Millisecond
	}
	if cfg.InFlight <= 0 {
		cfg.InFlight = 4
	}
	if cfg.NrRequests <= 0 {
		cfg.NrRequests = 128
	}
	// blk_queue_congestion_threshold().
	if cfg.CongestionOn <= 0 {
		n := cfg.NrRequests - cfg.NrRequests/8 + 1
		if n > cfg.NrRequests {
			n = cfg.NrRequests
		}
		cfg.CongestionOn = n
	}
	if cfg.CongestionOff <= 0 {
		n := cfg.NrRequests - cfg.NrRequests/8 - cfg.NrRequests/16 - 1
		if n < 1 {
			n = 1
		}
		cfg.CongestionOff = n
	}
	if cfg.CongestionOff > cfg.CongestionOn {
		cfg.CongestionOff = cfg.CongestionOn
	}
	if cfg.PlugRequests <= 0 {
		cfg.PlugRequests = min(DefaultPlugRequests, max(1, cfg.CongestionOn-1))
	}
	if cfg.PlugBytes <= 0 {
		cfg.PlugBytes = DefaultPlugBytes
	}
	if cfg.PlugDelay <= 0 {
		cfg.PlugDelay = DefaultPlugDelay
	}
	q := &Queue{dev: dev, limits: lim, cfg: cfg, devEnd: dev.Size() >> SectorShift}
	q.turn = sync.NewCond(&q.mu)
	q.idle = sync.NewCond(&q.mu)
	q.work = sync.NewCond(&q.mu)
	return q
}

// Device is the queue's device.
func (q *Queue) Device() Device { return q.dev }

// Limits are the queue's effective request limits.
func (q *Queue) Limits() Limits { return q.limits }

// NrVecs is the vector count a full-size bio should be allocated with
// (bio_get_nr_vecs).
func (q *Queue) NrVecs() int {
	n := q.limits.MaxRequestBytes / 4096
	if n > q.limits.MaxSegments {
		n = q.limits.MaxSegments
	}
	if n < 1 {
		n = 1
	}
	return n
}

// SetAddPageRefuse installs a test hook that makes Bio.AddPage refuse a
// segment when it returns true. Call before any I/O.
func (q *Queue) SetAddPageRefuse(f func(b *Bio, n int) bool) { q.refuse = f }

// SetAllocFault installs a test hook that makes AllocBio fail when it
// returns true. Call before any I/O.
func (q *Queue) SetAllocFault(f func(nrVecs int) bool) { q.allocFail = f }

// SetTrace installs a hook called once for every device call, after the
// call and before its bios complete, in dispatch order (the order in which
// workers took the requests), with the number of bios merged into the call.
// Calls are serialized. Call before any I/O.
func (q *Queue) SetTrace(f func(Request)) { q.trace = f }

// AllocBio allocates a bio for nrVecs segments starting at sector (bio_alloc).
// It returns nil when the bio budget is exhausted; callers retry with fewer
// vectors or fall back, as fs/mpage.c does.
func (q *Queue) AllocBio(op Op, sector int64, nrVecs int) *Bio {
	if nrVecs < 1 {
		nrVecs = 1
	}
	if q.allocFail != nil && q.allocFail(nrVecs) {
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.cfg.BioVecBudget > 0 && q.vecsOut+nrVecs > q.cfg.BioVecBudget {
		return nil
	}
	q.vecsOut += nrVecs
	// The vector starts small and grows in AddPage up to maxVecs, a pool
	// class at a time (biovec.go): most bios of a tree of small files
	// carry one page, and a vector of nrVecs (often 1024 slots, 40 KiB)
	// for each was most of what mkfs --from allocated (Linux picks a
	// biovec slab by size for the same reason). nrVecs still counts fully
	// against the budget.
	b := newBio()
	*b = Bio{Op: op, Sector: sector, q: q, maxVecs: nrVecs}
	b.initVecs()
	return b
}

// Submit queues b for I/O (submit_bio, generic_make_request and
// __make_request in drivers/block/ll_rw_blk.c). b.EndIO is called once with
// the outcome, on another goroutine unless b is Polled (below).
//
// A bio sector-adjacent to a queued request of the same Op is merged into
// it (back or front merge) when the request stays within the queue's
// limits; otherwise it starts a new request at the tail of the queue. The
// first request on an empty queue plugs it (blk_plug_device); the queue
// unplugs by itself when UnplugThreshold requests are queued
// (elevator.c:__elv_add_request) or when the UnplugDelay timer fires
// (blk_unplug_timeout). While a Plug is held the bounds are PlugRequests
// requests or PlugBytes bytes queued, and PlugDelay (see StartPlug).
//
// A Polled bio that finds the queue idle (nothing queued or waiting for a
// worker, no Plug held, fewer than InFlight device calls running) is
// issued at once on the submitter's goroutine: Submit makes its device
// call, completes it and returns after its EndIO (later Linux's
// blk_mq_try_issue_directly, which issues a bio from the submitting task
// when the hardware queue is idle, with the completion reaped by that
// task as bio_poll does for REQ_POLLED bios). A lone synchronous read
// then costs no hand-off to a worker and back, which for a small read
// from the host's cache costs more than the read itself. On a busy queue
// a Polled bio is queued, merged and dispatched like any other, and it
// counts in the InFlight bound while it runs.
//
// A bio that is empty, not sector-aligned, beyond the end of the device
// (handle_bad_sector) or submitted after Close completes with an error
// without reaching the device.
func (q *Queue) Submit(b *Bio) {
	size := 0
	aligned := true
	for _, v := range b.Vecs {
		size += len(v.Buf)
		if len(v.Buf)%SectorSize != 0 {
			aligned = false
		}
	}
	b.size = size

	q.mu.Lock()
	if b.Op == Write {
		q.stats.WriteBios++
		q.stats.WritePages += int64(len(b.Vecs))
	} else {
		q.stats.ReadBios++
		q.stats.ReadPages += int64(len(b.Vecs))
	}
	q.inflight++
	var err error
	switch {
	case q.closed:
		err = fmt.Errorf("block: %s of %d bytes at sector %d: %w", b.Op, size, b.Sector, ErrClosed)
	case b.Op != Read && b.Op != Write:
		err = fmt.Errorf("block: bio with unknown op %d: %w", b.Op, ErrInvalid)
	case size == 0 || !aligned:
		err = fmt.Errorf("block: %s bio of %d bytes in %d segments at sector %d is empty or not sector-aligned: %w",
			b.Op, size, len(b.Vecs), b.Sector, ErrInvalid)
	case b.Sector < 0 || b.EndSector() > q.devEnd:
		err = fmt.Errorf("block: %s of %d bytes at sector %d, device has %d sectors: %w",
			b.Op, size, b.Sector, q.devEnd, ErrOutOfRange)
	}
	if err != nil {
		q.stats.Errors++
		q.mu.Unlock()
		go q.endBios([]*Bio{b}, err)
		return
	}
	q.seq++
	if q.mergeLocked(b) {
		q.stats.Merges++
		q.queued += size
		if q.plugs > 0 && q.queued >= q.cfg.PlugBytes {
			q.dispatchLocked()
		}
		q.mu.Unlock()
		return
	}
	rq := newRequest()
	*rq = request{op: b.Op, sector: b.Sector, bytes: size, segs: len(b.Vecs), bios: append(rq.bios[:0], b), seq: q.seq}
	if b.Polled && q.idleLocked() {
		q.runPolledLocked(rq)
		return
	}
	if len(q.pending) == 0 {
		q.plugLocked()
	}
	q.pending = append(q.pending, rq)
	q.nrPending.Store(int64(len(q.pending)))
	q.queued += size
	q.lastMerge = rq
	q.nrRq[rq.op]++
	q.updateCongestionLocked(rq.op)
	if q.waiters > 0 || q.fullLocked() {
		q.dispatchLocked()
	}
	q.mu.Unlock()
}

// idleLocked reports whether the queue could take a request straight to
// the device: nothing is plugged or waiting for a worker, no Plug is held,
// and fewer than InFlight device calls are running.
//
// Preconditions: q.mu is held.
func (q *Queue) idleLocked() bool {
	return len(q.pending) == 0 && len(q.dispatch) == 0 && q.plugs == 0 && q.running+q.polling < q.cfg.InFlight
}

// runPolledLocked makes rq's device call on the calling goroutine and
// completes it (see Submit on Polled bios). It returns with q.mu released.
//
// Preconditions: q.mu is held and q.idleLocked().
func (q *Queue) runPolledLocked(rq *request) {
	q.nrRq[rq.op]++
	q.updateCongestionLocked(rq.op)
	q.polling++
	rq.polled = true
	q.stats.PolledCalls++
	rq.dseq = q.dseqNext
	q.dseqNext++
	q.mu.Unlock()
	q.run(rq) // gives the slot back (polling--)
	q.mu.Lock()
	if len(q.dispatch) > 0 {
		q.kickLocked()
	}
	q.mu.Unlock()
}

// fullLocked reports whether the queue has queued enough to unplug by
// itself: UnplugThreshold requests, or while a Plug is held PlugRequests
// requests or PlugBytes bytes.
//
// Preconditions: q.mu is held.
func (q *Queue) fullLocked() bool {
	if q.plugs > 0 {
		return len(q.pending) >= q.cfg.PlugRequests || q.queued >= q.cfg.PlugBytes
	}
	return len(q.pending) >= q.cfg.UnplugThreshold
}

// fitsLocked reports whether rq can take on bytes more in segs more
// segments (ll_back_merge_fn / ll_front_merge_fn).
//
// Preconditions: q.mu is held.
func (q *Queue) fitsLocked(rq *request, bytes, segs int) bool {
	return rq.bytes+bytes <= q.limits.MaxRequestBytes && rq.segs+segs <= q.limits.MaxSegments
}

// mergeLocked tries to merge b into a queued request and reports whether it
// did. It mirrors __make_request's use of elv_merge: the last merged
// request is tried first, then the queue from the tail, as
// noop-iosched.c:elevator_noop_merge does. After a merge it tries to join
// the grown request with its new neighbour (attempt_back_merge,
// attempt_front_merge).
//
// Preconditions: q.mu is held.
func (q *Queue) mergeLocked(b *Bio) bool {
	try := func(rq *request) bool {
		if rq.op != b.Op || !q.fitsLocked(rq, b.size, len(b.Vecs)) {
			return false
		}
		switch {
		case rq.endSector() == b.Sector: // back merge
			rq.bios = append(rq.bios, b)
			rq.bytes += b.size
			rq.segs += len(b.Vecs)
			q.lastMerge = q.attemptMergeLocked(rq, rq.endSector(), true)
			return true
		case b.EndSector() == rq.sector: // front merge
			rq.bios = append([]*Bio{b}, rq.bios...)
			rq.sector = b.Sector
			rq.bytes += b.size
			rq.segs += len(b.Vecs)
			q.lastMerge = q.attemptMergeLocked(rq, rq.sector, false)
			return true
		}
		return false
	}
	if q.lastMerge != nil && try(q.lastMerge) {
		return true
	}
	for i := len(q.pending) - 1; i >= 0; i-- {
		if rq := q.pending[i]; rq != q.lastMerge && try(rq) {
			return true
		}
	}
	return false
}

// attemptMergeLocked joins rq with the queued request that now touches it at
// sector (after rq when back, before rq when front), if any and if the
// union fits the limits, and returns the surviving request. The union keeps
// the earlier FIFO position of the two. It mirrors ll_rw_blk.c:
// attempt_back_merge / attempt_front_merge / attempt_merge.
//
// Preconditions: q.mu is held.
func (q *Queue) attemptMergeLocked(rq *request, sector int64, back bool) *request {
	ri, oi := -1, -1
	for i, o := range q.pending {
		if o == rq {
			ri = i
			continue
		}
		if o.op != rq.op || !q.fitsLocked(rq, o.bytes, o.segs) {
			continue
		}
		if (back && o.sector == sector) || (!back && o.endSector() == sector) {
			oi = i
		}
	}
	if ri < 0 || oi < 0 {
		return rq
	}
	o := q.pending[oi]
	first, second := rq, o // in sector order
	if !back {
		first, second = o, rq
	}
	first.bios = append(first.bios, second.bios...)
	first.bytes += second.bytes
	first.segs += second.segs
	first.seq = min(first.seq, second.seq)
	// The union takes the earlier slot; the later slot goes.
	lo, hi := min(ri, oi), max(ri, oi)
	q.pending[lo] = first
	q.pending = append(q.pending[:hi], q.pending[hi+1:]...)
	q.nrPending.Store(int64(len(q.pending)))
	q.nrRq[rq.op]--
	q.updateCongestionLocked(rq.op)
	return first
}

// plugLocked plugs the queue and arms the unplug timer (blk_plug_device):
// UnplugDelay, or PlugDelay while a Plug is held.
//
// Preconditions: q.mu is held; the queue is empty.
func (q *Queue) plugLocked() {
	gen := q.plugGen
	delay := q.cfg.UnplugDelay
	if q.plugs > 0 {
		delay = max(delay, q.cfg.PlugDelay)
	}
	q.timer = time.AfterFunc(delay, func() { q.unplugTimeout(gen) })
}

// unplugTimeout is the plug timer's work (blk_unplug_timeout and
// blk_unplug_work): it unplugs the queue if it is still the plug that
// armed the timer.
func (q *Queue) unplugTimeout(gen uint64) {
	q.mu.Lock()
	if q.plugGen == gen {
		q.dispatchLocked()
	}
	q.mu.Unlock()
}

// dispatchLocked removes the plug and moves every queued request to the
// dispatch list, starting workers for them (blk_remove_plug, then
// q->request_fn). Requests keep their FIFO order.
//
// Preconditions: q.mu is held.
func (q *Queue) dispatchLocked() {
	if len(q.pending) == 0 {
		return
	}
	q.plugGen++
	if q.timer != nil {
		q.timer.Stop()
		q.timer = nil
	}
	q.dispatch = append(q.dispatch, q.pending...)
	clear(q.pending)
	q.pending = q.pending[:0]
	q.nrPending.Store(0)
	q.queued = 0
	q.lastMerge = nil
	q.kickLocked()
}

// kickLocked finds workers for the dispatch list: it wakes idle workers
// first, then starts new ones up to InFlight.
//
// Preconditions: q.mu is held.
func (q *Queue) kickLocked() {
	// Workers between two calls look at the list before they wait.
	n := len(q.dispatch) - (q.workers - q.idleWork - q.running)
	for w := min(q.idleWork, n); w > 0; w-- {
		q.work.Signal()
		n--
	}
	for n = min(q.cfg.InFlight-q.workers, n); n > 0; n-- {
		q.workers++
		go q.worker()
	}
}

// runnableLocked reports whether a worker may take a request now: one is
// waiting and fewer than InFlight device calls are running (a polled
// call takes a slot as a worker's does).
//
// Preconditions: q.mu is held.
func (q *Queue) runnableLocked() bool {
	return len(q.dispatch) > 0 && q.running+q.polling < q.cfg.InFlight
}

// workerLinger is how long a worker waits for more work before it ends.
const workerLinger = 100 * time.Millisecond

// worker runs dispatched requests one at a time. With none left it
// waits up to workerLinger for more (a reader that misses one page after
// another then wakes a parked goroutine rather than making a new one,
// whose stack grows anew each time), and ends after that or at Close.
func (q *Queue) worker() {
	q.mu.Lock()
	for {
		if !q.runnableLocked() && !q.closed {
			q.idleWork++
			deadline := time.AfterFunc(workerLinger, func() {
				q.mu.Lock()
				q.work.Broadcast()
				q.mu.Unlock()
			})
			start := time.Now()
			for !q.runnableLocked() && !q.closed && time.Since(start) < workerLinger {
				q.work.Wait()
			}
			deadline.Stop()
			q.idleWork--
		}
		if !q.runnableLocked() {
			// Closed or lingered out with nothing to run. Requests left
			// waiting for a slot that a polled call holds are handed
			// to workers when that call ends (runPolledLocked).
			break
		}
		rq := q.dispatch[0]
		q.dispatch[0] = nil
		q.dispatch = q.dispatch[1:]
		rq.dseq = q.dseqNext
		q.dseqNext++
		q.running++
		q.mu.Unlock()
		q.run(rq) // gives the slot back (running--)
		q.mu.Lock()
	}
	q.workers--
	q.mu.Unlock()
}

// run makes rq's one device call with the buffers of all its bios, then
// completes the bios (the driver's request_fn and end_that_request_*).
func (q *Queue) run(rq *request) {
	box := bufScratch.Get(rq.segs)
	bufs := *box
	for _, b := range rq.bios {
		for _, v := range b.Vecs {
			bufs = append(bufs, v.Buf)
		}
	}
	off := rq.sector << SectorShift
	var err error
	if rq.op == Write {
		err = q.dev.WriteVecAt(bufs, off)
	} else {
		err = q.dev.ReadVecAt(bufs, off)
	}
	bufScratch.Put(box, bufs)
	if err != nil {
		err = fmt.Errorf("block: %s of %d bytes at sector %d (%d bios): %w", rq.op, rq.bytes, rq.sector, len(rq.bios), err)
	}

	q.mu.Lock()
	// The device call is over: its slot is free before the completions
	// run, so a worker that finished its call counts as one that will
	// look for more (kickLocked).
	if rq.polled {
		q.polling--
	} else {
		q.running--
	}
	n := int64(rq.bytes)
	if rq.op == Write {
		q.stats.WriteCalls++
		if err == nil {
			q.stats.BytesWritten += n
		}
	} else {
		q.stats.ReadCalls++
		if err == nil {
			q.stats.BytesRead += n
		}
	}
	q.stats.LargestRequest = max(q.stats.LargestRequest, n)
	if err != nil {
		q.stats.Errors++
	}
	q.nrRq[rq.op]--
	q.updateCongestionLocked(rq.op)
	if q.trace == nil {
		q.traceNext = max(q.traceNext, rq.dseq+1)
		q.mu.Unlock()
	} else {
		// Trace in dispatch order: wait for the earlier requests' turn.
		for q.traceNext < rq.dseq {
			q.turn.Wait()
		}
		q.mu.Unlock()
		q.trace(Request{Op: rq.op, Sector: rq.sector, Bytes: rq.bytes, Bios: len(rq.bios), Err: err})
		q.mu.Lock()
		q.traceNext = max(q.traceNext, rq.dseq+1)
		q.turn.Broadcast()
		q.mu.Unlock()
	}
	q.endBios(rq.bios, err)
	freeRequest(rq)
}

// endBios returns the bios' vector slots to the budget and calls their EndIO
// with err (bio_endio), then marks them done.
func (q *Queue) endBios(bios []*Bio, err error) {
	q.mu.Lock()
	for _, b := range bios {
		if b.q == q && !b.released {
			b.released = true
			q.vecsOut -= b.maxVecs
		}
	}
	q.mu.Unlock()
	for _, b := range bios {
		if b.EndIO != nil {
			b.EndIO(b, err)
		}
	}
	q.mu.Lock()
	q.inflight -= len(bios)
	if q.inflight == 0 {
		q.idle.Broadcast()
	}
	q.mu.Unlock()
}

// updateCongestionLocked sets or clears op's congestion after its request
// count changed (blk_set_queue_congested in get_request,
// blk_clear_queue_congested in freed_request).
//
// Preconditions: q.mu is held.
func (q *Queue) updateCongestionLocked(op Op) {
	n := q.nrRq[op]
	if n >= q.cfg.CongestionOn {
		q.congested[op].Store(true)
	} else if n < q.cfg.CongestionOff {
		q.congested[op].Store(false)
	}
}

// SubmitWait submits b, unplugs the queue and waits for b to complete,
// returning its error. b.EndIO, if set, is still called first. The bio is
// Polled: on an idle queue the device call is made on the caller's
// goroutine (see Submit).
func (q *Queue) SubmitWait(b *Bio) error {
	b.Polled = true
	done := make(chan error, 1)
	end := b.EndIO
	b.EndIO = func(b *Bio, err error) {
		if end != nil {
			end(b, err)
		}
		done <- err
	}
	q.Submit(b)
	q.Unplug()
	return <-done
}

// Unplug dispatches every queued request now (generic_unplug_device). An
// empty queue is recognised from an atomic counter without taking the
// queue lock, the cheap elv_queue_empty() test that the patch "use cheaper
// elv_queue_empty when unplug a device" put into the unplug path in place
// of elv_next_request(); callers such as page-lock waiters unplug often.
func (q *Queue) Unplug() {
	if q.nrPending.Load() == 0 {
		return
	}
	q.mu.Lock()
	q.dispatchLocked()
	q.mu.Unlock()
}

// WriteCongested reports whether the queue has so many writes queued or in
// flight that a non-blocking writer should back off (bdi_write_congested).
// It takes no lock.
func (q *Queue) WriteCongested() bool { return q.congested[Write].Load() }

// ReadCongested is the read counterpart of WriteCongested
// (bdi_read_congested).
func (q *Queue) ReadCongested() bool { return q.congested[Read].Load() }

// Wait unplugs the queue and blocks until every submitted bio has
// completed, including bios submitted by other goroutines while it waits.
func (q *Queue) Wait() {
	q.mu.Lock()
	q.waiters++
	q.dispatchLocked()
	for q.inflight > 0 {
		q.idle.Wait()
	}
	q.waiters--
	q.mu.Unlock()
}

// Flush dispatches and waits for all submitted bios, then flushes the
// device's write cache (blkdev_issue_flush).
func (q *Queue) Flush() error {
	q.Wait()
	q.mu.Lock()
	closed := q.closed
	if !closed {
		q.stats.Flushes++
	}
	q.mu.Unlock()
	if closed {
		return fmt.Errorf("block: flush: %w", ErrClosed)
	}
	if err := q.dev.Flush(); err != nil {
		return fmt.Errorf("block: flush: %w", err)
	}
	return nil
}

// Stats returns a snapshot of the counters.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.stats
}

// Close refuses new bios (they complete with ErrClosed), waits for the
// outstanding ones and closes the device. A second Close returns ErrClosed.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return fmt.Errorf("block: close: %w", ErrClosed)
	}
	q.closed = true
	q.work.Broadcast()
	q.mu.Unlock()
	q.Wait()
	return q.dev.Close()
}
