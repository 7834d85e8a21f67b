package pagecache

// SyncMode says whether writeback is for memory cleaning or data integrity.
type SyncMode uint8

// Sync modes.
const (
	SyncNone SyncMode = iota // WB_SYNC_NONE: skip pages already under writeback
	SyncAll                  // WB_SYNC_ALL: wait for them; write everything dirty
)

// WritebackControl steers one writeback pass over a mapping (struct
// writeback_control), as fs/mpage.c's mpage_writepages() reads it.
type WritebackControl struct {
	SyncMode SyncMode
	// NrToWrite is the page budget; writepages decrements it for each page
	// written. Ignored (never cut short) for SyncAll, as later Linux does.
	NrToWrite int64
	// RangeStart and RangeEnd bound the byte range written, inclusive.
	// When both are zero and RangeCyclic is false the whole file is
	// written.
	RangeStart, RangeEnd int64
	// RangeCyclic starts at the mapping's writeback index and wraps
	// around (range_cyclic).
	RangeCyclic bool
	// Nonblocking asks writeback to stop when the device is congested.
	Nonblocking bool
	// EncounteredCongestion is set when a non-blocking pass stopped early.
	EncounteredCongestion bool
	// PagesWritten counts pages handed to I/O in this pass.
	PagesWritten int64
}
