// Package buffer is the buffer-head layer: the blocks of a page-cache page,
// the per-block read and write paths that fs/mpage.c falls back to, and the
// metadata buffer cache of a block device.
//
// It mirrors Linux's fs/buffer.c and include/linux/buffer_head.h.
package buffer

import (
	"sync"
	"sync/atomic"

	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/pagecache"
)

// State is the state bits of a buffer head (b_state).
type State uint32

// Buffer states.
const (
	Uptodate     State = 1 << iota // BH_Uptodate: Data holds the block's contents
	Dirty                          // BH_Dirty: Data is newer than the disk
	Locked                         // BH_Lock: I/O is under way
	Req                            // BH_Req: has been submitted for I/O
	Mapped                         // BH_Mapped: Blocknr is valid
	New                            // BH_New: get_block just allocated the block
	AsyncRead                      // BH_Async_Read: part of a page read
	AsyncWrite                     // BH_Async_Write: part of a page write
	Boundary                       // BH_Boundary: the next block's mapping needs I/O nearby
	WriteIOError                   // BH_Write_EIO: the last write failed
)

// GetBlock is the filesystem's block mapper (the seed's get_block_t), bound
// to one file. It maps file block iblock to a device block by setting
// bh.Blocknr and the Mapped state (and Boundary, New or Uptodate where they
// apply); it leaves bh unmapped for a hole. With create it allocates a block
// for a hole. An error means the mapping could not be done (I/O error,
// corruption, no space).
type GetBlock func(iblock int64, bh *Head, create bool) error

// Head is one block's state and its place in memory and on disk (struct
// buffer_head).
//
// For a buffer of a page-cache page, Page is that page and Data is the
// block's slice of Page.Data; the ring of a page's buffers is guarded by the
// page lock. For a metadata buffer of the buffer Cache, Page is nil.
type Head struct {
	state atomic.Uint32

	Blocknr int64  // device block number, valid when Mapped
	Size    int    // block size in bytes
	Data    []byte // the block's bytes
	Page    *pagecache.Page
	Queue   *block.Queue // the device (b_bdev)

	next *Head // b_this_page: the next buffer of the same page

	// uptodateMu serialises the I/O completions of the buffers of one page
	// so that exactly one of them finishes the page; only the first
	// buffer's is used (BH_Uptodate_Lock). It is taken after the buffer
	// lock wait slot is released and never held across I/O.
	uptodateMu sync.Mutex
}

// State returns a snapshot of the state bits.
func (bh *Head) State() State { return State(bh.state.Load()) }

// Has reports whether all of s are set.
func (bh *Head) Has(s State) bool { return State(bh.state.Load())&s == s }

// Set sets the bits of s.
func (bh *Head) Set(s State) {
	for {
		old := bh.state.Load()
		if bh.state.CompareAndSwap(old, old|uint32(s)) {
			return
		}
	}
}

// Clear clears the bits of s and reports whether any was set.
func (bh *Head) Clear(s State) bool {
	for {
		old := bh.state.Load()
		if bh.state.CompareAndSwap(old, old&^uint32(s)) {
			return old&uint32(s) != 0
		}
	}
}

// TestAndSet sets s and reports whether all of it was already set.
func (bh *Head) TestAndSet(s State) bool {
	for {
		old := bh.state.Load()
		if old&uint32(s) == uint32(s) {
			return true
		}
		if bh.state.CompareAndSwap(old, old|uint32(s)) {
			return false
		}
	}
}

// SetState replaces all state bits (used by map_buffer_to_page).
func (bh *Head) SetState(s State) { bh.state.Store(uint32(s)) }

// Map marks bh mapped to device block blocknr (map_bh).
func (bh *Head) Map(q *block.Queue, blocknr int64) {
	bh.Queue = q
	bh.Blocknr = blocknr
	bh.Set(Mapped)
}

// Next is the next buffer of the same page; the ring closes on the first.
func (bh *Head) Next() *Head { return bh.next }

// Buffers returns the first buffer of a page, or nil if the page has none
// (page_buffers). Precondition: the page is locked, or its buffers are
// known to be stable.
func Buffers(p *pagecache.Page) *Head {
	bh, _ := p.Private.(*Head)
	return bh
}

// HasBuffers reports whether the page has buffer heads (page_has_buffers).
func HasBuffers(p *pagecache.Page) bool { return Buffers(p) != nil }

// CreateEmptyBuffers attaches a ring of buffers of blockSize bytes to a
// page that has none, each with state s (create_empty_buffers).
// Precondition: the page is locked.
func CreateEmptyBuffers(p *pagecache.Page, blockSize int, s State) *Head {
	var head, tail *Head
	for off := 0; off < pagecache.PageSize; off += blockSize {
		bh := &Head{Size: blockSize, Data: p.Data[off : off+blockSize : off+blockSize], Page: p}
		bh.state.Store(uint32(s))
		if head == nil {
			head = bh
		} else {
			tail.next = bh
		}
		tail = bh
	}
	tail.next = head
	p.Private = head
	return head
}

// DropBuffers detaches the buffers of a page (try_to_free_buffers without
// the checks). Precondition: the page is locked and no buffer is dirty or
// under I/O.
func DropBuffers(p *pagecache.Page) { p.Private = nil }
