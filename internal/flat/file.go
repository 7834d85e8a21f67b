package flat

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/mpagefs/mpage/block"
	"github.com/mpagefs/mpage/pagecache"
	"github.com/mpagefs/mpage/writeback"
)

// File is an open handle of a flat file (struct file): its own readahead
// state and its own sample of the file's writeback error sequence.
type File struct {
	// Never change after Open.
	fs  *FS
	ino *inode
	ra  *pagecache.ReadaheadState // f_ra

	mu       sync.Mutex       // guards errSince and closed; held across Sync
	errSince pagecache.ErrSeq // f_wb_err
	closed   bool
}

var (
	_ io.ReaderAt = (*File)(nil)
	_ io.WriterAt = (*File)(nil)
)

// Open opens a handle of the named file (do_dentry_open): it samples the
// file's writeback error state, so the handle's Sync reports the errors
// that happen from now on, and any that no handle has seen yet.
func (fsys *FS) Open(name string) (*File, error) {
	if fsys.isClosed() {
		return nil, ErrClosed
	}
	ino := fsys.inodes[name]
	if ino == nil {
		return nil, fmt.Errorf("open %q: %w", name, ErrNotExist)
	}
	return &File{fs: fsys, ino: ino, ra: pagecache.NewReadaheadState(0), errSince: ino.m.SampleErr()}, nil
}

// Name is the file's name.
func (f *File) Name() string { return f.ino.name }

// Size is the file's size in bytes.
func (f *File) Size() int64 { return f.ino.m.Size() }

// Allocated is the number of the file's blocks that are allocated.
func (f *File) Allocated() int64 { return f.ino.allocated() }

func (f *File) isClosed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

// ReadAt reads len(p) bytes at off through the page cache with the
// handle's readahead state (generic_file_read_iter). It returns io.EOF
// with fewer bytes when the file ends first. A failed page read returns
// an error naming the page and its device sector, wrapping
// *pagecache.PageError.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if f.isClosed() {
		return 0, ErrClosed
	}
	if off < 0 {
		return 0, fmt.Errorf("%w: read %s at offset %d", ErrInvalid, f.ino.name, off)
	}
	n, err := f.ino.m.Read(f.ra, p, off)
	if err != nil {
		return n, f.ioError("read", err)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// ioError adds the file name and, for a page error, the page's first
// device sector to err.
func (f *File) ioError(op string, err error) error {
	var pe *pagecache.PageError
	if errors.As(err, &pe) {
		bits := f.fs.blockBits
		if dev, ok := f.ino.devBlock(pe.Index << (pagecache.PageShift - bits)); ok {
			return fmt.Errorf("flat: %s %s: page %d (device sector %d): %w",
				op, f.ino.name, pe.Index, dev<<(bits-block.SectorShift), err)
		}
	}
	return fmt.Errorf("flat: %s %s: %w", op, f.ino.name, err)
}

// WriteAt writes p at off through the page cache (generic_perform_write
// with ext2's write_begin). A write past the file's extents stops there
// with ErrNoSpace after writing what fits.
func (f *File) WriteAt(p []byte, off int64) (int, error) {
	if f.isClosed() {
		return 0, ErrClosed
	}
	if off < 0 {
		return 0, fmt.Errorf("%w: write %s at offset %d", ErrInvalid, f.ino.name, off)
	}
	ino := f.ino
	ino.rw.RLock()
	n, err := ino.m.Write(p, off)
	ino.rw.RUnlock()
	if n > 0 && f.fs.flusher != nil {
		f.fs.flusher.MarkDirty(ino.m)
	}
	if err != nil {
		return n, f.ioError("write", err)
	}
	return n, nil
}

// Truncate sets the file's size; see inode.truncate.
func (f *File) Truncate(size int64) error {
	if f.isClosed() {
		return ErrClosed
	}
	return f.ino.truncate(size)
}

// Sync makes the file's data durable and reports writeback errors
// (vfs_fsync → generic_file_fsync → file_write_and_wait_range, then
// blkdev_issue_flush): it writes and waits for the dirty pages
// (writeback.SyncMapping), flushes the device, and returns the writeback
// error recorded since this handle last looked, once
// (file_check_and_advance_wb_err). Every handle open when an error
// happened gets it at its next Sync, whoever wrote the page; a second
// Sync returns nil unless a new error happened.
//
// As in Linux, the error of this call's own writepages is returned too;
// the errors SyncMapping finds in the mapping's legacy flags and on pages
// are left to the error sequence, which holds them per handle.
func (f *File) Sync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	m := f.ino.m
	err := writeback.SyncMapping(m)
	if err == pagecache.ErrIO || err == pagecache.ErrNoSpace || errors.Is(err, writeback.ErrPageIO) {
		err = nil // a writeback error: the error sequence reports it
	}
	ferr := f.fs.q.Flush()
	werr := m.CheckAndAdvanceErr(&f.errSince)
	// file_check_and_advance_wb_err clears AS_EIO/AS_ENOSPC too, so that
	// legacy checks do not report again what this handle just saw.
	m.CheckErrors()
	errs := make([]error, 0, 3)
	if werr != nil {
		errs = append(errs, fmt.Errorf("flat: sync %s: writeback: %w", f.ino.name, werr))
	}
	if err != nil && (werr == nil || !errors.Is(err, werr)) {
		errs = append(errs, fmt.Errorf("flat: sync %s: %w", f.ino.name, err))
	}
	if ferr != nil {
		errs = append(errs, fmt.Errorf("flat: sync %s: %w", f.ino.name, ferr))
	}
	return errors.Join(errs...)
}

// Close releases the handle. Dirty data stays in the page cache for the
// flusher; Close does not sync (as close(2) does not).
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	f.closed = true
	return nil
}
