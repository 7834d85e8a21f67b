package flat

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sync"

	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/buffer"
	"github.com/mpagefs/mpage/pagecache"
	"github.com/mpagefs/mpage/writeback"
)

// Sentinel errors of package flat.
var (
	// ErrInvalid is a bad argument or configuration: a block size other
	// than 1024, 2048 or 4096, extents outside the device or overlapping,
	// a negative offset or size.
	ErrInvalid = errors.New("flat: invalid argument")
	// ErrNoSpace is a write or truncation past the file's extents. It
	// wraps pagecache.ErrNoSpace, so writeback records it as ENOSPC.
	ErrNoSpace = fmt.Errorf("flat: no space left in the file's extents: %w", pagecache.ErrNoSpace)
	// ErrClosed is returned for a handle or filesystem used after Close.
	ErrClosed = errors.New("flat: file already closed")
	// ErrNotExist is returned by Open for an unknown name; it wraps
	// fs.ErrNotExist.
	ErrNotExist = fmt.Errorf("flat: no such file: %w", fs.ErrNotExist)
)

// Extent is a run of device blocks (in units of the filesystem's block
// size) that holds consecutive file blocks.
type Extent struct {
	Start int64 // first device block
	Len   int64 // blocks
}

// Linear is the extent table of a file mapped linearly onto blocks
// [start, start+blocks) of the device.
func Linear(start, blocks int64) []Extent { return []Extent{{Start: start, Len: blocks}} }

// FileSpec describes one file of a filesystem.
type FileSpec struct {
	Name    string
	Extents []Extent
	// Size is the file's size at New. The blocks under it count as
	// allocated: their contents are whatever the device holds.
	Size int64
}

// Config describes a filesystem.
type Config struct {
	// BlockSize is 1024, 2048 or 4096.
	BlockSize int
	Files     []FileSpec
	// Cache is the page cache to use; nil makes one with CacheConfig.
	// The filesystem installs buffer.TryToFreeBuffers as its release
	// hook.
	Cache       *pagecache.Cache
	CacheConfig pagecache.Config
	// NoFlusher leaves the filesystem without a background flusher: dirty
	// pages are then written by Sync and by writers throttled in the
	// cache.
	NoFlusher bool
	// Writeback configures the flusher.
	Writeback writeback.Config
}

// FS is a mounted flat filesystem.
type FS struct {
	// Never change after New.
	q         *block.Queue
	cache     *pagecache.Cache
	flusher   *writeback.Flusher // nil with Config.NoFlusher
	blockBits uint
	inodes    map[string]*inode
	names     []string // in Config order

	mu     sync.Mutex // guards closed
	closed bool
}

// New mounts a flat filesystem on q's device. The queue stays the
// caller's: Close does not close it.
func New(q *block.Queue, cfg Config) (*FS, error) {
	var bits uint
	switch cfg.BlockSize {
	case 1024:
		bits = 10
	case 2048:
		bits = 11
	case 4096:
		bits = 12
	default:
		return nil, fmt.Errorf("%w: block size %d (want 1024, 2048 or 4096)", ErrInvalid, cfg.BlockSize)
	}
	devBlocks := q.Device().Size() >> bits
	type run struct {
		start, end int64
		name       string
	}
	var runs []run
	fsys := &FS{q: q, blockBits: bits, inodes: make(map[string]*inode)}
	for _, spec := range cfg.Files {
		if spec.Name == "" {
			return nil, fmt.Errorf("%w: file with an empty name", ErrInvalid)
		}
		if _, dup := fsys.inodes[spec.Name]; dup {
			return nil, fmt.Errorf("%w: file %q given twice", ErrInvalid, spec.Name)
		}
		var capacity int64
		for i, e := range spec.Extents {
			if e.Start < 0 || e.Len <= 0 || e.Start+e.Len > devBlocks || e.Start+e.Len < e.Start {
				return nil, fmt.Errorf("%w: file %q extent %d (blocks %d+%d) is not within the device's %d blocks",
					ErrInvalid, spec.Name, i, e.Start, e.Len, devBlocks)
			}
			runs = append(runs, run{e.Start, e.Start + e.Len, spec.Name})
			capacity += e.Len
		}
		if spec.Size < 0 || spec.Size > capacity<<bits {
			return nil, fmt.Errorf("%w: file %q size %d does not fit its %d blocks", ErrInvalid, spec.Name, spec.Size, capacity)
		}
		fsys.inodes[spec.Name] = newInode(fsys, spec, capacity)
		fsys.names = append(fsys.names, spec.Name)
	}
	slices.SortFunc(runs, func(a, b run) int { return cmp.Compare(a.start, b.start) })
	for i := 1; i < len(runs); i++ {
		if runs[i].start < runs[i-1].end {
			return nil, fmt.Errorf("%w: extents of %q and %q overlap at device block %d",
				ErrInvalid, runs[i-1].name, runs[i].name, runs[i].start)
		}
	}

	fsys.cache = cfg.Cache
	if fsys.cache == nil {
		fsys.cache = pagecache.NewCache(cfg.CacheConfig)
	}
	fsys.cache.SetReleasePage(buffer.TryToFreeBuffers)
	if !cfg.NoFlusher {
		fsys.flusher = writeback.New(fsys.cache, cfg.Writeback)
	}
	for _, name := range fsys.names {
		ino := fsys.inodes[name]
		ino.m = fsys.cache.NewMapping(&aops{ino: ino}, bits)
		ino.m.SetSize(ino.initSize)
		ino.m.SetBacking(q)
		ino.m.SetInvalidatePage(buffer.InvalidatePage)
		if fsys.flusher != nil {
			fsys.flusher.Register(ino.m)
		}
	}
	if fsys.flusher != nil {
		fsys.flusher.Start()
	}
	return fsys, nil
}

// Queue is the request queue the filesystem does I/O through.
func (fsys *FS) Queue() *block.Queue { return fsys.q }

// Cache is the page cache of the filesystem's files.
func (fsys *FS) Cache() *pagecache.Cache { return fsys.cache }

// Flusher is the filesystem's background flusher, or nil.
func (fsys *FS) Flusher() *writeback.Flusher { return fsys.flusher }

// BlockSize is the filesystem's block size in bytes.
func (fsys *FS) BlockSize() int { return 1 << fsys.blockBits }

// Names lists the files in Config order.
func (fsys *FS) Names() []string { return slices.Clone(fsys.names) }

// Mapping is the page-cache mapping of the named file, for tests that
// work on the page cache directly (InvalidateClean, TruncatePages), or nil.
func (fsys *FS) Mapping(name string) *pagecache.Mapping {
	if ino := fsys.inodes[name]; ino != nil {
		return ino.m
	}
	return nil
}

// DeviceOffset returns the device byte offset of file byte off of the
// named file, and false when off lies past the file's extents.
func (fsys *FS) DeviceOffset(name string, off int64) (int64, bool) {
	ino := fsys.inodes[name]
	if ino == nil || off < 0 {
		return 0, false
	}
	dev, ok := ino.devBlock(off >> fsys.blockBits)
	if !ok {
		return 0, false
	}
	return dev<<fsys.blockBits + off&(1<<fsys.blockBits-1), true
}

// Sync writes every file's dirty pages, waits for them and flushes the
// device (sync_filesystem: the data pass, then blkdev_issue_flush). It
// returns the first error; writeback errors found here are the mapping's
// legacy (AS_EIO) errors: handles still see theirs at their Sync.
func (fsys *FS) Sync() error {
	var errs []error
	for _, name := range fsys.names {
		if err := writeback.SyncMapping(fsys.inodes[name].m); err != nil {
			errs = append(errs, fmt.Errorf("flat: sync %s: %w", name, err))
		}
	}
	if err := fsys.q.Flush(); err != nil {
		errs = append(errs, fmt.Errorf("flat: sync: %w", err))
	}
	return errors.Join(errs...)
}

// Close stops the flusher and syncs the filesystem (umount). Handles
// still open become unusable. The queue is left open.
func (fsys *FS) Close() error {
	fsys.mu.Lock()
	if fsys.closed {
		fsys.mu.Unlock()
		return ErrClosed
	}
	fsys.closed = true
	fsys.mu.Unlock()
	if fsys.flusher != nil {
		fsys.flusher.Stop()
	}
	err := fsys.Sync()
	if fsys.flusher != nil {
		for _, name := range fsys.names {
			fsys.flusher.Unregister(fsys.inodes[name].m)
		}
	}
	return err
}

func (fsys *FS) isClosed() bool {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	return fsys.closed
}
