package writeback

import (
	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/pagecache"
)

// Plugger is the request queue of a filesystem's device as the flusher
// uses it (block.Queue): held plugged across a pass over many mappings,
// so that the bios of consecutive small files merge into few device
// requests, and run before waiting for the I/O.
type Plugger interface {
	StartPlug() *block.Plug
	Unplug()
}

var _ Plugger = (*block.Queue)(nil)

// SetPlugger makes the flusher hold a plug on q across each of its passes
// and across the writes SyncAll starts (later Linux's blk_start_plug /
// blk_finish_plug around wb_writeback's pass over the dirty inodes): each
// mapping's WritePages then leaves its bios queued to merge with the next
// mapping's. Without it every WritePages call dispatches its own bios.
// Call it before Start and before any SyncAll; it never changes after.
func (f *Flusher) SetPlugger(q Plugger) { f.plugger = q }

// startPlug starts a plug on the flusher's queue, if it has one; Finish
// of the nil Plug returned without one does nothing.
func (f *Flusher) startPlug() *block.Plug {
	if f.plugger == nil {
		return nil
	}
	return f.plugger.StartPlug()
}

// finishPlug finishes pl and, when wait, runs the queue even if another
// plug is held on it (by a concurrent flusher pass), because the caller is
// about to wait for the I/O it queued.
func (f *Flusher) finishPlug(pl *block.Plug, wait bool) {
	pl.Finish()
	if wait && f.plugger != nil {
		f.plugger.Unplug()
	}
}

// syncOrder returns the registered mappings in the order SyncAll writes
// them: first those on the dirty ring, in the order they became dirty
// (the b_io order of a WB_SYNC_ALL wb_writeback, which for files written
// one after the other is the order of their blocks on disk, so that their
// bios merge under the plug), then every other registered mapping.
func (f *Flusher) syncOrder() []*pagecache.Mapping {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*pagecache.Mapping, 0, len(f.mu.order))
	for st := f.mu.dirty.next; st != &f.mu.dirty; st = st.next {
		out = append(out, st.m)
	}
	for _, m := range f.mu.order {
		if f.mu.maps[m].dirtiedWhen.IsZero() {
			out = append(out, m)
		}
	}
	return out
}
