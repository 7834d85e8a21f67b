package buffer

import (
	"errors"

	"github.com/mpagefs/mpage/block"
)

// ErrNotImplemented marks API that the skeleton declares and a later change
// fills in.
var ErrNotImplemented = errors.New("buffer: not implemented yet")

// CacheConfig sets the limits of a metadata buffer cache.
type CacheConfig struct {
	// Limit is the most memory, in bytes, that clean unreferenced buffers
	// may hold before the oldest are dropped. Default 32 MiB.
	Limit int64
}

// Cache is the metadata buffer cache of one device: superblocks, bitmaps,
// inode tables, indirect blocks (the buffer heads of the block device's own
// page cache in Linux: __getblk, __bread, mark_buffer_dirty,
// sync_dirty_buffer, sync_blockdev).
type Cache struct {
	q         *block.Queue
	blockSize int
}

// NewCache makes the buffer cache of q for blocks of blockSize bytes and
// registers it so that CacheFor(q) finds it.
func NewCache(q *block.Queue, blockSize int, cfg CacheConfig) *Cache {
	panic(ErrNotImplemented)
}

// CacheFor returns the buffer cache registered for q, or nil.
func CacheFor(q *block.Queue) *Cache { panic(ErrNotImplemented) }

// Bread returns the buffer of block blocknr with its contents read
// (__bread). The caller holds a reference and must Release it.
func (c *Cache) Bread(blocknr int64) (*Head, error) { panic(ErrNotImplemented) }

// Getblk returns the buffer of block blocknr without reading it
// (__getblk): for a block about to be overwritten whole. The caller holds
// a reference and must Release it.
func (c *Cache) Getblk(blocknr int64) *Head { panic(ErrNotImplemented) }

// Release drops a reference taken by Bread or Getblk (brelse).
func (c *Cache) Release(bh *Head) { panic(ErrNotImplemented) }

// MarkDirty marks a metadata buffer dirty (mark_buffer_dirty).
func (c *Cache) MarkDirty(bh *Head) { panic(ErrNotImplemented) }

// WriteSync writes one buffer now and waits (sync_dirty_buffer).
func (c *Cache) WriteSync(bh *Head) error { panic(ErrNotImplemented) }

// Forget drops the dirty state and cached contents of a block that was
// freed (bforget).
func (c *Cache) Forget(blocknr int64) { panic(ErrNotImplemented) }

// Sync writes every dirty buffer and waits for them (sync_blockdev for the
// metadata), returning the first error.
func (c *Cache) Sync() error { panic(ErrNotImplemented) }

// UnmapUnderlyingMetadata drops any cached metadata alias of a block that
// was just allocated for file data, so a stale dirty buffer cannot later
// overwrite the data (unmap_underlying_metadata).
func UnmapUnderlyingMetadata(q *block.Queue, blocknr int64) { panic(ErrNotImplemented) }

// WriteBoundaryBlock starts the write of a dirty metadata block (an
// indirect block) that the just-submitted data bio ends at, so the disk sees
// them in order (write_boundary_block).
func WriteBoundaryBlock(q *block.Queue, blocknr int64, size int) { panic(ErrNotImplemented) }
