// Package block is the block layer: bios, per-device request queues with
// plugging, merging and completion, and the devices underneath them.
//
// It mirrors Linux's block layer as fs/mpage.c (2.6.12) sees it: struct bio
// and bio_add_page() (fs/bio.c), submit_bio() and the request queue with its
// plug/unplug and elevator merging (drivers/block/ll_rw_blk.c,
// drivers/block/elevator.c, drivers/block/noop-iosched.c), and the
// backing_dev_info congestion test (bdi_write_congested).
//
// A bio submitted to a Queue is merged into a queued request it is
// sector-adjacent to, or starts a new one; the first request plugs the
// queue. The queue unplugs on Unplug, Wait, Flush or Close, when
// Config.UnplugThreshold requests are queued, or when the plug timer fires.
// Unplugged requests go, first in first out, to at most Config.InFlight
// worker goroutines; each request is one vectored device call straight
// into its bios' buffers, and its bios complete on the worker.
//
// Devices: File (disk images and raw block devices, preadv/pwritev),
// Memory, and Faulty, a wrapper for tests that records calls, injects
// errors and shows the device as a crash would leave it. Package
// block/blocktest is the conformance suite every Device passes.
//
// Lock order: Queue.mu is a leaf: it is never held across a device call, a
// trace hook, an EndIO or a test hook, and no other lock is taken under it
// (Queue.nrPending and Queue.congested are read without it). Devices lock
// below the queue: Faulty.wmu -> Faulty.mu, and Faulty.wmu -> the wrapped
// device's lock (Memory.mu, File.mu), never Faulty.mu -> anything.
package block

import "errors"

// Sector arithmetic. Bios address devices in 512-byte sectors, as Linux does.
const (
	SectorShift = 9
	SectorSize  = 1 << SectorShift
)

// Sentinel errors of the block layer.
var (
	// ErrIO is the error of a failed device transfer.
	ErrIO = errors.New("block: I/O error")
	// ErrOutOfRange is returned for a transfer that does not fit in the device.
	ErrOutOfRange = errors.New("block: transfer beyond end of device")
	// ErrClosed is returned after the device or queue has been closed.
	ErrClosed = errors.New("block: device closed")
	// ErrReadOnly is returned for a write to a device opened read-only.
	ErrReadOnly = errors.New("block: device is read-only")
	// ErrInvalid is returned for a malformed bio or argument: an empty or
	// unaligned bio, a device size that is not a multiple of SectorSize.
	ErrInvalid = errors.New("block: invalid argument")
)

// Device is sector-addressed storage: an image file, a raw block device or
// memory. Offsets are in bytes and are multiples of SectorSize; every buffer
// length is a multiple of SectorSize.
//
// ReadVecAt and WriteVecAt move the whole vector or fail: a short transfer is
// an error naming the offset. A Device must be safe for concurrent use by
// several goroutines on disjoint ranges. The bufs slice is lent for the
// call only: the queue reuses it for its next request, so a Device that
// wants the buffer list later copies it (the buffers themselves stay the
// bios' until they complete).
type Device interface {
	// Size is the device size in bytes.
	Size() int64
	// ReadVecAt fills bufs, in order, from the bytes at off.
	ReadVecAt(bufs [][]byte, off int64) error
	// WriteVecAt writes bufs, in order, to the bytes at off.
	WriteVecAt(bufs [][]byte, off int64) error
	// Flush makes completed writes durable (fdatasync).
	Flush() error
	// Close releases the device.
	Close() error
}

// Limits are the request limits of a device, as a request queue's
// max_sectors and max_segments are in Linux.
type Limits struct {
	// MaxRequestBytes is the largest single device call.
	MaxRequestBytes int
	// MaxSegments is the most buffers one device call can carry (IOV_MAX
	// for preadv/pwritev).
	MaxSegments int
}

// Limiter is an optional interface of a Device that has limits of its own.
type Limiter interface {
	Limits() Limits
}

// DefaultLimits are used for devices that do not implement Limiter: 4 MiB,
// which is what one vectored call of 1024 pages carries.
var DefaultLimits = Limits{MaxRequestBytes: 4 << 20, MaxSegments: 1024}
