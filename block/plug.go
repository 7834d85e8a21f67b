package block

import "time"

// Defaults of the Config fields for held plugs.
const (
	// DefaultPlugRequests is Config.PlugRequests' default: 64 requests,
	// twice the BLK_MAX_REQUEST_COUNT at which later Linux flushes a
	// task's plug list, and below the congestion threshold of the
	// default request pool.
	DefaultPlugRequests = 64
	// DefaultPlugBytes is Config.PlugBytes' default: 16 MiB, four
	// full-size requests of the default limits. Past it holding more
	// makes no request larger; it only keeps the device idle.
	DefaultPlugBytes = 16 << 20
	// DefaultPlugDelay is Config.PlugDelay's default: the 3 ms
	// unplug_delay of 2.6.12.
	DefaultPlugDelay = 3 * time.Millisecond
)

// Plug is a hold on a queue's unplugging that spans many batches of
// submissions, as later Linux's on-stack struct blk_plug spans a whole
// writeback pass over many inodes (blk_start_plug in wb_writeback and
// writeback_sb_inodes, blk_finish_plug at the end). While one is held,
// the end of a batch (UnplugBatch, the blk_finish_plug of mpage's own
// nested plug) dispatches nothing, so the bios of consecutive small
// files, often adjacent on disk, merge into one device request.
//
// Unlike Linux's per-task plug, a Plug holds the queue for every
// submitter. Its bounds keep that cheap: the queue still dispatches by
// itself at Config.PlugRequests requests or Config.PlugBytes bytes
// queued, and when the Config.PlugDelay timer fires (in Linux a task's
// plug is flushed when it sleeps; here the timer stands in for that, so a
// goroutine waiting on a page queued under someone's plug waits at most
// the delay). Unplug, Wait, Flush and SubmitWait dispatch at once as
// always.
type Plug struct {
	q        *Queue
	finished bool // guarded by q.mu
}

// StartPlug holds q's batch unplugs until the returned Plug is finished
// (blk_start_plug). Plugs nest: the queue is released when the last held
// Plug finishes.
func (q *Queue) StartPlug() *Plug {
	q.mu.Lock()
	q.plugs++
	q.mu.Unlock()
	return &Plug{q: q}
}

// Finish releases the plug (blk_finish_plug). When it was the last held
// Plug, every queued request is dispatched. Finishing a finished Plug
// does nothing; so does Finish on a nil Plug.
func (p *Plug) Finish() {
	if p == nil {
		return
	}
	q := p.q
	q.mu.Lock()
	defer q.mu.Unlock()
	if p.finished {
		return
	}
	p.finished = true
	q.plugs--
	if q.plugs == 0 {
		q.dispatchLocked()
	}
}

// UnplugBatch ends one batch of submissions: it dispatches every queued
// request, as Unplug does, unless a Plug is held, in which case the
// requests wait to merge with the next batch. fs/mpage.c's writepages
// ends with it (the blk_finish_plug of its own plug, which does nothing
// when nested in a plug of the writeback pass). Callers that are about to
// wait for their I/O call Unplug instead.
func (q *Queue) UnplugBatch() {
	if q.nrPending.Load() == 0 {
		return
	}
	q.mu.Lock()
	if q.plugs == 0 {
		q.dispatchLocked()
	}
	q.mu.Unlock()
}
