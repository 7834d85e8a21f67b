package ext2

import (
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/mpagefs/mpage/ext2/layout"
	"github.com/mpagefs/mpage/pagecache"
	"github.com/mpagefs/mpage/writeback"
)

// File is an open regular file (struct file with ext2_file_operations):
// reads and writes go through the inode's page cache mapping with the
// handle's own readahead state, and Sync reports each writeback error
// once per handle (errseq).
type File struct {
	fs       *FS
	ino      *Inode
	writable bool // never changes
	ra       *pagecache.ReadaheadState
	errSince pagecache.ErrSeq // the errseq sample; Sync advances it (one Sync at a time per handle)
	closed   atomic.Bool
}

// Whence values of File.Seek beyond io.Seek*: SEEK_DATA and SEEK_HOLE.
const (
	SeekData = 3
	SeekHole = 4
)

// OpenInode opens inode n as a file. writable handles may write,
// truncate and sync. The handle holds a reference to the inode, so an
// inode unlinked while open is deleted at the last close.
func (fs *FS) OpenInode(n uint32, writable bool) (*File, error) {
	if writable {
		if err := fs.checkWritable(); err != nil {
			return nil, err
		}
	}
	ino, err := fs.Iget(n)
	if err != nil {
		return nil, err
	}
	f, err := fs.Open(ino, writable)
	fs.Iput(ino)
	return f, err
}

// Open opens an inode the caller holds a reference to (the handle takes
// its own). Only regular files can be opened; directories give ErrIsDir.
func (fs *FS) Open(ino *Inode, writable bool) (*File, error) {
	if ino.IsDir() {
		return nil, ErrIsDir
	}
	if ino.m == nil {
		return nil, fmt.Errorf("%w: inode %d is not a regular file", ErrInvalid, ino.ino)
	}
	if writable {
		if err := fs.checkWritable(); err != nil {
			return nil, err
		}
	}
	fs.icache.Lock()
	fs.grabLocked(ino)
	fs.icache.Unlock()
	return &File{
		fs:       fs,
		ino:      ino,
		writable: writable,
		ra:       pagecache.NewReadaheadState(0),
		errSince: ino.m.SampleErr(),
	}, nil
}

// SetRandom turns the handle's readahead off (random) or back to the
// default, as posix_fadvise(POSIX_FADV_RANDOM) and POSIX_FADV_NORMAL do
// (FMODE_RANDOM): with it off, a read that misses the page cache reads
// just the pages it asks for, neither a window around them nor, from
// cached pages next to them, a guessed stream (try_context_readahead).
func (f *File) SetRandom(random bool) {
	if random {
		f.ra.SetMaxPages(-1)
	} else {
		f.ra.SetMaxPages(0)
	}
}

// Inode is the file's inode.
func (f *File) Inode() *Inode { return f.ino }

// Size is the file size.
func (f *File) Size() int64 { return f.ino.m.Size() }

// Stat returns the file's attributes.
func (f *File) Stat() Stat { return f.ino.Stat() }

// ReadAt reads len(p) bytes at off through the page cache
// (generic_file_read_iter), with io.ReaderAt's contract: fewer bytes come
// with io.EOF at end of file. A read of len(p) > 0 bytes, even at or past
// the end, updates atime as Options.Atime says.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if f.closed.Load() {
		return 0, ErrClosed
	}
	if off < 0 {
		return 0, ErrInvalid
	}
	n, err := f.ino.m.Read(f.ra, p, off)
	if len(p) > 0 {
		f.ino.readAccessed(off) // filemap_read's file_accessed, error or not
	}
	if err == nil && n < len(p) {
		err = io.EOF
	}
	return n, err
}

// WriteAt writes p at off through the page cache
// (ext2_file_write_iter → generic_perform_write): ext2's write_begin
// allocates the blocks, so a full filesystem fails the write. mtime and
// ctime are set. Writers of one file are serialised by the inode lock.
func (f *File) WriteAt(p []byte, off int64) (int, error) {
	if err := f.checkWrite(); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, ErrInvalid
	}
	if len(p) == 0 {
		return 0, nil
	}
	ino := f.ino
	ino.mu.Lock()
	defer ino.mu.Unlock()
	if ino.isAppendOnlyLocked() && off != ino.m.Size() {
		return 0, fmt.Errorf("%w: append-only file written at %d, size %d", ErrInvalid, off, ino.m.Size())
	}
	return f.writeLocked(p, off)
}

// checkWrite refuses a write through a closed or read-only handle, or to
// a filesystem that is read-only.
func (f *File) checkWrite() error {
	if f.closed.Load() {
		return ErrClosed
	}
	if !f.writable {
		return fmt.Errorf("%w: file not opened for writing", ErrInvalid)
	}
	return f.fs.checkWritable()
}

// writeLocked writes p at off, the common part of WriteAt and Append
// (generic_perform_write with the checks of generic_write_checks and
// ext2_write_failed after a failure): an immutable file is refused, a
// write is cut at the largest file size (EFBIG, after writing what
// fits), and a failed write frees what it allocated past the size. The
// size, mtime and ctime are updated when anything was written.
// Preconditions: f.ino.mu is held exclusively; len(p) > 0 and off >= 0.
func (f *File) writeLocked(p []byte, off int64) (int, error) {
	ino := f.ino
	if ino.disk.Flags&layout.FlImmutable != 0 {
		return 0, fmt.Errorf("%w: inode %d is immutable", ErrPermission, ino.ino)
	}
	max := f.fs.maxFileSize()
	if off >= max {
		return 0, fmt.Errorf("%w: write at %d, largest file size %d", ErrFileTooBig, off, max)
	}
	short := false
	if int64(len(p)) > max-off {
		p = p[:max-off]
		short = true
	}
	n, err := ino.m.Write(p, off)
	if err != nil {
		err = ino.writeFailedLocked(off+int64(len(p)), err)
	}
	if n > 0 {
		if f.fs.flusher != nil {
			// The file has dirty pages now: it joins the end of the
			// flusher's dirty list, so writeback takes files in the
			// order they were written, which for new files is the
			// order of their blocks on disk (__mark_inode_dirty with
			// I_DIRTY_PAGES from __set_page_dirty).
			f.fs.flusher.MarkDirty(ino.m)
		}
		now := time.Now()
		ino.UpdateLocked(func(d *layout.Inode) {
			d.SetSize(uint64(ino.m.Size()))
			setTimes(d, now, "mc")
		})
	}
	if err == nil && short {
		err = fmt.Errorf("%w: write stopped at the largest file size %d", ErrFileTooBig, max)
	}
	return n, err
}

// writeFailedLocked undoes what a failed or short write left past the end
// of the file, mirroring fs/ext2/inode.c:ext2_write_failed(): the write
// stopped at a page whose write_begin may have allocated some of its
// blocks (and an indirect block) before running out of space; lying past
// the new size, they would leak into the file's block map beyond i_size.
// When the write meant to go past the size (to), the pages past the size
// are dropped (truncate_pagecache) and the blocks past it freed
// (ext2_truncate_blocks). It returns werr, joined with any error of the
// truncation.
// Preconditions: ino.mu is held exclusively; ino is a regular file.
func (ino *Inode) writeFailedLocked(to int64, werr error) error {
	size := ino.m.Size()
	if to <= size {
		return werr
	}
	ino.m.TruncatePages(size)
	if err := ino.truncateBlocks(size); err != nil {
		return errors.Join(werr, fmt.Errorf("ext2: inode %d: freeing the blocks past the size after a failed write: %w", ino.ino, err))
	}
	return werr
}

func (ino *Inode) isAppendOnlyLocked() bool { return ino.disk.Flags&layout.FlAppend != 0 }

// Truncate changes the file size (ext2_setattr → ext2_setsize): shrinking
// frees the blocks past the end and zeroes the rest of the last block,
// growing leaves a hole.
func (f *File) Truncate(size int64) error {
	if f.closed.Load() {
		return ErrClosed
	}
	if !f.writable {
		return fmt.Errorf("%w: file not opened for writing", ErrInvalid)
	}
	f.ino.mu.Lock()
	defer f.ino.mu.Unlock()
	return f.ino.truncateLocked(size)
}

// Sync makes the file durable (ext2_fsync → generic_file_fsync): it
// writes and waits for the dirty pages, then writes the inode and the
// metadata and flushes the device as SyncInode does, group descriptors
// included, so that a crash right after it leaves an image e2fsck finds
// clean (see syncMetadata). A writeback error of the file is reported
// once to every handle open when it happened (errseq), even if the pages
// were written back by someone else.
func (f *File) Sync() error {
	if f.closed.Load() {
		return ErrClosed
	}
	var errs []error
	if err := writeback.WriteAndWait(f.ino.m); err != nil {
		errs = append(errs, err)
	}
	if err := f.ino.m.CheckAndAdvanceErr(&f.errSince); err != nil && len(errs) == 0 {
		errs = append(errs, err)
	}
	if f.fs.writableAtMount() {
		errs = append(errs, f.fs.syncMetadata(f.ino))
	}
	return errors.Join(errs...)
}

// Close releases the handle (ext2_release_file): a writer's reservation
// window is dropped, and the inode reference given back, which deletes an
// unlinked inode at its last close.
func (f *File) Close() error {
	if f.closed.Swap(true) {
		return ErrClosed
	}
	if f.writable {
		f.ino.tree.Lock()
		f.fs.rsv.drop(f.ino.rsv)
		f.ino.tree.Unlock()
	}
	f.fs.Iput(f.ino)
	return nil
}

// Seek returns the offset for SeekData or SeekHole from off, walking the
// block map (ext2_llseek → generic_file_llseek_size with SEEK_DATA and
// SEEK_HOLE on the block map): SeekData gives the start of the first
// block with data at or after off, SeekHole the start of the first hole
// at or after off, or the file size if there is none. Both fail with
// ErrNoData (ENXIO) for an off at or past the end of the file, and
// SeekData also when only holes follow. Holes are whole blocks: a block
// that is allocated counts as data even if it holds zeroes.
func (f *File) Seek(off int64, whence int) (int64, error) {
	if f.closed.Load() {
		return 0, ErrClosed
	}
	size := f.ino.m.Size()
	switch whence {
	case io.SeekStart:
		return off, nil
	case io.SeekEnd:
		return size + off, nil
	case SeekData, SeekHole:
	default:
		return 0, ErrInvalid
	}
	if off < 0 {
		return 0, ErrInvalid
	}
	if off >= size {
		return 0, ErrNoData
	}
	fs := f.fs
	bits := fs.blockBits
	last := (size - 1) >> bits
	for ib := off >> bits; ib <= last; {
		res, err := f.ino.getBlocks(ib, int(min(last-ib+1, 1<<20)), false)
		if err != nil {
			return 0, err
		}
		isData := res.count > 0
		if isData == (whence == SeekData) {
			pos := ib << bits
			if pos < off {
				pos = off
			}
			return pos, nil
		}
		if isData {
			ib += int64(res.count)
		} else {
			ib += max(res.hole, 1)
		}
	}
	if whence == SeekHole {
		return size, nil
	}
	return 0, ErrNoData
}
