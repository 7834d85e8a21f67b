package ext2

import (
	"errors"

	"github.com/mpagefs/mpage/writeback"
)

// Helpers for package ext2fs (the public API), kept apart from the core
// files.

// Append writes p at the end of the file and returns the offset it was
// written at. The end of file is found under the inode lock that
// serialises writers, so appends from several handles each land whole
// and never overlap (O_APPEND: generic_write_checks with IOCB_APPEND
// reading i_size under inode_lock). Otherwise it behaves as WriteAt.
func (f *File) Append(p []byte) (off int64, n int, err error) {
	if err := f.checkWrite(); err != nil {
		return 0, 0, err
	}
	ino := f.ino
	ino.mu.Lock()
	defer ino.mu.Unlock()
	off = ino.m.Size()
	if len(p) == 0 {
		return off, 0, nil
	}
	n, err = f.writeLocked(p, off)
	return off, n, err
}

// Writable reports whether the handle was opened for writing.
func (f *File) Writable() bool { return f.writable }

// SyncInode makes an inode durable as fsync does for a directory, a
// symbolic link or a special file (ext2_fsync → generic_file_fsync:
// sync_inode_metadata, sync_mapping_buffers, then a device flush): the
// inode is written to its inode table block, and the dirty metadata
// blocks are written (a directory's blocks, and the indirect blocks that
// map them, live in the buffer cache; like File.Sync this writes every
// dirty metadata block, bitmaps and group descriptors included, where
// Linux writes those associated with the inode), then the device is
// flushed. The file data of other inodes is
// not written, nor are other inodes: to make a new name durable, sync
// the file it names too. For a regular file, its dirty pages are written
// and waited for first; File.Sync also reports writeback errors.
func (fs *FS) SyncInode(ino *Inode) error {
	if fs.closed.Load() {
		return ErrClosed
	}
	if !fs.writableAtMount() {
		return nil
	}
	var errs []error
	if ino.m != nil {
		if err := writeback.WriteAndWait(ino.m); err != nil {
			errs = append(errs, err)
		}
	}
	if err := ino.writeInode(); err != nil {
		errs = append(errs, err)
	}
	// The bitmaps go with the other dirty metadata; their group
	// descriptors' counts go with them (Linux keeps the descriptors in
	// buffers dirtied at each allocation).
	if err := fs.writeDescriptors(); err != nil {
		errs = append(errs, err)
	}
	if err := fs.bc.Sync(); err != nil {
		errs = append(errs, err)
	}
	if err := fs.q.Flush(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
