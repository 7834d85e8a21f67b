package ext2fs

import (
	"fmt"
	"io/fs"
	"sync/atomic"

	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/buffer"
	"github.com/mpagefs/mpage/ext2"
	"github.com/mpagefs/mpage/pagecache"
)

// Options choose how a filesystem is opened.
type Options struct {
	// ReadOnly opens the image read-only and mounts without writing to
	// it; every change then fails with syscall.EROFS.
	ReadOnly bool
	// CacheLimit bounds the page cache of file data, in bytes (0: the
	// pagecache default).
	CacheLimit int64
	// Errors overrides the superblock's behaviour on finding corrupt
	// metadata (the errors= mount option).
	Errors ext2.ErrorBehavior
	// SuperblockAt mounts from a backup superblock at this block number
	// (the sb= mount option); 0 uses the primary.
	SuperblockAt int64
	// BufferedIO makes every write of Open's image go through the
	// kernel's page cache; by default large aligned writes use O_DIRECT
	// (block.File explains when and why), and with Mount.HugePages
	// large aligned reads too.
	BufferedIO bool
	// Atime is when reads update access times, as Linux's mount
	// options: ext2.Relatime (the default, also for the zero value
	// ext2.AtimeDefault) updates atime when it is not later than mtime
	// or ctime, or is a day old; ext2.Strictatime on every read;
	// ext2.Noatime never. Reads are ReadAt/Read of a file (of at least
	// one byte), directory listings, and reading or following a symbolic
	// link. An update marks the inode dirty and is written back with it,
	// never by the read itself. A read-only filesystem (ReadOnly, or
	// remounted so after an error) never updates atime: only Open with
	// ReadOnly leaves an image byte for byte as it was.
	Atime ext2.AtimeMode
	// NoDirAtime keeps directory listings from updating the directory's
	// atime (nodiratime).
	NoDirAtime bool
	// Owner is the owner of the files, directories and links the
	// os-style methods create; nil means the calling process's uid and
	// gid.
	Owner *Owner
	// Mount holds the remaining ext2 mount options (request queue,
	// writeback, metadata cache limit, warnings). The fields above
	// override its fields of the same names.
	Mount ext2.Options
}

func (o Options) mountOptions(name string) ext2.Options {
	m := o.Mount
	m.ReadOnly = o.ReadOnly
	if o.CacheLimit != 0 {
		m.CacheLimit = o.CacheLimit
	}
	if o.Errors != ext2.ErrorsDefault {
		m.Errors = o.Errors
	}
	if o.SuperblockAt != 0 {
		m.SuperblockAt = o.SuperblockAt
	}
	if o.Atime != ext2.AtimeDefault {
		m.Atime = o.Atime
	}
	if o.NoDirAtime {
		m.NoDirAtime = true
	}
	if m.Name == "" {
		m.Name = name
	}
	return m
}

// Owner is a user and group id.
type Owner struct{ UID, GID uint32 }

// FS is an open ext2 filesystem. It implements fs.FS, fs.StatFS,
// fs.ReadDirFS, fs.ReadFileFS, fs.ReadLinkFS and fs.SubFS, and has
// os-style methods that change it. See the package documentation for the
// names it accepts and its concurrency.
type FS struct {
	fs     *ext2.FS // set by Open, never changed
	name   string   // the image path or device name, for messages
	own    *Owner   // Options.Owner; never changes
	closed atomic.Bool
}

var (
	_ fs.FS         = (*FS)(nil)
	_ fs.StatFS     = (*FS)(nil)
	_ fs.ReadDirFS  = (*FS)(nil)
	_ fs.ReadFileFS = (*FS)(nil)
	_ fs.ReadLinkFS = (*FS)(nil)
	_ fs.SubFS      = (*FS)(nil)
)

// Open opens the ext2 filesystem in the image file or block device at
// path (block.OpenFile), read-only if opts.ReadOnly is set. Close it to
// write everything back and unmount cleanly.
func Open(path string, opts Options) (*FS, error) {
	// A page cache on huge pages makes large direct reads pay (see
	// block.File); BufferedIO keeps every call in the kernel's cache.
	dev, err := block.OpenFileOptions(path, block.FileOptions{
		ReadOnly: opts.ReadOnly, Buffered: opts.BufferedIO,
		DirectReads: opts.Mount.HugePages && !opts.BufferedIO,
	})
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	fsys, err := OpenDevice(dev, withName(opts, path))
	if err != nil {
		return nil, &fs.PathError{Op: "mount", Path: path, Err: err}
	}
	return fsys, nil
}

func withName(o Options, name string) Options {
	if o.Mount.Name == "" {
		o.Mount.Name = name
	}
	return o
}

// OpenDevice mounts the ext2 filesystem on dev. The FS owns dev from then
// on: Close closes it, and so does a failed OpenDevice.
func OpenDevice(dev block.Device, opts Options) (*FS, error) {
	mo := opts.mountOptions("")
	e, err := ext2.Mount(dev, mo)
	if err != nil {
		return nil, mapErr(err)
	}
	return &FS{fs: e, name: mo.Name, own: opts.Owner}, nil
}

// Close writes back every change, marks the filesystem clean (unless
// errors were found) and closes the device. Files still open fail from
// then on. A second Close returns an error wrapping fs.ErrClosed.
func (f *FS) Close() error {
	if f.closed.Swap(true) {
		return fmt.Errorf("ext2fs: close %s: %w", f.name, fs.ErrClosed)
	}
	return mapErr(f.fs.Close())
}

// Sync writes every change to the device and flushes it, without
// closing.
func (f *FS) Sync() error { return mapErr(f.fs.Sync()) }

// ReadOnly reports whether the filesystem refuses changes (opened
// read-only, or turned read-only after finding corruption).
func (f *FS) ReadOnly() bool { return f.fs.ReadOnly() }

// Ext2 returns the underlying ext2 filesystem, for tools that need
// inodes, the superblock or the caches.
func (f *FS) Ext2() *ext2.FS { return f.fs }

// Format creates (or truncates) the image file at path with size bytes
// and writes a new, empty ext2 filesystem to it (ext2.Format). size must
// be a multiple of 512; opts.Size, if set, must not exceed it.
func Format(path string, size int64, opts ext2.FormatOptions) error {
	dev, err := block.CreateFile(path, size)
	if err != nil {
		return &fs.PathError{Op: "format", Path: path, Err: err}
	}
	err = FormatDevice(dev, opts)
	if cerr := dev.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return &fs.PathError{Op: "format", Path: path, Err: err}
	}
	return nil
}

// FormatDevice writes a new, empty ext2 filesystem to dev (ext2.Format).
// dev stays open.
func FormatDevice(dev block.Device, opts ext2.FormatOptions) error {
	return mapErr(ext2.Format(dev, opts))
}

// Stats are the I/O counters of the stack under a filesystem.
type Stats struct {
	Queue     block.Stats       // the device's request queue
	PageCache pagecache.Stats   // file data pages
	Buffers   buffer.CacheStats // the metadata buffer cache

	// FallbackReadPages and FallbackWritePages count the pages of file
	// data read or written block by block through buffer heads rather
	// than in multi-page bios, because their blocks were not contiguous
	// on disk (fs/mpage.c's "confused" pages; ext2.FS.FallbackPages).
	FallbackReadPages  int64
	FallbackWritePages int64
}

// Stats returns a snapshot of the I/O counters.
func (f *FS) Stats() Stats {
	r, w := f.fs.FallbackPages()
	return Stats{
		Queue:              f.fs.Queue().Stats(),
		PageCache:          f.fs.PageCache().Stats(),
		Buffers:            f.fs.BufferCache().Stats(),
		FallbackReadPages:  r,
		FallbackWritePages: w,
	}
}

// Usage is the space and inode usage of a filesystem (statfs).
type Usage struct {
	BlockSize   int64
	Blocks      uint64 // all blocks
	FreeBlocks  uint64 // free blocks, the reserved ones included
	AvailBlocks uint64 // free blocks not reserved for root
	Inodes      uint64
	FreeInodes  uint64
	NameMax     int // longest name element
}

// Statfs returns the filesystem's usage, mirroring
// fs/ext2/super.c:ext2_statfs() (without the overhead subtraction:
// Blocks counts every block).
func (f *FS) Statfs() (Usage, error) {
	if f.closed.Load() {
		return Usage{}, &fs.PathError{Op: "statfs", Path: f.name, Err: errClosed}
	}
	sb := f.fs.Superblock()
	u := Usage{
		BlockSize:  int64(f.fs.BlockSize()),
		Blocks:     sb.BlocksCount(),
		FreeBlocks: sb.FreeBlocks(),
		Inodes:     uint64(sb.InodesCount),
		FreeInodes: uint64(sb.FreeInodes()),
		NameMax:    255,
	}
	if r := sb.RBlocksCount(); u.FreeBlocks > r {
		u.AvailBlocks = u.FreeBlocks - r
	}
	return u, nil
}

// checkOpen fails once the FS is closed.
func (f *FS) checkOpen() error {
	if f.closed.Load() {
		return errClosed
	}
	return nil
}

// checkWritable fails for a closed or read-only FS.
func (f *FS) checkWritable() error {
	if err := f.checkOpen(); err != nil {
		return err
	}
	if f.fs.ReadOnly() {
		return errReadOnly
	}
	return nil
}
